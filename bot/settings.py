"""Environment (secrets, locations) + one settings file → a frozen ``Settings``, built once.

Nothing reads ``os.environ`` at import time; ``Settings.load`` takes a snapshot so tests
can pass their own environment. The packaged ``bot/settings.toml`` documents every key
with its default; ``DEPTBOT_SETTINGS`` (or ``--settings``) points at a file that overrides
any of them, and ``DEPTBOT_<SECTION>__<KEY>`` variables override both. Every value is
checked against ``bot/settings_schema.py`` when loaded: a wrong type, an unknown key or
section, or an unusable variable is a ConfigError naming the file and line (or the
variable) and the setting. Secrets (API keys, signing secrets) come only from the
environment and are not settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.settings_schema import DEFAULTS_FILE, SettingsModel, read_toml, validate

__all__ = ["DEFAULTS_FILE", "Settings", "SettingsError"]


class SettingsError(ConfigError):
    """Every problem found in the settings; the first one is the message."""

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        first, more = problems[0], len(problems) - 1
        note = f" (and {more} more problem{'s' if more != 1 else ''}: run deptbot check)" if more else ""
        super().__init__(first.problem + note, file=first.file, line=first.line, field=first.field)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Settings:
    departments_dir: Path
    state_dir: Path
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    file: Mapping[str, Any] = field(default_factory=dict)  # validated: defaults + file + env
    settings_file: Path | None = None
    problems: tuple[ConfigError, ...] = ()  # only with ``load(collect=True)``

    @classmethod
    def load(
        cls,
        *,
        departments: str | Path | None = None,
        state: str | Path | None = None,
        settings_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        collect: bool = False,
    ) -> Settings:
        """Read and check the settings. A problem raises SettingsError (all of them in
        ``.problems``); with ``collect=True`` they are returned in ``.problems`` instead,
        and each bad value is replaced by its packaged default (for ``deptbot check``)."""
        env = dict(os.environ if env is None else env)
        dep = Path(departments or env.get("DEPTBOT_DEPARTMENTS") or "departments")
        st = Path(state or env.get("DEPTBOT_STATE") or ".deptbot")
        override = settings_file or env.get("DEPTBOT_SETTINGS")
        path = Path(override) if override else None
        values, problems = validate(read_toml(path) if path else {}, env, file=path)
        if problems and not collect:
            raise SettingsError(problems)
        return cls(
            departments_dir=dep,
            state_dir=st,
            env=env,
            file=values.model_dump(),
            settings_file=path,
            problems=tuple(problems),
        )

    @cached_property
    def values(self) -> SettingsModel:
        """Every setting, typed (checked again on first use: ``file`` may be built by hand)."""
        values, problems = validate(self.file, {})
        if problems:
            where = self.settings_file or "settings"
            raise SettingsError([ConfigError(p.problem, file=where, field=p.field) for p in problems])
        return values

    def section(self, name: str) -> Mapping[str, Any]:
        """One ``[name]`` table as plain data (prefer the typed ``values``)."""
        value = self.file.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError("must be a table", file=self.settings_file or DEFAULTS_FILE, field=name)
        return value

    @property
    def retrieval(self) -> Mapping[str, Any]:
        return self.section("retrieval")
