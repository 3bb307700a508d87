"""The runner's own settings: `.env.example` < `.env` < process environment < explicit overrides.

`.env.example` holds the safe defaults (it is committed); `.env` is the developer's copy (git-ignored).
A setting is *explicit* when it comes from anywhere but `.env.example`: explicit settings beat the
template's values for the variables a function declares, defaults only fill what the template leaves
empty (see docs/local-runner.md, "Precedence").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as python-dotenv reads them (comments, quotes, `export`), taken literally:
    no `${VAR}` expansion, and a name without `=` is no setting."""
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=False, encoding="utf-8")
    return {name: value for name, value in values.items() if value is not None}


@dataclass
class Settings:
    values: dict[str, str]
    explicit: set[str] = field(default_factory=set)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def explicit_value(self, name: str) -> str | None:
        """The value when someone set it (not a `.env.example` default), else None."""
        return self.values[name] if name in self.explicit and name in self.values else None

    @property
    def api_keys(self) -> list[str]:
        return [key.strip() for key in self.get("API_KEYS").split(",") if key.strip()]


def load_settings(
    root: Path,
    overrides: Mapping[str, str] | None = None,
    read_dotenv: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    defaults = read_env_file(root / ".env.example")
    explicit: dict[str, str] = read_env_file(root / ".env") if read_dotenv else {}
    # Only the documented knobs (and what .env names) are taken from the shell, so an unrelated
    # variable of the developer's session cannot change what the functions see.
    known = set(defaults) | set(explicit)
    environ = os.environ if environ is None else environ
    explicit.update({name: value for name, value in environ.items() if name in known})
    explicit.update(overrides or {})
    return Settings(values={**defaults, **explicit}, explicit=set(explicit))
