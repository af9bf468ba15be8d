"""DOCX → Markdown, so one heading tracker (``formats.parse_markdown``) serves Word too.

Heading styles become ``#`` levels (docx2txt drops them), tables become pipe tables with
their first row as header (``tables.pipe_table``; a cell's paragraphs on one line, a
merged cell's span as empty cells), and list paragraphs — numbering properties or a "List
Bullet"/"List Number" style — become ``-``/``1.`` items, all in document order (also
inside content controls).

Read with the standard library only, and bounded in time and memory. A zip can declare
small sizes and inflate to gigabytes, and a small file can hold millions of XML elements
(a 284 KB file held 95 MB of ``<w:p>``: parsed whole, it took 20 s and 1.4 GB). So the
declared total is checked first; each part is then inflated once in blocks that stop at
``max_bytes``, keeping nothing but a count of its tags, and refused beyond one element per
``BYTES_PER_ELEMENT`` bytes of that cap; only then is it parsed, as a stream that converts
each child of ``w:body`` and drops it once it is complete. The Markdown is the same, byte
for byte, as parsing the whole tree gave.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import cast
from xml.etree import ElementTree

from bot.knowledge import tables
from bot.knowledge.formats import IngestError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_BLOCK = 1 << 20  # bytes inflated at a time to check a part
_FEED = 1 << 16  # bytes fed to the parser at a time: the elements they hold live together
# The element cap is max_bytes / this: 2,097,152 elements at the default 100 MB, a few
# seconds of parsing instead of the 20 s and 1.4 GB above. Word writes 20-40 bytes per
# element, so real documents reach it only past 40-80 MB of XML: prose hits the default
# max_chunks_per_file first (~280 elements per chunk), dense tables (~1,400 per chunk)
# hit this cap at ~1,500 chunks. The refusal names the setting that raises it.
BYTES_PER_ELEMENT = 50


def docx_to_markdown(data: bytes, max_bytes: int) -> str:
    """DOCX body as Markdown: heading styles → ``#`` levels (docx2txt drops them), tables →
    pipe tables, list paragraphs → ``-``/``1.`` items, in document order.

    A zip can declare small sizes and inflate to gigabytes: the declared total is checked
    first, and each part is read in blocks that stop at ``max_bytes`` whatever was declared.
    A part can also pack millions of elements into few bytes: beyond ``max_bytes //
    BYTES_PER_ELEMENT`` elements (both parts together) the file is refused before parsing.
    """
    too_big = f"expands to more than {max_bytes >> 20} MB (setting knowledge.max_decompressed_mb)"
    max_elements = max(1, max_bytes // BYTES_PER_ELEMENT)
    too_many = (
        f"holds more than {max_elements:,} XML elements "
        f"(setting knowledge.max_decompressed_mb allows one per {BYTES_PER_ELEMENT} bytes)"
    )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if sum(info.file_size for info in zf.infolist()) > max_bytes:
                raise IngestError(too_big)
            parts = ["word/document.xml"]
            if "word/numbering.xml" in zf.namelist():
                parts.append("word/numbering.xml")
            if sum(_checked_elements(zf, name, max_bytes, too_big) for name in parts) > max_elements:
                raise IngestError(too_many)
            numbering = _children(zf, "word/numbering.xml", None) if len(parts) > 1 else ()
            writer = _Writer(_numbering_formats(numbering))
            for child in _children(zf, "word/document.xml", f"{_W}body"):
                for el in _body_blocks((child,)):
                    writer.add(el)
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, zlib.error, EOFError):
        raise IngestError("not a valid Word document") from None
    return writer.markdown()


class _Writer:
    """Markdown lines of the body's paragraphs and tables, fed one block at a time."""

    def __init__(self, formats: dict[str, dict[str, str]]) -> None:
        self.formats = formats
        self.lines: list[str] = []
        self.counters: dict[tuple[str, int], int] = {}

    def add(self, el: ElementTree.Element) -> None:
        lines, counters = self.lines, self.counters
        if el.tag == f"{_W}tbl":
            rows = [[_cell_text(tc) for tc in _cells(tr)] for tr in el.iter(f"{_W}tr") if _owner(tr, el)]
            table = tables.pipe_table(rows)
            if table:
                lines += [table, ""]
            counters.clear()
            return
        if el.tag != f"{_W}p":
            return
        text = _para_text(el).strip()
        if not text:
            return
        style_el = el.find(f"{_W}pPr/{_W}pStyle")
        style = (style_el.get(f"{_W}val") or "") if style_el is not None else ""
        m = re.match(r"(?i)^heading\s*(\d)$", style)
        item = _list_marker(el, style, self.formats, counters)
        if style.lower() == "title":
            lines += [f"# {text}", ""]
        elif m:
            lines += ["#" * min(6, int(m.group(1))) + " " + text, ""]
        elif item:
            if lines and lines[-1] == "" and len(lines) >= 2 and tables.LIST_ITEM.match(lines[-2]):
                lines.pop()  # consecutive items form one list
            lines += [item + text, ""]
            return
        else:
            lines += [text, ""]
        counters.clear()

    def markdown(self) -> str:
        return "\n".join(self.lines)


