"""The four commands. Each returns its exit status; failures are raised as CliError."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ingest_cli.client import Client
from ingest_cli.errors import EXIT_FAILURE, ApiError, UsageError
from ingest_cli.render import TERMINAL_STATUSES, WaitDisplay, jobs_table, print_job

DEFAULT_POLL_SECONDS = 2.0
# Bounds on the server's Retry-After: never hammer it, never look frozen.
MIN_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 30.0
# Answers worth waiting out while polling: the job is safe in the database meanwhile.
TRANSIENT_STATUSES = frozenset({502, 503, 504})
UNSUCCESSFUL = frozenset({"FAILED", "CANCELLED"})
# The API's limit on a file sent as the request body (docs/api.md, "Documents"); a larger file goes
# through a presigned upload form, straight to the bucket.
INLINE_MAX_BYTES = 4_500_000
# A file goes as what it is: a .md file as Markdown, with its headings. Anything else is text.
DOCUMENT_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
}


@dataclass
class Io:
    out: Console
    err: Console

    def json(self, document: object) -> None:
        # Plain print, not rich: JSON for other programs must not be wrapped or highlighted.
        print(json.dumps(document, indent=2, ensure_ascii=False), file=sys.stdout, flush=True)


def read_bytes(source: str) -> bytes:
    name = "standard input" if source == "-" else source
    try:
        return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {source}") from None
    except IsADirectoryError:
        raise UsageError(f"{source} is a directory, not a file") from None
    except PermissionError:
        raise UsageError(f"cannot read {source}: permission denied") from None
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror or error}") from None


def read_guidelines(source: str, raw: bytes | None = None) -> str:
    name = "standard input" if source == "-" else source
    raw = read_bytes(source) if raw is None else raw
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{name} is not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"{name} is empty: there is nothing to submit")
    return text


def poll_interval(retry_after: str | None) -> float:
    try:
        seconds = float(retry_after) if retry_after else DEFAULT_POLL_SECONDS
    except ValueError:
        seconds = DEFAULT_POLL_SECONDS
    return min(max(seconds, MIN_POLL_SECONDS), MAX_POLL_SECONDS)


def wait_until_finished(
    client: Client, event_id: str, on_update: Callable[[dict], None], on_retry: Callable[[str], None]
) -> dict:
    while True:
        try:
            reply = client.job(event_id)
        except ApiError as error:
            if error.status not in TRANSIENT_STATUSES:
                raise
            on_retry(f"API answered {error.status}, retrying")
            time.sleep(DEFAULT_POLL_SECONDS)
            continue
        job = reply.document
        on_update(job)
        if job.get("status") in TERMINAL_STATUSES:
            return job
        time.sleep(poll_interval(reply.headers.get("Retry-After")))


def outcome(job: dict) -> int:
    return EXIT_FAILURE if job.get("status") in UNSUCCESSFUL else 0


def media_type_of(source: str) -> str:
    return "text/plain" if source == "-" else DOCUMENT_TYPES.get(Path(source).suffix.lower(), "text/plain")


def send(
    client: Client,
    io: Io,
    file: str,
    idempotency_key: str | None,
    show_progress: bool,
    force_upload: bool = False,
) -> dict:
    """Plain text as JSON, a small document as the body, anything larger (or any file, with
    `force_upload`) through an upload form."""
    raw = read_bytes(file)
    media_type = media_type_of(file)
    filename = None if file == "-" else Path(file).name
    if not raw.strip():
        raise UsageError(f"{filename or 'standard input'} is empty: there is nothing to submit")
    if len(raw) <= INLINE_MAX_BYTES and not force_upload:
        if media_type == "text/plain":
            return client.submit(read_guidelines(file, raw), idempotency_key)
        return client.submit_document(raw, media_type, filename, idempotency_key)
    accepted = client.request_upload(media_type, len(raw), filename, idempotency_key)
    if accepted.get("status") != "AWAITING_UPLOAD" or not accepted.get("upload"):
        return accepted  # an idempotent replay of a job whose file has already arrived
    if not show_progress:
        client.upload(accepted["upload"], raw, on_progress=lambda _sent, _total: None)
        return accepted
    with Progress(
        TextColumn("uploading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=io.err,
        transient=True,
    ) as progress:
        task = progress.add_task("upload", total=len(raw))
        client.upload(
            accepted["upload"], raw, on_progress=lambda sent, total: progress.update(task, completed=sent)
        )
    io.err.print(f"uploaded {len(raw):,} bytes", style="dim", markup=False)
    return accepted


def submit(
    client: Client,
    io: Io,
    file: str,
    wait: bool,
    as_json: bool,
    idempotency_key: str | None,
    force_upload: bool = False,
) -> int:
    accepted = send(client, io, file, idempotency_key, show_progress=not as_json, force_upload=force_upload)
    event_id = str(accepted["event_id"])
    if not wait:
        if as_json:
            io.json(accepted)
        else:
            print(event_id, flush=True)
        return 0
    if as_json:
        job = wait_until_finished(client, event_id, on_update=lambda _job: None, on_retry=lambda _note: None)
        io.json(job)
        return outcome(job)

    display = WaitDisplay(event_id)

    def on_retry(note: str) -> None:
        display.note = note

    try:
        with Live(display, console=io.err, transient=True, refresh_per_second=8):
            job = wait_until_finished(client, event_id, on_update=display.update, on_retry=on_retry)
    except KeyboardInterrupt:
        io.err.print(f"stopped waiting; the job goes on: ingest status {event_id}", markup=False)
        raise
    io.err.print(f"finished in {display.elapsed():.1f} s", style="dim", markup=False)
    print_job(io.out, job, details=False)
    return outcome(job)


def status(client: Client, io: Io, event_id: str, as_json: bool) -> int:
    job = client.job(event_id).document
    if as_json:
        io.json(job)
    else:
        print_job(io.out, job, details=True)
    return outcome(job)


def list_jobs(
    client: Client, io: Io, status: str | None, limit: int | None, every_page: bool, as_json: bool
) -> int:
    page = client.jobs(status=status, limit=limit)
    items = list(page.get("items") or [])
    while every_page and page.get("next_cursor"):
        page = client.jobs(status=status, limit=limit, cursor=page["next_cursor"])
        items.extend(page.get("items") or [])
    next_cursor = page.get("next_cursor")
    if as_json:
        io.json({"items": items, "next_cursor": next_cursor})
        return 0
    if not items:
        io.out.print("no jobs", style="dim")
    else:
        io.out.print(jobs_table(items, io.out.width))
    if next_cursor:
        io.err.print("more jobs exist: add --all to list them all", style="dim")
    return 0


def cancel(client: Client, io: Io, event_id: str, as_json: bool) -> int:
    job = client.cancel(event_id)
    if as_json:
        io.json(job)
    else:
        print_job(io.out, job, details=False)
    return 0
