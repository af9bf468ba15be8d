"""DOCX → Markdown, so one heading tracker (``formats.parse_markdown``) serves Word too.

Heading styles become ``#`` levels (docx2txt drops them), tables become pipe tables with
their first row as header (``tables.pipe_table``; a cell's paragraphs on one line, a
merged cell's span as empty cells), and list paragraphs — numbering properties or a "List
Bullet"/"List Number" style — become ``-``/``1.`` items, all in document order (also
inside content controls). Read with the standard library only: a zip can declare small
sizes and inflate to gigabytes, so the declared total is checked first and each part is
read in blocks that stop at ``max_bytes``.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from xml.etree import ElementTree

from bot.knowledge import tables
from bot.knowledge.formats import IngestError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_to_markdown(data: bytes, max_bytes: int) -> str:
    """DOCX body as Markdown: heading styles → ``#`` levels (docx2txt drops them), tables →
    pipe tables, list paragraphs → ``-``/``1.`` items, in document order.

    A zip can declare small sizes and inflate to gigabytes: the declared total is checked
    first, and each part is read in blocks that stop at ``max_bytes`` whatever was declared.
    """
    too_big = f"expands to more than {max_bytes >> 20} MB (setting knowledge.max_decompressed_mb)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if sum(info.file_size for info in zf.infolist()) > max_bytes:
                raise IngestError(too_big)
            root = _xml_part(zf, "word/document.xml", max_bytes, too_big)
            numbering = (
                _xml_part(zf, "word/numbering.xml", max_bytes, too_big)
                if "word/numbering.xml" in zf.namelist()
                else None
            )
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, zlib.error, EOFError):
        raise IngestError("not a valid Word document") from None
    body = root.find(f"{_W}body")
    if body is None:
        raise IngestError("not a valid Word document")
    formats = _numbering_formats(numbering)
    lines: list[str] = []
    counters: dict[tuple[str, int], int] = {}
    for el in _body_blocks(body):
        if el.tag == f"{_W}tbl":
            rows = [[_cell_text(tc) for tc in _cells(tr)] for tr in el.iter(f"{_W}tr") if _owner(tr, el)]
            table = tables.pipe_table(rows)
            if table:
                lines += [table, ""]
            counters.clear()
            continue
        if el.tag != f"{_W}p":
            continue
        text = _para_text(el).strip()
        if not text:
            continue
        style_el = el.find(f"{_W}pPr/{_W}pStyle")
        style = (style_el.get(f"{_W}val") or "") if style_el is not None else ""
        m = re.match(r"(?i)^heading\s*(\d)$", style)
        item = _list_marker(el, style, formats, counters)
        if style.lower() == "title":
            lines += [f"# {text}", ""]
        elif m:
            lines += ["#" * min(6, int(m.group(1))) + " " + text, ""]
        elif item:
            if lines and lines[-1] == "" and len(lines) >= 2 and tables.LIST_ITEM.match(lines[-2]):
                lines.pop()  # consecutive items form one list
            lines += [item + text, ""]
            continue
        else:
            lines += [text, ""]
        counters.clear()
    return "\n".join(lines)


def _body_blocks(parent: ElementTree.Element) -> Iterator[ElementTree.Element]:
    """Paragraphs and tables in reading order, also inside content controls (``w:sdt``)."""
    for el in parent:
        if el.tag in (f"{_W}p", f"{_W}tbl"):
            yield el
        elif el.tag != f"{_W}sectPr":
            yield from _body_blocks(el)


def _xml_part(zf: zipfile.ZipFile, name: str, max_bytes: int, too_big: str) -> ElementTree.Element:
    blocks: list[bytes] = []
    size = 0
    with zf.open(name) as fh:
        while block := fh.read(1 << 20):
            size += len(block)
            if size > max_bytes:
                raise IngestError(too_big)
            blocks.append(block)
    xml = b"".join(blocks)
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise IngestError("Word document declares XML entities (refused)")
    return ElementTree.fromstring(xml)


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


def _numbering_formats(root: ElementTree.Element | None) -> dict[str, dict[str, str]]:
    """numId → {level → numFmt} from numbering.xml ("bullet", "decimal", …)."""
    if root is None:
        return {}
    abstract: dict[str, dict[str, str]] = {}
    for an in root.findall(f"{_W}abstractNum"):
        levels = {}
        for lvl in an.findall(f"{_W}lvl"):
            fmt = lvl.find(f"{_W}numFmt")
            levels[lvl.get(f"{_W}ilvl", "0")] = fmt.get(f"{_W}val", "") if fmt is not None else ""
        abstract[an.get(f"{_W}abstractNumId", "")] = levels
    out = {}
    for num in root.findall(f"{_W}num"):
        ref = num.find(f"{_W}abstractNumId")
        if ref is not None:
            out[num.get(f"{_W}numId", "")] = abstract.get(ref.get(f"{_W}val", ""), {})
    return out


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
