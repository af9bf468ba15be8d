"""One parser per file format, each turning raw content into ``(title, sections)``.

A section is ``(anchor, text)``; the anchor is what a person needs to check a citation: the
heading path of Markdown/HTML/DOCX ("Time off › Annual vacation"), the page of a PDF
("page 2") or a CSV row range ("rows 2–14"). The title is "" when the format has none.

Why it looks like this:

* Headings are tracked here rather than by LlamaIndex's stock Markdown/HTML/DOCX readers,
  because those drop the heading path (or need extra dependencies). HTML and DOCX are first
  turned into Markdown (``html_markdown``, ``docx_markdown``) so that one heading tracker
  serves all three, and tables in every format become Markdown pipe tables (``tables``).
* PDFs are read with pypdf from the bytes the caller already read and checked (never by
  re-opening the path, which a swap between scan and read could redirect), page by page
  with their page labels, as LlamaIndex's ``PDFReader`` does; pypdf is imported lazily.
* Decompressing formats are capped: a DOCX's declared uncompressed sizes and the bytes
  actually inflated, a PDF's page count and extracted text (``max_bytes``, ``max_pages``).
* Every expected failure is an ``IngestError`` with a short reason safe to show a person,
  so one broken file never aborts a batch (the indexer also contains unexpected ones).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

from bot.knowledge import dates, tables
from bot.knowledge.chunking import SEP

Sections = list[tuple[str, str]]


class IngestError(Exception):
    """A file cannot become a document; ``reason`` is short and safe to show a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise IngestError("binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError("not UTF-8 text") from None
    if not text.strip():
        raise IngestError("empty file")
    return text


def parse_text(text: str) -> tuple[str, Sections]:
    """Plain text: one untitled, unanchored section."""
    return "", [("", text)]


MAX_HEADING_CHARS = 1000  # longer lines are body text (and keep the heading regexes linear)
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def parse_markdown(text: str) -> tuple[str, Sections]:
    """Split Markdown into (heading path, body) sections; also return the first H1."""
    title = ""
    stack: list[tuple[int, str]] = []
    sections: Sections = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append((SEP.join(h for _, h in stack), content))
        body.clear()

    def heading(level: int, name: str) -> None:
        nonlocal title
        flush()
        name = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", name).strip("*_` ")
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        if level == 1 and not title:
            title = name

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and len(line) <= MAX_HEADING_CHARS:
            m = _ATX.match(line)
            if m and m.group(2):
                heading(len(m.group(1)), m.group(2))
                continue
            if body and re.match(r"^ {0,3}(=+|-+)\s*$", line) and body[-1].strip() and len(body[-1]) < 200:
                prev = body.pop().strip()
                heading(1 if line.strip()[0] == "=" else 2, prev)
                continue
        body.append(line)
    flush()
    return title, sections


def parse_html(text: str) -> tuple[str, Sections]:
    """The ``<title>`` wins over the first ``<h1>``."""
    from bot.knowledge.html_markdown import html_to_markdown

    html_title, md = html_to_markdown(text)
    title, sections = parse_markdown(md)
    return html_title or title, sections


def parse_docx(data: bytes, *, max_bytes: int = 100 << 20) -> tuple[str, Sections]:
    from bot.knowledge.docx_markdown import docx_to_markdown

    return parse_markdown(docx_to_markdown(data, max_bytes))


CSV_ROW_CHARS = 150  # a CSV chunk holds rows until their cells reach this many characters …
CSV_MAX_ROWS = 5  # … and at most this many rows (more only for very large files)
CSV_MAX_SECTIONS = 1000  # rows are grouped further so a huge file stays within this


def parse_csv(text: str) -> tuple[str, Sections]:
    """Small groups of rows, each a pipe table with the header, anchored by row range.

    Why so small: a question is usually about one row ("bereavement leave"), and a row lost
    among thirty others ranked low. Wide rows get a section each; narrow ones are grouped
    up to ``CSV_MAX_ROWS`` (more for files beyond ``CSV_MAX_SECTIONS`` groups).
    """
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error:
        raise IngestError("not a valid CSV file") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return "", []
    header, data = rows[0], rows[1:]
    header = [h.strip() or f"column {i + 1}" for i, h in enumerate(header)]
    if not data:
        return "", [("row 1", tables.pipe_table([header]))]
    width = max(len(header), *(len(r) for r in data))
    header += [f"column {i + 1}" for i in range(len(header), width)]
    at_least = -(-len(data) // CSV_MAX_SECTIONS)
    at_most = max(CSV_MAX_ROWS, at_least)
    sections: Sections = []
    group: list[list[str]] = []
    first, size = 2, 0
    for n, row in enumerate(data, start=2):
        group.append(row)
        size += sum(len(c) for c in row)
        last = n == len(data) + 1
        if last or (len(group) >= at_least and (size >= CSV_ROW_CHARS or len(group) >= at_most)):
            sections.append(
                (f"rows {first}–{n}" if n > first else f"row {n}", tables.pipe_table([header, *group]))
            )
            group, size, first = [], 0, n + 1
    return "", sections


def parse_pdf(data: bytes, *, max_pages: int = 2000, max_bytes: int = 100 << 20) -> tuple[str, Sections]:
    """Pages of the PDF in ``data`` as ``("page <label>", text)`` sections."""
    title, sections, _ = parse_pdf_dated(data, max_pages=max_pages, max_bytes=max_bytes)
    return title, sections


def parse_pdf_dated(
    data: bytes, *, max_pages: int = 2000, max_bytes: int = 100 << 20
) -> tuple[str, Sections, datetime | None]:
    """``parse_pdf`` plus the PDF's own modification (or creation) date, if it has one."""
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise IngestError("not a valid PDF")
    import pypdf

    try:
        pdf = pypdf.PdfReader(io.BytesIO(data))
        count = len(pdf.pages)
    except Exception:  # pypdf raises many types for broken/encrypted files
        raise IngestError("not a valid PDF") from None
    if count > max_pages:
        raise IngestError(f"has {count} pages, more than {max_pages} (setting knowledge.max_pdf_pages)")
    sections: Sections = []
    total = 0
    for i in range(count):
        try:
            text = _page_text(pdf.pages[i])
            label = pdf.page_labels[i]
        except Exception:
            raise IngestError("not a valid PDF") from None
        total += len(text)
        if total > max_bytes:
            raise IngestError(
                f"holds more than {max_bytes >> 20} MB of text (setting knowledge.max_decompressed_mb)"
            )
        if text.strip():
            sections.append((f"page {label or i + 1}", text))
    if not sections:
        raise IngestError("no extractable text in PDF (scanned?)")
    return "", sections, dates.pdf_date(pdf)


def _page_text(page: Any) -> str:
    """Layout-mode text (columns kept, so tables become pipe tables), else plain text.

    pypdf's layout mode places each text run at its horizontal position; plain mode emits
    a table's cells one per line with nothing to tell rows apart. A page over pypdf's
    parsing budget is not retried in plain mode: it parses the same content stream with the
    same budget, so a 23 KB PDF cost 20 s (10 s per mode) before it was refused anyway.
    """
    import pypdf.errors

    over_budget = getattr(pypdf.errors, "LimitReachedError", ())  # absent from older pypdf
    try:
        layout = page.extract_text(extraction_mode="layout") or ""
    except over_budget:
        raise
    except Exception:  # layout mode is newer and stricter than plain extraction
        layout = ""
    if layout.strip():
        return tables.layout_to_markdown(layout)
    return str(page.extract_text() or "")
