"""How jobs look on a terminal. Everything the API returns is wrapped in Text, never parsed as
rich markup: a checklist title may well contain square brackets."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
STATUS_STYLES = {
    "AWAITING_UPLOAD": "yellow",
    "PENDING": "yellow",
    "PROCESSING": "cyan",
    "RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
}
PRIORITY_STYLES = {"high": "bold red", "medium": "yellow", "low": "green"}
WIDE_ENOUGH_FOR_UPDATED = 100


def styled_status(status: str | None) -> Text:
    return Text(status or "?", style=STATUS_STYLES.get(status or "", ""))


def timestamp(value: str | None) -> str:
    """ISO 8601 from the API as `YYYY-MM-DD HH:MM:SS` in UTC; anything else unchanged."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def current_step(job: dict) -> str:
    steps = job.get("steps") or []
    for position, step in enumerate(steps, start=1):
        if step.get("status") == "RUNNING":
            return f"step {position}/{len(steps)} {step.get('name', '?')}"
    if job.get("status") == "PENDING":
        return "queued"
    if job.get("status") == "AWAITING_UPLOAD":
        return "waiting for the upload"
    return ""


def progress_bar(job: dict, width: int = 24) -> Text:
    """chunks_done/chunks_total of a long document, as a bar; empty when the job reports none."""
    progress = job.get("progress") or {}
    done, total = progress.get("chunks_done"), progress.get("chunks_total")
    if not total or done is None:
        return Text("")
    filled = round(width * min(done, total) / total)
    return Text.assemble(("█" * filled, "cyan"), ("░" * (width - filled), "dim"), f" {done}/{total} chunks")


def where(item: dict) -> str:
    """Where an item's quote stands: "p. 12", "1 Scope > 1.2 Terms", or both, for each location."""
    places = []
    for location in item.get("locations") or []:
        parts = []
        if location.get("page") is not None:
            parts.append(f"p. {location['page']}")
        if location.get("section"):
            parts.append(str(location["section"]))
        if parts:
            places.append(", ".join(parts))
    return "; ".join(places)


class WaitDisplay:
    """The live line shown while waiting; elapsed time is computed at each refresh, so it keeps
    ticking between polls."""

    def __init__(self, event_id: str):
        self.event_id = event_id
        self.started = time.monotonic()
        self.job: dict = {"status": "PENDING"}
        self.note = ""
        self._spinner = Spinner("dots", style="cyan")

    def update(self, job: dict) -> None:
        self.job = job
        self.note = ""

    def __rich__(self) -> RenderableType:
        line = Text.assemble(
            styled_status(self.job.get("status")),
            "  ",
            (current_step(self.job), "bold"),
            "  ",
            progress_bar(self.job),
            "  ",
            (f"{self.elapsed():.1f} s", "dim"),
            "  ",
            (self.event_id, "dim"),
        )
        if self.note:
            line.append(f"  {self.note}", style="yellow")
        self._spinner.text = line
        return self._spinner

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def print_job(console: Console, job: dict, *, details: bool) -> None:
    """A job for people: a header, the steps (`details`), then the result or the error."""
    header = Text.assemble(styled_status(job.get("status")), "  ", (str(job.get("event_id", "")), "bold"))
    console.print(header)
    document = job.get("document")
    if document:
        pages = f", {document['page_count']} pages" if document.get("page_count") else ""
        name = document.get("filename") or document.get("media_type", "")
        console.print(Text(f"{name} ({document.get('format', '?')}{pages})", style="dim"))
    if details:
        created, updated = timestamp(job.get("created_at")), timestamp(job.get("updated_at"))
        console.print(Text(f"created {created} UTC   updated {updated} UTC", style="dim"))
        if job.get("steps"):
            console.print(steps_table(job["steps"]))
    if job.get("error"):
        error = job["error"]
        console.print(
            Text.assemble(("error ", "bold red"), f"{error.get('type', '?')}: {error.get('message', '')}")
        )
    if job.get("status") == "CANCELLED" and not job.get("error"):
        console.print(Text("the job was cancelled before it finished", style="magenta"))
    if job.get("result"):
        print_result(console, job["result"])
    if job.get("usage"):
        console.print(usage_line(job["usage"], job.get("steps") or []))


def steps_table(steps: list[dict]) -> Table:
    table = Table(title="Steps", title_justify="left", show_edge=False)
    for column in ("step", "status", "model", "tokens in/out", "latency"):
        table.add_column(column, justify="right" if column in ("tokens in/out", "latency") else "left")
    for step in steps:
        tokens = (
            f"{step['input_tokens']:,}/{step['output_tokens']:,}"
            if step.get("input_tokens") is not None and step.get("output_tokens") is not None
            else "-"
        )
        latency = f"{step['latency_ms']:,.0f} ms" if step.get("latency_ms") is not None else "-"
        table.add_row(
            Text(str(step.get("name", "?"))),
            styled_status(step.get("status")),
            Text(str(step.get("model") or "-")),
            tokens,
            latency,
        )
    return table


def print_result(console: Console, result: dict) -> None:
    console.print(Panel(Text(result.get("summary") or ""), title="Summary", title_align="left"))
    console.print(checklist_table(result.get("checklist") or []))
    dropped = result.get("ungrounded_items_dropped") or 0
    if dropped:
        console.print(
            Text(
                f"{dropped} item(s) dropped: their source quote was not found in the document", style="yellow"
            )
        )


def checklist_table(items: list[dict]) -> Table:
    table = Table(title=f"Checklist ({len(items)} items)", title_justify="left", show_lines=True)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("priority", no_wrap=True)
    table.add_column("item", ratio=1)
    table.add_column("category")
    for item in items:
        priority = str(item.get("priority", "-"))
        lines = [Text(str(item.get("title", "")), style="bold"), Text(str(item.get("description", "")))]
        if place := where(item):
            lines.append(Text(place, style="cyan"))
        cell = Group(*lines)
        table.add_row(
            str(item.get("id", "")),
            Text(priority, style=PRIORITY_STYLES.get(priority, "")),
            cell,
            Text(str(item.get("category", ""))),
        )
    return table


def usage_line(usage: dict, steps: list[dict]) -> Text:
    models = sorted({step["model"] for step in steps if step.get("model")})
    cost = usage.get("estimated_cost_usd")
    parts = [
        f"tokens {usage.get('input_tokens') or 0:,} in / {usage.get('output_tokens') or 0:,} out",
        f"estimated cost ${cost:.6f}" if cost is not None else "estimated cost unknown for this model",
    ]
    if models:
        parts.append("model " + ", ".join(models))
    return Text(" · ".join(parts), style="dim")


def jobs_table(items: list[dict], width: int) -> Table:
    """The event_id is never cut (it is what the other commands take); `updated` only when it fits."""
    with_updated = width >= WIDE_ENOUGH_FOR_UPDATED
    table = Table(show_edge=False)
    table.add_column("event_id", no_wrap=True, min_width=36)
    table.add_column("status", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    if with_updated:
        table.add_column("updated (UTC)", no_wrap=True)
    for item in items:
        cells = [
            Text(str(item.get("event_id", ""))),
            styled_status(item.get("status")),
            timestamp(item.get("created_at")),
        ]
        if with_updated:
            cells.append(timestamp(item.get("updated_at")))
        table.add_row(*cells)
    return table
