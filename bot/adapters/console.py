"""Terminal rendering of an ``Answer`` (used by ``deptbot ask``, ``run`` and ``chat``).

Plain text with no markup from documents interpreted: rich is used only for layout, and
every string that came from a document or a model is passed through ``escape``.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Any

from bot.adapters.render import Table, parts
from bot.core.ports import IndexReport
from bot.core.types import Answer, Citation, Status

# ANSI/VT escape sequences (CSI, OSC incl. OSC 52 clipboard writes, DCS/SOS/PM/APC strings,
# two-byte ESC sequences), in their 7-bit and 8-bit (C1) forms.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b[ -/]*[0-~]?",
    re.S,
)
# Controls other than newline and tab, and bidi overrides that reorder what is shown.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text that cannot drive a terminal: escape sequences removed, other controls → "?".

    Everything the CLI prints passes through here, because answers, titles, snippets and
    file names come from documents that anyone with write access to a folder controls.
    """
    return _CONTROLS.sub("?", _ESCAPES.sub("", text))


MIN_WIDTH = 40  # narrower terminals (or a bogus COLUMNS) get 40-column lines anyway
PROSE_WIDTH = 88  # answer text stays readable on wide terminals


def terminal_width() -> int:
    """Columns to lay out for: the terminal's (``COLUMNS`` first), at least ``MIN_WIDTH``;
    88 when stdout is not a terminal (pipes, files, tests)."""
    return max(MIN_WIDTH, shutil.get_terminal_size((PROSE_WIDTH, 24)).columns)


def plural(n: int, word: str) -> str:
    """``1 template``, ``0 templates``, ``2 files`` (regular English plurals only)."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _updated(c: Citation) -> str:
    return f"({c.dated})" if c.modified else ""  # "(updated 2025-03-01)" or "(indexed …)"


def source_line(c: Citation) -> str:
    where = c.path + (f" › {c.anchor}" if c.anchor and not c.anchor.startswith("page") else "")
    if c.anchor.startswith("page"):
        where += f", {c.anchor}"
    return f"[{c.n}] {c.title} — {where}   {_updated(c)}".rstrip()


def _source_lines(c: Citation, width: int) -> list[str]:
    """One source, wrapped to ``width`` with continuation lines indented under the title;
    paths are never broken inside a word, so they stay copyable."""
    line = "  " + source_line(c)
    if len(line) <= width:
        return [line]
    indent = " " * (len(f"  [{c.n}] "))
    # the three spaces before "(updated …)" only align it on one line
    text = source_line(c).replace(f"   ({c.date_kind}", f" ({c.date_kind}")
    return textwrap.wrap(
        text,
        width=width,
        initial_indent="  ",
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _footer(answer: Answer) -> list[str]:
    """What produced the answer, what it cost and how long it took."""
    if answer.status == Status.DONT_KNOW:
        foot = ["no answer generated"]  # nothing relevant enough: no model was asked
    elif answer.status == Status.SOURCES_ONLY and not answer.generator:
        foot = ["sources only"]
    else:
        foot = [answer.generator or "no generator"]
    if answer.model and answer.model != answer.generator:
        foot.append(answer.model)
    if answer.route and answer.route not in ("local", "none"):
        foot.append(f"route {answer.route}")
    if answer.usage.input_tokens or answer.usage.output_tokens:
        foot.append(f"{answer.usage.input_tokens}+{answer.usage.output_tokens} tokens")
        foot.append(f"${answer.usage.cost:.4f}")
    if answer.cache_hit:
        foot.append("cached")
    foot.append(f"{answer.timings.total_ms:.0f} ms")
    foot.append(f"request {answer.request_id}")
    return foot


def _join_wrapped(parts: list[str], width: int) -> list[str]:
    """``a · b · c`` on as few lines as fit ``width``, breaking only between parts."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


_LIST_ITEM = re.compile(r"^(\s*(?:[-*•]|\d{1,3}[.)])\s+)")


