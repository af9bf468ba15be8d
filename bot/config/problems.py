"""YAML read strictly with line numbers, and problems located and shown.

Every problem is a ``ConfigError`` naming the file, the line, the field and what is wrong;
``describe`` shows one relative to a base folder for ``deptbot check``.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import yamlstrict
from bot.errors import ConfigError
from bot.yamlstrict import Lines

_DUPLICATE = re.compile(r"duplicate key '([^']*)'")


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """``bot.yamlstrict.load_file`` (no aliases, merge keys, duplicate keys, deep nesting or
    files over 256 KB), with a duplicate key also named as the error's field."""
    try:
        return yamlstrict.load_file(path)
    except ConfigError as exc:
        found = _DUPLICATE.search(exc.problem) if exc.field is None else None
        if found:
            raise ConfigError(exc.problem, file=exc.file, line=exc.line, field=found.group(1)) from None
        raise


def line_for(lines: Lines, loc: tuple[str | int, ...]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validation_problems(path: Path, exc: ValidationError, lines: Lines) -> list[ConfigError]:
    """Every error pydantic found in one file (not only the first)."""
    out: list[ConfigError] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see README 'Department config')"
        elif err["type"] == "missing":
            msg = "is required"
        field = ".".join(str(p) for p in loc) or None
        out.append(ConfigError(msg, file=path, line=line_for(lines, loc), field=field))
    return out


def describe(err: ConfigError, base: Path | None = None) -> str:
    """``file:line: field: problem``, with the file shown relative to ``base`` when inside it."""
    shown: str | None = err.file
    if err.file and base is not None:
        # abspath, not resolve: a problem about a symbolic link names the link, not its target
        with contextlib.suppress(ValueError):
            shown = str(Path(os.path.abspath(err.file)).relative_to(os.path.abspath(base)))
    return str(ConfigError(err.problem, file=shown, line=err.line, field=err.field))
