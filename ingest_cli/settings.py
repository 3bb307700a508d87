"""Where the API is and which key to send: flag, then environment, then `.env`, then the local runner.

Nothing is assumed: without a flag, a variable or a `.env` entry, the base URL is the one the running
`make dev` wrote to its state file (`.local/devstack.json`: port and stage included), and the key is
the first of `API_KEYS` in `.env`, else in `.env.example` (the runner's own defaults), all in the
current directory: in a checkout the CLI finds the local runner without any flag. Failing that, the
API and the key the running `make localstack` deployed (`.local/localstack/api.json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from ingest_cli.errors import UsageError

# Written by `make dev` while it runs (devstack), relative to the checkout.
STACK_STATE = Path(".local") / "devstack.json"
# Written by `make localstack` once its deployment answers (localstack/host.py): its API and key.
LOCALSTACK_STATE = Path(".local") / "localstack" / "api.json"


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


def _first_key(dotenv: Mapping[str, str]) -> str | None:
    keys = [key.strip() for key in dotenv.get("API_KEYS", "").split(",") if key.strip()]
    return keys[0] if keys else None


def running_stack_state(state_file: Path) -> dict:
    """What the `make dev` or `make localstack` that wrote `state_file` said, if that process still
    runs; else nothing."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
    except PermissionError:  # alive, another user's
        pass
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return state if isinstance(state, dict) else {}


def running_stack_url(state_file: Path) -> str | None:
    """The API URL of the `make dev` that wrote `state_file`, if that process still runs."""
    return running_stack_state(state_file).get("api") or None


def resolve(
    base_url: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    dotenv = read_dotenv(cwd / ".env")
    url = (
        base_url
        or environ.get("INGEST_BASE_URL")
        or dotenv.get("INGEST_BASE_URL")
        or running_stack_url(cwd / STACK_STATE)
    )
    localstack: dict = {}
    if not url:
        localstack = running_stack_state(cwd / LOCALSTACK_STATE)
        url = localstack.get("api")
    if not url:
        raise UsageError(
            "no API to call: start `make dev` (or `make localstack`) in this directory, "
            "or give --base-url (or INGEST_BASE_URL)"
        )
    key = (
        api_key
        or environ.get("INGEST_API_KEY")
        or dotenv.get("INGEST_API_KEY")
        # The deployment's own key: the runner's API_KEYS mean nothing to LocalStack's gateway.
        or localstack.get("api_key")
        or _first_key(dotenv)
        or _first_key(read_dotenv(cwd / ".env.example"))
    )
    if not key:
        raise UsageError("no API key: give --api-key (or INGEST_API_KEY, or API_KEYS in .env)")
    return Settings(base_url=checked_base_url(url), api_key=key)


def checked_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"the base URL must be an http:// or https:// URL, not {url!r}")
    return url.strip().rstrip("/")
