"""Where knowledge folders may live: inside the configuration tree (the parent of the
departments folder) or an operator's ``knowledge.allowed_roots``, and never shared between
departments (the same folder, or one inside the other)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bot.errors import ConfigError
from bot.settings import DEFAULTS_FILE, Settings
from bot.yamlstrict import Lines


class Claim(Protocol):
    """A department file's claim on a knowledge folder, as the overlap check sees it."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def lines(self) -> Lines: ...

    @property
    def knowledge(self) -> Path | None: ...


def inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def knowledge_folder(
    path: Path, raw: str, lines: Lines, tree: Path, roots: tuple[Path, ...], problems: list[ConfigError]
) -> tuple[Path | None, bool]:
    """The resolved folder (None if missing) and whether it is in an allowed place."""
    line = lines.get(("knowledge",))
    folder = (path.parent / raw).resolve()
    if not folder.is_dir():
        problems.append(
            ConfigError(f"knowledge folder {folder} does not exist", file=path, line=line, field="knowledge")
        )
        return None, False
    if inside(folder, tree) or any(inside(folder, r) for r in roots):
        return folder, True
    problems.append(
        ConfigError(
            f"knowledge folder {folder} is outside the configuration folder {tree}; "
            "list its parent in the settings' knowledge.allowed_roots if that is intended",
            file=path,
            line=line,
            field="knowledge",
        )
    )
    return folder, False  # still compared with the others: overlaps are reported too


def overlapping_knowledge(files: Sequence[Claim]) -> list[ConfigError]:
    """Two departments must not share documents: the same folder, or one inside the other."""
    out: list[ConfigError] = []
    placed = [f for f in files if f.knowledge is not None]
    for i, a in enumerate(placed):
        for b in placed[i + 1 :]:
            assert a.knowledge is not None and b.knowledge is not None
            if a.knowledge == b.knowledge:
                how = f"both use {a.knowledge}"
            elif inside(b.knowledge, a.knowledge):
                how = f"overlap: {b.knowledge} is inside {a.knowledge}"
            elif inside(a.knowledge, b.knowledge):
                how = f"overlap: {b.knowledge} contains {a.knowledge}"
            else:
                continue
            out.append(
                ConfigError(
                    f"departments {a.name!r} ({a.path.name}) and {b.name!r} ({b.path.name}) {how}; "
                    "each department needs its own knowledge folder",
                    file=b.path,
                    line=b.lines.get(("knowledge",)),
                    field="knowledge",
                )
            )
    return out


def knowledge_roots(settings: Settings) -> tuple[Path, ...]:
    """The settings' ``knowledge.allowed_roots``: absolute folders outside the configuration
    tree where an operator allows knowledge folders to live."""
    raw = settings.section("knowledge").get("allowed_roots", [])
    where = settings.settings_file or DEFAULTS_FILE
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise ConfigError(
            "must be a list of absolute folder paths", file=where, field="knowledge.allowed_roots"
        )
    for r in raw:
        if not Path(r).is_absolute():
            raise ConfigError(
                f"{r!r} is not an absolute path; list absolute folders",
                file=where,
                field="knowledge.allowed_roots",
            )
    return tuple(Path(r) for r in raw)
