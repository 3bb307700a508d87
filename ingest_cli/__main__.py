"""`ingest` / `python -m ingest_cli`: argument parsing and the one place errors become messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from ingest_cli import commands
from ingest_cli.client import Client
from ingest_cli.errors import EXIT_INTERRUPTED, CliError
from ingest_cli.settings import resolve

STATUSES = ("AWAITING_UPLOAD", "PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {value!r}")
    return number


def _connection_options() -> argparse.ArgumentParser:
    # SUPPRESS defaults let the options go before or after the command without one erasing the other.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        help="API URL (env INGEST_BASE_URL, .env INGEST_BASE_URL; default: the running make dev's)",
    )
    options.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="x-api-key (env INGEST_API_KEY, .env INGEST_API_KEY or API_KEYS; default: .env.example's)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    connection = _connection_options()
    parser = argparse.ArgumentParser(
        prog="ingest",
        description="Turn guidelines into a summary and a checklist with the guideline-ingest API.",
        parents=[connection],
        epilog="Exit status: 0 success, 1 failed or cancelled job or API error, 2 bad usage, 130 Ctrl-C.",
    )
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands_.add_parser(
        "submit", parents=[connection], help="submit a document (prints the event_id)"
    )
    submit.add_argument(
        "file",
        metavar="FILE",
        help=(
            "the guidelines: .pdf, .docx, .html, .md (as Markdown) or UTF-8 text; - reads standard input. "
            "Files over 4.5 MB go through an upload form"
        ),
    )
    submit.add_argument(
        "--wait", action="store_true", help="show progress until the job ends, then the result"
    )
    submit.add_argument("--json", action="store_true", help="print the API's JSON instead of tables")
    submit.add_argument(
        "--upload",
        action="store_true",
        help="send the file through an upload form straight to the bucket, whatever its size",
    )
    submit.add_argument(
        "--idempotency-key", metavar="KEY", help="retry safely: the same key returns the same job"
    )

    status = commands_.add_parser("status", parents=[connection], help="show a job: steps, result or error")
    status.add_argument("event_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print the API's JSON")

    listing = commands_.add_parser("list", parents=[connection], help="list your jobs, newest first")
    listing.add_argument("--status", type=str.upper, choices=STATUSES, help="only jobs in this status")
    listing.add_argument("--limit", type=_positive, metavar="N", help="jobs per page (the API caps it)")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")
    listing.add_argument("--json", action="store_true", help="print JSON: {items, next_cursor}")

    cancel = commands_.add_parser("cancel", parents=[connection], help="cancel a job that has not ended")
    cancel.add_argument("event_id", metavar="ID")
    cancel.add_argument("--json", action="store_true", help="print the API's JSON")
    return parser


def run(args: argparse.Namespace, io: commands.Io) -> int:
    settings = resolve(getattr(args, "base_url", None), getattr(args, "api_key", None))
    client = Client(settings)
    if args.command == "submit":
        return commands.submit(
            client, io, args.file, args.wait, args.json, args.idempotency_key, force_upload=args.upload
        )
    if args.command == "status":
        return commands.status(client, io, args.event_id, args.json)
    if args.command == "list":
        return commands.list_jobs(client, io, args.status, args.limit, args.all, args.json)
    return commands.cancel(client, io, args.event_id, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    io = commands.Io(out=Console(), err=Console(stderr=True))
    try:
        return run(args, io)
    except CliError as error:
        io.err.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
