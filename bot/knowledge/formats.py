"""One parser per file format, each turning raw content into ``(title, sections)``.

A section is ``(anchor, text)``; the anchor is what a person needs to check a citation: the
heading path of Markdown/HTML/DOCX ("Time off › Annual vacation"), the page of a PDF
("page 2") or a CSV row range ("rows 2–14"). The title is "" when the format has none.

Why it looks like this:

* Headings are tracked here rather than by LlamaIndex's stock Markdown/HTML/DOCX readers,
  because those drop the heading path (or need extra dependencies). HTML and DOCX are first
  turned into Markdown so that one heading tracker serves all three.
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
import html.parser
import io
import re
import zipfile
import zlib
from xml.etree import ElementTree

from bot.knowledge.chunking import CHUNK_TOKENS, SEP

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
    html_title, md = _html_to_markdown(text)
    title, sections = parse_markdown(md)
    return html_title or title, sections


def parse_docx(data: bytes, *, max_bytes: int = 100 << 20) -> tuple[str, Sections]:
    return parse_markdown(_docx_to_markdown(data, max_bytes))


def parse_csv(text: str) -> tuple[str, Sections]:
    """Rows as ``header: value`` lines, grouped into sections anchored by row range."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error:
        raise IngestError("not a valid CSV file") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return "", []
    header, data = rows[0], rows[1:]
    if not data:
        return "", [("row 1", " | ".join(header))]
    sections: Sections = []
    lines: list[str] = []
    first = 2
    size = 0
    for n, row in enumerate(data, start=2):
        pairs = [
            f"{h.strip() or f'column {i + 1}'}: {v.strip()}"
            for i, (h, v) in enumerate(zip(header, row, strict=False))
        ]
        pairs += [v.strip() for v in row[len(header) :] if v.strip()]
        line = "; ".join(p for p in pairs if not p.endswith(": "))
        lines.append(line)
        size += len(line) // 4 + 1
        if size >= CHUNK_TOKENS:
            sections.append((f"rows {first}–{n}" if n > first else f"row {n}", "\n".join(lines)))
            lines, size, first = [], 0, n + 1
    if lines:
        last = len(data) + 1
        sections.append((f"rows {first}–{last}" if last > first else f"row {first}", "\n".join(lines)))
    return "", sections


def parse_pdf(data: bytes, *, max_pages: int = 2000, max_bytes: int = 100 << 20) -> tuple[str, Sections]:
    """Pages of the PDF in ``data`` as ``("page <label>", text)`` sections."""
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
            text = pdf.pages[i].extract_text() or ""
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
    return "", sections


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_to_markdown(data: bytes, max_bytes: int) -> str:
    """DOCX paragraphs as Markdown, heading styles → ``#`` levels (docx2txt drops them).

    A zip can declare small sizes and inflate to gigabytes: the declared total is checked
    first, and the body is read in blocks that stop at ``max_bytes`` whatever was declared.
    """
    too_big = f"expands to more than {max_bytes >> 20} MB (setting knowledge.max_decompressed_mb)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if sum(info.file_size for info in zf.infolist()) > max_bytes:
                raise IngestError(too_big)
            blocks: list[bytes] = []
            size = 0
            with zf.open("word/document.xml") as fh:
                while block := fh.read(1 << 20):
                    size += len(block)
                    if size > max_bytes:
                        raise IngestError(too_big)
                    blocks.append(block)
        xml = b"".join(blocks)
        if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
            raise IngestError("Word document declares XML entities (refused)")
        root = ElementTree.fromstring(xml)
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, zlib.error, EOFError):
        raise IngestError("not a valid Word document") from None
    lines: list[str] = []
    for para in root.iter(f"{_W}p"):
        style_el = para.find(f"{_W}pPr/{_W}pStyle")
        style = (style_el.get(f"{_W}val") or "") if style_el is not None else ""
        parts: list[str] = []
        for el in para.iter():
            if el.tag == f"{_W}t" and el.text:
                parts.append(el.text)
            elif el.tag == f"{_W}tab":
                parts.append("\t")
            elif el.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
        text = "".join(parts).strip()
        if not text:
            continue
        m = re.match(r"(?i)^heading\s*(\d)$", style)
        if style.lower() == "title":
            lines.append(f"# {text}")
        elif m:
            lines.append("#" * min(6, int(m.group(1))) + " " + text)
        else:
            lines.append(text)
        lines.append("")
    return "\n".join(lines)


class _HTMLToMarkdown(html.parser.HTMLParser):
    """Keeps headings (as ``#``), paragraph breaks and text; drops scripts and styles."""

    BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "section", "article", "table", "ul", "ol", "pre", "blockquote"}
    )
    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCK:
            self.out.append("\n\n" if tag != "li" else "\n- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data.strip()
            return
        self.out.append(re.sub(r"\s+", " ", data))


def _html_to_markdown(text: str) -> tuple[str, str]:
    parser = _HTMLToMarkdown()
    parser.feed(text)
    parser.close()
    md = re.sub(r"\n[ \t]+", "\n", "".join(parser.out))
    md = re.sub(r"(?m)^(#{1,6}) *\n+", r"\1 ", md)  # heading text that followed a break
    return parser.title, re.sub(r"\n{3,}", "\n\n", md)
