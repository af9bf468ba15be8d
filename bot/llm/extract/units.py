"""A retrieved chunk, cut into whole units of meaning: paragraphs, lists, tables.

Quoting whole units is what keeps an offline answer faithful: a sentence picked out of a
list's intro ("You must change your password immediately when") says nothing without the
items, and a table row read as prose loses its header. Ingest delivers tables as Markdown
pipe tables (header, ``|---|`` separator, rows; the header repeated when a table spans
chunks) and lists one item per line with their bullet or number, so that is what is
parsed here. What cannot be quoted whole is dropped, never shown cut: a paragraph that a
chunk boundary cut mid-sentence keeps only its complete sentences, an intro whose list is
not in the chunk goes, and a list item cut at the end of a chunk goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.llm.extract.text import strip_emphasis

PARAGRAPH, LIST, TABLE = "paragraph", "list", "table"
INTRO_WORDS = 60  # a longer paragraph before a list or table keeps only its last sentence

_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(?P<text>.+?)\s*#*\s*$")
_ITEM_RE = re.compile(r"^(?P<indent>\s*)(?P<mark>[-*+•]|\d{1,3}[.)])\s+(?P<text>\S.*)$")
_SEPARATOR_CELL_RE = re.compile(r"^:?-{1,}:?$")
# A sentence ends with . ! or ? (optionally closed by a quote or bracket) — or a colon
# only when what it introduces follows.
_END_RE = re.compile(r"[.!?…][\"'”’)\]]*$")
_SENTENCE_END_RE = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+[A-Z0-9\"'“(])")
_RULE_RE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$")


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a chunk.

    ``intro`` is the sentence(s) that introduce a list or table ("… when:"), quoted with it.
    ``items`` are list items with their markers ("- x", "2. y"); ``header``/``rows`` a table's
    cells. ``heading`` is a heading inside the chunk above the unit, if any.
    """

    kind: str
    text: str = ""  # a paragraph's text
    intro: str = ""
    items: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    heading: str = ""
    position: int = 0

    def plain(self) -> str:
        """Everything the unit says, as one text (for scoring and de-duplication)."""
        parts = [self.intro, self.text, *self.items]
        parts.append(" ".join(self.header))
        parts += [" ".join(r) for r in self.rows]
        return " ".join(p for p in parts if p)

    def words(self) -> int:
        return len(self.plain().split())


def complete(text: str) -> bool:
    """A paragraph or intro that reads as finished: it ends like a sentence."""
    return bool(_END_RE.search(text.rstrip()))


def complete_sentences(text: str, *, starts_mid_sentence: bool = False) -> str:
    """``text`` without a cut first or last sentence; "" when nothing complete is left."""
    text = " ".join(text.split())
    if starts_mid_sentence:
        m = _SENTENCE_END_RE.search(text)
        text = text[m.end() :].strip() if m else ""
    if not text:
        return ""
    if complete(text):
        return text
    ends = list(_SENTENCE_END_RE.finditer(text))
    return text[: ends[-1].end()].strip() if ends else ""


def last_sentence(text: str) -> str:
    ends = list(_SENTENCE_END_RE.finditer(text))
    return text[ends[-1].end() :].strip() if ends else text


def _cells(line: str) -> list[str]:
    bare = line.strip()
    if bare.startswith("|"):
        bare = bare[1:]
    if bare.endswith("|") and not bare.endswith("\\|"):
        bare = bare[:-1]
    return [strip_emphasis(c.strip()) for c in re.split(r"(?<!\\)\|", bare)]


def _is_separator(line: str) -> bool:
    cells = [c for c in _cells(line) if c]
    return bool(cells) and all(_SEPARATOR_CELL_RE.match(c.replace(" ", "")) for c in cells)


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|") and line.count("|") >= 2


