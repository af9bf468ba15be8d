"""The chosen units, quoted: "From <document> › <section> [n]:" and the unit as written.

Quoting instead of stitching sentences is the point (issue #15): the words are the
document's, a list keeps its items, a table keeps its header and stays a Markdown pipe
table, which every surface then renders natively (``bot.adapters.render.blocks``). One
marker per quoted section keeps the text readable; the citation is validated afterwards
like any generator's.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.types import QuotedUnit, SourceChunk
from bot.llm.extract.select import Scored
from bot.llm.extract.units import LIST, TABLE, Unit

MAX_UNITS = 3
MAX_WORDS = 170  # prose budget; a table counts as one unit whatever its size
SAME_SECTION, OTHER_SECTION = 0.6, 0.8  # share of the best score a further unit needs


def choose(ranked: Sequence[Scored]) -> list[Scored]:
    """The best unit, plus close runners-up: more easily from the same section."""
    if not ranked:
        return []
    best = ranked[0]
    chosen = [best]
    words = 0 if best.unit.kind == TABLE else best.unit.words()
    for cand in ranked[1:]:
        if len(chosen) >= MAX_UNITS:
            break
        if best.groups - cand.groups:
            continue  # misses a term the best unit has: another variant ("birth parents" vs "fathers")
        same = cand.source == best.source
        if cand.score < best.score * (SAME_SECTION if same else OTHER_SECTION):
            continue
        size = 0 if cand.unit.kind == TABLE else cand.unit.words()
        if words + size > MAX_WORDS:
            continue
        chosen.append(cand)
        words += size
    # The best section first; inside a section, the document's own order.
    first: dict[int, int] = {}
    for rank, c in enumerate(chosen):
        first.setdefault(c.source, rank)
    return sorted(chosen, key=lambda c: (first[c.source], c.unit.position))


def where(source: SourceChunk, unit: Unit) -> str:
    """ "Document › Section" ("Calendar, p. 2" for a page, "Data, rows 1–20" for rows)."""
    anchor = source.anchor.strip()
    if unit.heading and unit.heading not in anchor:
        anchor = f"{anchor} › {unit.heading}" if anchor else unit.heading
    if not anchor:
        return source.title
    if anchor.lower().startswith(("page ", "row")):
        return (
            f"{source.title}, {'p. ' + anchor[5:].strip() if anchor.lower().startswith('page ') else anchor}"
        )
    return f"{source.title} › {anchor}"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split()) or " "


def quote(scored: Scored) -> str:
    """One unit as Markdown, exactly as the document says it."""
    unit = scored.unit
    parts: list[str] = []
    if unit.intro:
        parts.append(unit.intro)
    if unit.kind == LIST:
        items = [unit.items[k] for k in scored.rows] if scored.rows else list(unit.items)
        parts.append("\n".join(items))
        if len(items) < len(unit.items):
            parts.append(f"({len(items)} of the {len(unit.items)} items; the source has the rest.)")
    elif unit.kind == TABLE:
        rows = [unit.rows[k] for k in scored.rows] if scored.rows else list(unit.rows)
        lines = ["| " + " | ".join(_cell(c) for c in unit.header) + " |"]
        lines.append("|" + "|".join("---" for _ in unit.header) + "|")
        lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
        parts.append("\n".join(lines))
        if scored.rows_by == "first" and len(rows) < len(unit.rows):
            parts.append(f"(The first {len(rows)} of {len(unit.rows)} rows; the source has the rest.)")
    else:
        parts.append(unit.text)
    return "\n\n".join(parts)


def compose(chosen: Sequence[Scored], sources: Sequence[SourceChunk]) -> str:
    """The answer text: each source's units under one "From … [n]:" line."""
    blocks: list[str] = []
    last: tuple[int, str] | None = None
    for c in chosen:
        source = sources[c.source - 1]
        head = where(source, c.unit)
        if last != (c.source, head):
            blocks.append(f"From {head} [{c.source}]:")
            last = (c.source, head)
        blocks.append(quote(c))
    return "\n\n".join(blocks)


def quoted(chosen: Sequence[Scored], sources: Sequence[SourceChunk]) -> tuple[QuotedUnit, ...]:
    """What the text rests on, best first, for calibration and the audit."""
    ordered = sorted(chosen, key=lambda c: -c.score)
    return tuple(
        QuotedUnit(
            source=c.source,
            chunk_id=sources[c.source - 1].chunk_id,
            doc_id=sources[c.source - 1].doc_id,
            anchor=sources[c.source - 1].anchor,
            kind=c.unit.kind,
            coverage=c.coverage,
            score=c.score,
            rows_by=c.rows_by,
        )
        for c in ordered
    )
