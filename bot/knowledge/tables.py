"""Tables and lists as Markdown, the one internal form every format is turned into.

Why: downstream code (the chunker, the extractive answerer, the renderers) recognises a
table by its ``|`` lines and its first row as the header, and a list by one item per line
with its bullet or number. HTML, DOCX, CSV and PDF parsers build their tables with
``pipe_table`` so cells never run together ("near the liftsLS-F2-MFP…").

PDFs have no table markup: ``layout_to_markdown`` reads pypdf's layout-mode text (which
keeps each line's horizontal positions) and turns runs of lines whose cells, separated by
two or more spaces, line up under a header into a pipe table; bullet glyphs and "1   item"
lines become Markdown list items. It is a heuristic that prefers leaving text as prose to
inventing a table: a run needs a header plus at least two rows whose cells each fall under
one header column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TABLE_LINE = re.compile(r"^\s*\|")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+\S")
_WS = re.compile(r"\s+")


def cell(text: str) -> str:
    """One table cell on one line: whitespace collapsed, ``|`` escaped (once)."""
    return re.sub(r"(?<!\\)\|", r"\\|", _WS.sub(" ", text).strip())


def pipe_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; the first row is the header, short rows are padded."""
    rows = [[cell(c) for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    lines = []
    for i, r in enumerate(rows):
        padded = list(r) + [""] * (width - len(r))
        lines.append("| " + " | ".join(padded) + " |")
        if i == 0:
            lines.append("|" + "|".join(["---"] * width) + "|")
    return "\n".join(lines)


# ── PDF layout text ──────────────────────────────────────────────────────────────────

_CELL = re.compile(r"\S+(?: \S+)*")  # words separated by single spaces; 2+ spaces split cells
_BULLET = re.compile(r"^[\x7f\u2022\u25cf\u25aa\u25e6\u2023\u2219\u00b7\u25a0\u2013\u2014-]\s*(?=\S)")
_NUMBERED = re.compile(r"^(\d{1,3})[.)]?\s{2,}(?=\S)")
ALIGN = 3  # characters of slack when matching a cell to a column


def _cells(line: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _CELL.finditer(line)]


def _is_list_like(cells: list[tuple[int, int, str]]) -> bool:
    first = cells[0][2]
    return bool(re.fullmatch(r"[\x7f\u2022\u25cf\u25aa\u25e6\u2023\u2219\u00b7\u25a0-]|\d{1,3}[.)]?", first))


def _columns_of(cells: list[tuple[int, int, str]], cols: list[tuple[int, int]]) -> list[int] | None:
    """The header column each cell falls under, or None when one does not line up."""
    out: list[int] = []
    for start, end, _ in cells:
        best, overlap = -1, 0
        for j, (cs, ce) in enumerate(cols):
            o = min(end, ce + ALIGN) - max(start, cs - ALIGN)
            if o > overlap:
                best, overlap = j, o
        if best < 0 or (out and best <= out[-1]):
            return None
        out.append(best)
    return out


def _table_at(lines: list[str], i: int) -> tuple[list[list[str]], int] | None:
    """A table starting at line ``i`` (its header) and the index after it, or None."""
    header = _cells(lines[i])
    if len(header) < 2 or _is_list_like(header):
        return None
    cols = [(s, e) for s, e, _ in header]
    rows: list[list[str]] = [[t for _, _, t in header]]
    j, end = i + 1, i + 1
    blanks = 0
    while j < len(lines):
        if not lines[j].strip():
            blanks += 1
            if blanks > 1:
                break
            j += 1
            continue
        cells = _cells(lines[j])
        where = _columns_of(cells, cols)
        if where is None:
            break
        if len(cells) == 1 and where[0] == 0 and len(rows) > 1:
            break  # one cell under the first column: prose (or a caption) after the table
        blanks = 0
        row = [""] * len(cols)
        for (_, _, text), k in zip(cells, where, strict=True):
            row[k] = text
        if not row[0] and len(rows) > 1:  # a wrapped cell: continue the row above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row, strict=True)]
        elif len(cells) >= 2:
            rows.append(row)
        else:
            break
        j += 1
        end = j
    body = rows[1:]
    if len(body) >= 2 or (len(body) == 1 and len(cols) >= 3):
        return rows, end
    return None


def layout_to_markdown(text: str) -> str:
    """pypdf layout-mode text → prose lines, list items and pipe tables."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    indents = [len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()]
    cut = min(indents, default=0)
    lines = [ln[cut:] if ln.strip() else "" for ln in lines]
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            if out and out[-1] != "":
                out.append("")
            i += 1
            continue
        found = _table_at(lines, i)
        if found is not None:
            rows, i = found
            if out and out[-1] != "":
                out.append("")
            out += [pipe_table(rows), ""]
            continue
        bare = line.strip()
        bare = _BULLET.sub("- ", bare)
        bare = _NUMBERED.sub(r"\1. ", bare)
        out.append(_WS.sub(" ", bare))
        i += 1
    return "\n".join(out).strip()