def _body_blocks(parent: Iterable[ElementTree.Element]) -> Iterator[ElementTree.Element]:
    """Paragraphs and tables in reading order, also inside content controls (``w:sdt``)."""
    for el in parent:
        if el.tag in (f"{_W}p", f"{_W}tbl"):
            yield el
        elif el.tag != f"{_W}sectPr":
            yield from _body_blocks(el)


def _checked_elements(zf: zipfile.ZipFile, name: str, max_bytes: int, too_big: str) -> int:
    """How many elements part ``name`` holds at most (its start tags, counted at C speed).

    Inflates in blocks and keeps none, so neither the size nor the count costs memory;
    refuses past ``max_bytes`` and, like before, any entity declaration. Comments, CDATA
    and processing instructions are not counted; a ``<`` inside one (or a ``</`` split
    across two blocks) counts once more, so the count never falls below the real one.
    """
    size = tags = 0
    entities = False
    tail = b""
    with zf.open(name) as fh:
        while block := fh.read(_BLOCK):
            size += len(block)
            if size > max_bytes:
                raise IngestError(too_big)
            seam = tail + block[:16]  # a declaration split across two blocks
            entities = entities or any(m in block or m in seam for m in (b"<!DOCTYPE", b"<!ENTITY"))
            tags += block.count(b"<") - block.count(b"</") - block.count(b"<?") - block.count(b"<!")
            tail = block[-16:]
    if entities:
        raise IngestError("Word document declares XML entities (refused)")
    return tags


def _children(zf: zipfile.ZipFile, name: str, under: str | None) -> Iterator[ElementTree.Element]:
    """Each complete child of the part's root (``under`` None) or of the root's first child
    tagged ``under`` (the one ``root.find(under)`` picks), in document order.

    Memory holds about one child, not the part: after each fed block the children known
    complete (all but the last: a later sibling has started) are handed over and dropped,
    and so is everything else below the root. Only start events are asked for — half the
    Python work of tracking depth with end events, which is most of the cost.
    Raises IngestError when no ``under`` element exists.
    """
    parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(events=("start",))
    root: ElementTree.Element | None = None
    parent: ElementTree.Element | None = None
    with zf.open(name) as fh:
        while True:
            block = fh.read(_FEED)
            if block:
                parser.feed(block)
            else:
                parser.close()
            direct: set[int] | None = None  # ids of the root's children, once a round
            for event in parser.read_events():
                el = cast("tuple[str, ElementTree.Element]", event)[1]  # start events carry elements
                if root is None:
                    root = el
                    parent = root if under is None else None
                elif parent is None and el.tag == under:
                    if direct is None:
                        direct = {id(child) for child in root}
                    if id(el) in direct:
                        parent = el
            if parent is not None:
                done = len(parent) - 1 if block else len(parent)  # at the end, all are complete
                if done > 0:
                    yield from parent[:done]
                    del parent[:done]
            if root is not None and parent is not root and len(root) > 1:
                root[:] = [child for child in root if child is parent or child is root[-1]]
            if not block:
                break
    if parent is None:
        raise IngestError("not a valid Word document")


