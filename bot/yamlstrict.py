"""The one YAML reader for everything deptbot reads: department files, ``groups.yaml``,
``_access.yaml`` and Markdown front matter.

Why strict: these files decide who may read what, and they are written by people. A
lenient parser turns mistakes into wider access, so this one refuses what a person did not
mean or what can exhaust the process:

* aliases (``*name``) and merge keys (``<<``): a few hundred bytes of nested aliases expand
  to gigabytes ("billion laughs"); no deptbot file needs them;
* duplicate keys at any level: PyYAML silently keeps the last one, so a second
  ``audience:`` line would quietly replace the first;
* input over ``max_bytes`` and nesting deeper than ``MAX_DEPTH``.

Every refusal is a ``ConfigError`` naming the file, the line and (where known) the field.
The returned line map lets callers name the line of a field that fails validation later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

MAX_DEPTH = 32
DEFAULT_MAX_BYTES = 256 * 1024

Lines = dict[tuple[str | int, ...], int]
"""Key path (mapping keys as strings, sequence indexes as ints) → 1-based line."""


class _Refused(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases before they are resolved (no expansion ever happens)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(problem="aliases (*name) are not allowed", problem_mark=event.start_mark)
        return super().compose_node(parent, index)


def _check_tree(node: yaml.Node, prefix: tuple[str | int, ...], depth: int, lines: Lines) -> None:
    if depth > MAX_DEPTH:
        raise _Refused(problem=f"nesting deeper than {MAX_DEPTH} levels", problem_mark=node.start_mark)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise _Refused(problem="merge keys (<<) are not allowed", problem_mark=key.start_mark)
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                raise _Refused(
                    problem=f"duplicate key {name!r} (first on line {seen[name]})",
                    problem_mark=key.start_mark,
                )
            seen[name] = line
            lines[(*prefix, name)] = line
            _check_tree(value, (*prefix, name), depth + 1, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*prefix, i)] = item.start_mark.line + 1
            _check_tree(item, (*prefix, i), depth + 1, lines)


def loads(
    text: str, *, source: Path | str, max_bytes: int = DEFAULT_MAX_BYTES, line_offset: int = 0
) -> tuple[Any, Lines]:
    """Parse one YAML document strictly; returns ``(data, lines)``.

    ``line_offset`` shifts reported lines (front matter starts after the ``---`` line).
    """
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ConfigError(f"is larger than {max_bytes // 1024} KB", file=source)
    loader = _StrictLoader(text)
    lines: Lines = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        _check_tree(node, (), 0, lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark is not None else None
        problem = exc.problem or "unreadable"
        if line is not None:
            lines = {k: v + line_offset for k, v in lines.items()}
        raise ConfigError(f"is not valid YAML: {problem}", file=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML ({type(exc).__name__})", file=source) from None
    except RecursionError:
        raise ConfigError(f"is nested too deeply (more than {MAX_DEPTH} levels)", file=source) from None
    finally:
        loader.dispose()
    if line_offset:
        lines = {k: v + line_offset for k, v in lines.items()}
    return data, lines


def load_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Any, Lines]:
    """Read and parse a YAML file strictly; size is checked before reading it whole."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"is larger than {max_bytes // 1024} KB", file=path)
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror or type(exc).__name__})", file=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", file=path) from None
    return loads(text, source=path, max_bytes=max_bytes)
