"""Environment (secrets, locations) + one settings file → a frozen ``Settings``, built once.

Nothing reads ``os.environ`` at import time; ``Settings.load`` takes a snapshot so tests
can pass their own environment. The packaged ``bot/settings.toml`` documents every key
with its default; ``DEPTBOT_SETTINGS`` (or ``--settings``) points at a file that overrides
any of them. Secrets (API keys, signing secrets) come only from the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("settings.toml")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("settings file does not exist", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML ({exc})", file=path) from None


@dataclass(frozen=True)
class Settings:
    departments_dir: Path
    state_dir: Path
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    file: Mapping[str, Any] = field(default_factory=dict)  # merged defaults + override
    settings_file: Path | None = None

    @classmethod
    def load(
        cls,
        *,
        departments: str | Path | None = None,
        state: str | Path | None = None,
        settings_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        env = dict(os.environ if env is None else env)
        dep = Path(departments or env.get("DEPTBOT_DEPARTMENTS") or "departments")
        st = Path(state or env.get("DEPTBOT_STATE") or ".deptbot")
        data = _read_toml(DEFAULTS_FILE)
        override = settings_file or env.get("DEPTBOT_SETTINGS")
        if override:
            data = _merge(data, _read_toml(Path(override)))
        return cls(
            departments_dir=dep,
            state_dir=st,
            env=env,
            file=data,
            settings_file=Path(override) if override else None,
        )

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.file.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError("must be a table", file=self.settings_file or DEFAULTS_FILE, field=name)
        return value

    @property
    def retrieval(self) -> Mapping[str, Any]:
        return self.section("retrieval")