def _wrap_paragraphs(text: str, width: int) -> str:
    """Wrap each line of ``text`` on its own: a model's bullet lists and paragraph breaks
    survive, and a list item's continuation lines hang under its text."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            out.append("")
            continue
        item = _LIST_ITEM.match(line)
        lead = len(item.group(1)) if item else len(line) - len(line.lstrip())
        out.append(textwrap.fill(line, width=width, subsequent_indent=" " * lead, break_long_words=False))
    return "\n".join(out)


def text_table(table: Table, width: int) -> str:
    """A table as aligned columns within ``width``: a header, a rule, one line per row (cells
    wrap inside their column when the table is wider than the terminal)."""
    n = len(table.header)
    grid = [list(table.header), *[list(r) for r in table.rows]]
    natural = [max(len(row[k]) for row in grid) or 1 for k in range(n)]
    room = max(n * 6, width - 3 * (n - 1))
    widths = natural[:]
    while sum(widths) > room:
        k = widths.index(max(widths))  # shrink the widest column first
        widths[k] = max(6, widths[k] - 1)
        if all(w == 6 for w in widths):
            break
    if any(w < min(natural[k], 12) for k, w in enumerate(widths)):
        return _records(table, width)  # too many columns to read side by side
    out: list[str] = []
    for i, row in enumerate(grid):
        wrapped = [textwrap.wrap(cell, widths[k]) or [""] for k, cell in enumerate(row)]
        for line_no in range(max(len(w) for w in wrapped)):
            cells = [(w[line_no] if line_no < len(w) else "").ljust(widths[k]) for k, w in enumerate(wrapped)]
            out.append(" │ ".join(cells).rstrip())
        if i == 0:
            out.append("─┼─".join("─" * w for w in widths))
    return "\n".join(out)


def _records(table: Table, width: int) -> str:
    """A wide table one row at a time, "header: value" per line (like psql's expanded
    display), rows separated by a short rule."""
    blocks: list[str] = []
    for row in table.rows:
        lines: list[str] = []
        for head, cell in zip(table.header, row, strict=False):
            lines += textwrap.wrap(f"{head}: {cell}", width=width, subsequent_indent="  ") or [f"{head}:"]
        blocks.append("\n".join(lines))
    return ("\n" + "─" * min(width, 24) + "\n").join(blocks)


def answer_body(text: str, prose_width: int, width: int) -> str:
    """The answer's text: paragraphs and lists wrapped, tables as aligned columns."""
    blocks = [
        text_table(part, width) if isinstance(part, Table) else _wrap_paragraphs(part.text, prose_width)
        for part in parts(text)
    ]
    return "\n\n".join(blocks)


def render_text(answer: Answer, *, width: int | None = None) -> str:
    """The UX.md terminal layout, wrapped to the terminal (``terminal_width``)."""
    width = width or terminal_width()
    prose = min(width, PROSE_WIDTH)
    lines: list[str] = []
    wrap = lambda s: _wrap_paragraphs(s, prose)  # noqa: E731
    if answer.status in (Status.DENIED, Status.ERROR):
        lines.append(wrap(answer.text))
        lines.append(f"request {answer.request_id}")
        return "\n".join(lines)
    n = len(answer.citations)
    head = [answer.department_title or answer.department or "deptbot"]
    head.append(plural(n, "source"))
    head.append(f"confidence {answer.confidence:.2f}")
    if answer.low_confidence and answer.status == Status.ANSWERED:
        head.append("low confidence")
    lines += _join_wrapped(head, width)
    lines.append("")
    lines.append(answer_body(answer.text, prose, width))
    if answer.notice and answer.notice not in answer.text:
        lines += ["", wrap(answer.notice)]
    if answer.citations:
        lines += ["", "Sources"]
        for c in answer.citations:
            lines += _source_lines(c, width)
    lines += ["", *_join_wrapped(_footer(answer), width)]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value if not isinstance(value.value, int) else value.name.lower()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def answer_dict(answer: Answer) -> dict[str, Any]:
    """Every Answer field as JSON-safe values (``ask --json``)."""
    data: dict[str, Any] = _plain(asdict(answer))
    data["timings"] = {k: round(v, 2) for k, v in data["timings"].items()}
    return data


def render_json(answer: Answer) -> str:
    return json.dumps(answer_dict(answer), ensure_ascii=False, indent=2)


def report_table(reports: list[IndexReport]) -> str:
    """The ``added changed removed unchanged failed`` table plus failed files."""
    out = [
        f"{'department':<14}{'added':>7}{'changed':>9}{'removed':>9}{'unchanged':>11}{'failed':>8}{'chunks':>8}"
    ]
    for r in reports:
        out.append(
            f"{r.department:<14}{r.added:>7}{r.changed:>9}{r.removed:>9}{r.unchanged:>11}"
            f"{len(r.failed):>8}{r.chunks:>8}"
        )
    for r in reports:
        for f in r.failed:
            out.append(f"failed: {f.path} — {f.reason} (skipped; the rest is indexed)")
    for r in reports:
        for f in r.warnings:  # indexed, but an audience group does not exist: hidden from it
            out.append(f"warning: {f.path}: {f.reason}")
    return "\n".join(out)
