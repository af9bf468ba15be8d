"""Terminal rendering of an ``Answer`` (used by ``deptbot ask``, ``run`` and ``chat``).

Plain text with no markup from documents interpreted: rich is used only for layout, and
every string that came from a document or a model is passed through ``escape``.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Any

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


def _updated(c: Citation) -> str:
    return f"(updated {c.modified:%Y-%m-%d})" if c.modified else ""


def source_line(c: Citation) -> str:
    where = c.path + (f" › {c.anchor}" if c.anchor and not c.anchor.startswith("page") else "")
    if c.anchor.startswith("page"):
        where += f", {c.anchor}"
    return f"[{c.n}] {c.title} — {where}   {_updated(c)}".rstrip()


def render_text(answer: Answer, *, width: int = 88) -> str:
    """The UX.md terminal layout."""
    lines: list[str] = []
    wrap = lambda s: textwrap.fill(s, width=width, break_long_words=False)  # noqa: E731
    if answer.status in (Status.DENIED, Status.ERROR):
        lines.append(wrap(answer.text))
        lines.append(f"request {answer.request_id}")
        return "\n".join(lines)
    n = len(answer.citations)
    head = [answer.department_title or answer.department or "deptbot"]
    head.append(f"{n} source{'s' if n != 1 else ''}")
    head.append(f"confidence {answer.confidence:.2f}")
    if answer.low_confidence and answer.status == Status.ANSWERED:
        head.append("low confidence")
    lines.append(" · ".join(head))
    lines.append("")
    lines.append(wrap(answer.text))
    if answer.notice and answer.notice not in answer.text:
        lines += ["", wrap(answer.notice)]
    if answer.citations:
        lines += ["", "Sources"]
        lines += ["  " + source_line(c) for c in answer.citations]
    foot = [answer.generator or "none"]
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
    lines += ["", " · ".join(foot)]
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
    return "\n".join(out)
