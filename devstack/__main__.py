"""`python -m devstack dev | invoke FN EVENT | migrate | redrive` (see docs/local-runner.md)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devstack import logs
from devstack.postgres import database_url_or_embedded, process_exists
from devstack.settings import load_settings
from devstack.sqs import redrive_all, sqs_client
from devstack.stack import OFFLINE_API_KEY, PROJECT_ROOT, Stack
from devstack.template import load_template

log = logging.getLogger("devstack")


def _pair(value: str) -> tuple[str, str]:
    name, sep, content = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"must look like NAME=VALUE, got {value!r}")
    return name, content


def running_stack(data_dir: Path) -> dict | None:
    """The endpoints of a `make dev` running with this data directory, if one is."""
    try:
        state = json.loads((data_dir / "devstack.json").read_text())
    except (OSError, ValueError):
        return None
    return state if process_exists(state.get("pid", -1)) else None


def cmd_dev(args: argparse.Namespace) -> int:
    settings = load_settings(PROJECT_ROOT)
    logs.configure(settings.get("LOG_LEVEL", "INFO"))
    if (other := running_stack(args.data_dir)) is not None:
        log.error("a stack already runs for this checkout (pid %s, %s)", other["pid"], other["api"])
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        if stop.is_set():
            log.warning("still stopping, please wait")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(
        parameter_overrides=dict(args.parameter_overrides),
        data_dir=args.data_dir,
        state_file=args.data_dir / "devstack.json",
    )
    try:
        stack.start()
        if not stop.is_set():
            llm = stack.llm.label if stack.llm else "none"
            print(f"ready: {stack.base_url}  api key: {stack.api_key}  llm: {llm}", flush=True)
            # Wake up now and then: a signal the kernel hands to another thread does not
            # interrupt a blocked wait, and Python runs handlers only in the main thread.
            while not stop.wait(0.5):
                pass
    finally:
        log.info("stopping")
        stack.stop()
        log.info("stopped")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    logs.configure(load_settings(PROJECT_ROOT).get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    event = json.loads(
        sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
    )
    settings_env: dict[str, str] = {}
    queue_urls = None
    if (state := running_stack(args.data_dir)) is not None:
        # Share the running stack's database, queues and LLM, as `sam local invoke` shares a network.
        log.info("using the running stack (pid %s)", state["pid"])
        settings_env["DATABASE_URL"] = state["database_url"]
        sqs_endpoint = state["sqs_endpoint"]
        queue_urls = state["queue_urls"]
        if state.get("llm"):
            settings_env["OPENAI_BASE_URL"] = state["llm"]
            settings_env.setdefault("OPENAI_API_KEY", OFFLINE_API_KEY)
    else:
        sqs_endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    stack = Stack(
        port=0,
        api=False,
        event_sources=False,
        schedules=False,
        env=settings_env,
        parameter_overrides=dict(args.parameter_overrides),
        sqs_endpoint=sqs_endpoint,
        queue_urls=queue_urls,
        function_env=dict(args.env),
        data_dir=args.data_dir,
    )
    with stack:
        invocation = stack.invoke(args.function, event)
    print(json.dumps(invocation.payload, indent=2))
    return 0 if invocation.ok else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from guideline_ingest.migrations import migrate

    settings = load_settings(PROJECT_ROOT)
    logs.configure(settings.get("LOG_LEVEL", "INFO"))
    url, server = database_url_or_embedded(args.data_dir / "pgdata", settings.get("DATABASE_URL"))
    try:
        applied = migrate(url)
    finally:
        if server is not None:
            server.stop()  # leaves it running when a `make dev` still uses it
    log.info("migrations applied: %s", ", ".join(applied) if applied else "none, up to date")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    logs.configure("INFO")
    state = running_stack(args.data_dir)
    if state is None:
        log.error("no running stack for this checkout: start `make dev` first")
        return 2
    template = load_template(PROJECT_ROOT / "infra" / "template.yaml")
    moved = redrive_all(sqs_client(state["sqs_endpoint"]), template.queues, state["queue_urls"])
    log.info("%d message(s) moved back from the dead-letter queues", moved)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run the whole service (Ctrl-C stops it)")
    invoke = commands.add_parser("invoke", help="invoke one function with an event file and print the result")
    invoke.add_argument("function", help="submit, status, process, sweeper or a logical id")
    invoke.add_argument("event", help="event JSON file, or - for stdin")
    invoke.add_argument("--env", action="append", default=[], type=_pair, help="function variable NAME=VALUE")
    migrate = commands.add_parser(
        "migrate", help="apply database migrations (DATABASE_URL or the embedded server)"
    )
    redrive = commands.add_parser(
        "redrive", help="move dead-letter messages back to their queue (running stack)"
    )
    for command in (dev, invoke):
        command.add_argument("--parameter-overrides", nargs="+", default=[], type=_pair, help="NAME=VALUE")
    for command in (dev, invoke, migrate, redrive):
        command.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / ".local", help="state (.local)")
    args = parser.parse_args(argv)
    handlers = {"dev": cmd_dev, "invoke": cmd_invoke, "migrate": cmd_migrate, "redrive": cmd_redrive}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