def split_units(text: str) -> list[Unit]:
    """The units of one chunk, in reading order."""
    lines = text.replace("\r\n", "\n").split("\n")
    units: list[Unit] = []
    heading = ""
    para: list[str] = []
    first_block = True
    closed = False  # the open paragraph ended at a blank line
    i = 0

    def flush_para() -> str:
        nonlocal para
        joined = " ".join(" ".join(para).split())
        para = []
        return joined

    def add_paragraph(raw: str, *, first: bool) -> None:
        raw = strip_emphasis(raw)
        mid = first and bool(raw) and (raw[0].islower() or raw[0] in ",;)")
        text = complete_sentences(raw, starts_mid_sentence=mid)
        if text:
            units.append(Unit(PARAGRAPH, text=text, heading=heading, position=len(units)))

    def intro_from(raw: str, *, first: bool) -> str:
        """The paragraph just before a list or table, when it introduces it."""
        raw = strip_emphasis(raw)
        if not raw:
            return ""
        mid = first and (raw[0].islower() or raw[0] in ",;)")
        if mid:
            m = _SENTENCE_END_RE.search(raw)
            raw = raw[m.end() :].strip() if m else ""
        if not raw:
            return ""
        if not raw.rstrip().endswith(":"):
            # Not an intro: a paragraph of its own (a table caption is both, see below).
            return ""
        if len(raw.split()) > INTRO_WORDS:
            raw = last_sentence(raw)
        return raw

    while i < len(lines):
        line = lines[i]
        bare = line.strip()
        heading_m = _HEADING_RE.match(line)
        if not bare or (_RULE_RE.match(line) and not _is_table_line(line)):
            # Keep the paragraph open across the blank line: if a list or table comes next,
            # it is their intro; anything else closes it first.
            closed = bool(para)
            i += 1
            continue
        if heading_m:
            if para:
                add_paragraph(flush_para(), first=first_block)
            first_block = False
            heading = strip_emphasis(heading_m.group("text")).strip()
            closed = False
            i += 1
            continue
        if _is_table_line(line):
            block: list[str] = []
            while i < len(lines) and _is_table_line(lines[i]):
                block.append(lines[i])
                i += 1
            raw_intro = flush_para() if para else ""
            intro = intro_from(raw_intro, first=first_block)
            if raw_intro and not intro:
                # A paragraph right before a table is its caption when short; quote it with
                # the table so the rows keep their context ("All amounts are in euros …").
                caption = complete_sentences(
                    strip_emphasis(raw_intro), starts_mid_sentence=first_block and raw_intro[0].islower()
                )
                if caption and len(caption.split()) <= INTRO_WORDS:
                    intro = caption
                elif caption:
                    add_paragraph(raw_intro, first=first_block)
            first_block = False
            table = _table(block, intro=intro, heading=heading, position=len(units))
            if table is not None:
                units.append(table)
            elif intro:
                add_paragraph(intro, first=False)
            closed = False
            continue
        item = _ITEM_RE.match(line)
        if item:
            raw_intro = flush_para() if para else ""
            intro = intro_from(raw_intro, first=first_block)
            if raw_intro and not intro:
                add_paragraph(raw_intro, first=first_block)
            first_block_list = first_block
            first_block = False
            items, i = _list_items(lines, i)
            if len(items) > 1 and _numbered_heading(items[0]) and items[1].lstrip().startswith("-"):
                # "2. HOW TO REPORT" right above its bullets: the heading of the list.
                if raw_intro and intro:
                    add_paragraph(raw_intro, first=first_block)
                    intro = ""
                heading = re.sub(r"^\s*\d{1,3}[.)]\s+", "", items[0]).strip()
                items = items[1:]
            if len(items) == 1 and _numbered_heading(items[0]):
                # "1. Scope", "2. HOW TO REPORT THAT YOU ARE SICK": a numbered heading
                # (PDF, plain text), not a one-item list.
                if raw_intro and intro:
                    add_paragraph(raw_intro, first=first_block)
                heading = re.sub(r"^\s*\d{1,3}[.)]\s+", "", items[0]).strip()
                first_block = False
                closed = False
                continue
            ends_chunk = all(not rest.strip() for rest in lines[i:])
            items = _complete_items(items, ends_chunk=ends_chunk, first=first_block_list and not raw_intro)
            if items:
                units.append(
                    Unit(LIST, intro=intro, items=tuple(items), heading=heading, position=len(units))
                )
            closed = False
            continue
        if closed and para:
            add_paragraph(flush_para(), first=first_block)
            first_block = False
        closed = False
        para.append(bare)
        i += 1
    if para:
        add_paragraph(flush_para(), first=first_block)
    return units


def _list_items(lines: list[str], i: int) -> tuple[list[str], int]:
    """Consecutive list items from ``lines[i]``; wrapped lines join their item."""
    items: list[str] = []
    while i < len(lines):
        line = lines[i]
        m = _ITEM_RE.match(line)
        if m:
            mark = m.group("mark")
            mark = "-" if mark in "-*+•" else mark
            depth = len(m.group("indent").expandtabs(4)) // 2
            items.append("  " * min(depth, 3) + f"{mark} {strip_emphasis(m.group('text').strip())}")
        elif line.strip() and items and not _is_table_line(line) and not _HEADING_RE.match(line):
            if not line[:1].isspace() and complete(items[-1]) and line.strip()[:1].isupper():
                break  # a new paragraph right after the list, not a wrapped item
            items[-1] += " " + strip_emphasis(line.strip())
        else:
            break
        i += 1
    return items, i


def _numbered_heading(item: str) -> bool:
    """A short numbered line with no closing punctuation, starting with a capital: a
    one-item "list" like that is a section heading in PDFs and plain text."""
    m = re.match(r"^\s*\d{1,3}[.)]\s+(?P<text>.+)$", item)
    if not m:
        return False
    text = m.group("text").strip()
    words = text.split()
    return len(words) <= 10 and not re.search(r"[.;:!?,)]$", text) and text[:1].isupper()


def _complete_items(items: list[str], *, ends_chunk: bool, first: bool) -> list[str]:
    """Drop an item a chunk boundary cut: the last one when its list's items end with
    punctuation and it does not; the first one when it starts mid-sentence."""
    if first and items:
        text = re.sub(r"^\s*(?:-|\d{1,3}[.)])\s+", "", items[0])
        if text[:1].islower() and not any(i.strip()[2:3].islower() for i in items[1:2]):
            items = items[1:]
    if ends_chunk and len(items) > 1:
        punctuated = [bool(re.search(r"[.;:!?,)]$", i)) for i in items[:-1]]
        if all(punctuated) and not re.search(r"[.;:!?,)]$", items[-1]):
            items = items[:-1]
    return items


def _table(block: list[str], *, intro: str, heading: str, position: int) -> Unit | None:
    sep = next((k for k, line in enumerate(block) if _is_separator(line)), None)
    head_at = 0 if sep is None or sep == 0 else sep - 1
    header = _cells(block[head_at])
    width = len(header)
    if width == 0 or not any(header):
        return None
    body: list[tuple[str, ...]] = []
    for k, line in enumerate(block):
        if k <= head_at or _is_separator(line):
            continue
        cells = _cells(line)
        if cells == header or not any(cells):
            continue  # the header again (a table that spans chunks), or an empty row
        body.append(tuple((cells + [""] * width)[:width]))
    if not body:
        return None
    return Unit(
        TABLE, intro=intro, header=tuple(header), rows=tuple(body), heading=heading, position=position
    )
