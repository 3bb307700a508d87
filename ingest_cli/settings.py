"""Where the API is and which key to send: flag, then environment, then `.env`, then the default.

The `.env` in the current directory is the one `make dev` reads, so in a checkout the CLI finds the
local runner's port and first API key without any flag.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from ingest_cli.errors import UsageError

# `make dev` serves the API under the template's stage (StageName, default v1), as API Gateway does.
LOCAL_STAGE_PATH = "/v1"
DEFAULT_BASE_URL = f"http://127.0.0.1:3000{LOCAL_STAGE_PATH}"
DEFAULT_API_KEY = "local-dev-key"


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key: str


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as python-dotenv reads them, taken literally; a missing or unreadable file
    is empty."""
    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8") if path.is_file() else {}
    except (OSError, UnicodeDecodeError):
        return {}
    return {name: value for name, value in values.items() if value is not None}


def _from_dotenv(dotenv: Mapping[str, str]) -> tuple[str | None, str | None]:
    base_url = dotenv.get("INGEST_BASE_URL") or None
    if base_url is None and dotenv.get("PORT", "").strip().isdigit():
        base_url = f"http://127.0.0.1:{dotenv['PORT'].strip()}{LOCAL_STAGE_PATH}"
    api_key = dotenv.get("INGEST_API_KEY") or None
    if api_key is None:
        keys = [key.strip() for key in dotenv.get("API_KEYS", "").split(",") if key.strip()]
        api_key = keys[0] if keys else None
    return base_url, api_key


def resolve(
    base_url: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    dotenv_url, dotenv_key = _from_dotenv(read_dotenv((cwd or Path.cwd()) / ".env"))
    url = base_url or environ.get("INGEST_BASE_URL") or dotenv_url or DEFAULT_BASE_URL
    key = api_key or environ.get("INGEST_API_KEY") or dotenv_key or DEFAULT_API_KEY
    return Settings(base_url=checked_base_url(url), api_key=key)


def checked_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"the base URL must be an http:// or https:// URL, not {url!r}")
    return url.strip().rstrip("/")