def _para_text(para: ElementTree.Element) -> str:
    parts: list[str] = []
    for el in para.iter():
        if el.tag == f"{_W}t" and el.text:
            parts.append(el.text)
        elif el.tag == f"{_W}tab":
            parts.append("\t")
        elif el.tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
    return "".join(parts)


def _owner(tr: ElementTree.Element, table: ElementTree.Element) -> bool:
    """A row belongs to ``table`` itself, not to a table nested in one of its cells."""
    return any(child is tr for child in table)


def _cells(tr: ElementTree.Element) -> list[ElementTree.Element]:
    """The row's cells, each repeated as many times as its ``gridSpan`` (empty copies)."""
    out: list[ElementTree.Element] = []
    for tc in tr.findall(f"{_W}tc"):
        out.append(tc)
        span = tc.find(f"{_W}tcPr/{_W}gridSpan")
        n = span.get(f"{_W}val", "1") if span is not None else "1"
        out += [ElementTree.Element("empty")] * (min(int(n), 50) - 1 if n.isdigit() else 0)
    return out


def _cell_text(tc: ElementTree.Element) -> str:
    """All paragraphs of a cell (nested tables included) on one line."""
    return " ".join(t for p in tc.iter(f"{_W}p") if (t := _para_text(p).strip()))


def _numbering_formats(children: Iterable[ElementTree.Element]) -> dict[str, dict[str, str]]:
    """numId → {level → numFmt} from numbering.xml's children ("bullet", "decimal", …)."""
    abstract: dict[str, dict[str, str]] = {}
    refs: list[tuple[str, str]] = []  # (numId, abstractNumId), resolved once all are read
    for el in children:
        if el.tag == f"{_W}abstractNum":
            levels = {}
            for lvl in el.findall(f"{_W}lvl"):
                fmt = lvl.find(f"{_W}numFmt")
                levels[lvl.get(f"{_W}ilvl", "0")] = fmt.get(f"{_W}val", "") if fmt is not None else ""
            abstract[el.get(f"{_W}abstractNumId", "")] = levels
        elif el.tag == f"{_W}num":
            ref = el.find(f"{_W}abstractNumId")
            if ref is not None:
                refs.append((el.get(f"{_W}numId", ""), ref.get(f"{_W}val", "")))
    return {num_id: abstract.get(ref, {}) for num_id, ref in refs}


def _list_marker(
    para: ElementTree.Element,
    style: str,
    formats: dict[str, dict[str, str]],
    counters: dict[tuple[str, int], int],
) -> str:
    """``"- "``, ``"  2. "`` … for a list paragraph (numbering or a List style), else ``""``."""
    num = para.find(f"{_W}pPr/{_W}numPr")
    folded = style.casefold().replace(" ", "")
    if num is not None:
        ilvl_el, id_el = num.find(f"{_W}ilvl"), num.find(f"{_W}numId")
        level = ilvl_el.get(f"{_W}val", "0") if ilvl_el is not None else "0"
        num_id = id_el.get(f"{_W}val", "") if id_el is not None else ""
        if num_id == "0":
            return ""  # numbering switched off
        fmt = formats.get(num_id, {}).get(level, "bullet" if "bullet" in folded else "decimal")
    elif folded.startswith("listbullet"):
        num_id, level, fmt = style, "0", "bullet"
    elif folded.startswith("listnumber"):
        num_id, level, fmt = style, "0", "decimal"
    else:
        return ""
    depth = int(level) if level.isdigit() else 0
    indent = "  " * min(depth, 8)
    if fmt in ("bullet", "none", ""):
        return f"{indent}- "
    key = (num_id, depth)
    counters[key] = counters.get(key, 0) + 1
    return f"{indent}{counters[key]}. "
