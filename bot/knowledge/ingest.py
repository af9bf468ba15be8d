"""Turn a department's knowledge folder into documents and chunks with citation anchors.

Why it looks like this:

* Every chunk keeps what a person needs to check it: the page of a PDF ("page 2"), the
  heading path of Markdown/HTML/DOCX ("Time off › Annual vacation"), CSV row ranges, and
  the file's modification time.
* Access narrowing is data, not code: ``_access.yaml`` files (outermost first) and the
  front-matter ``audience`` each add one audience tuple; a reader must match every one.
  The department's own ``ask`` list is checked by the core before retrieval, so it is not
  repeated here. A folder whose ``_access.yaml`` is invalid fails closed: its documents are
  reported as failed, never indexed without the narrowing.
* Broken input never aborts a batch: a file that cannot be read becomes a ``FailedFile``
  with a short human reason and the rest is indexed.
* LlamaIndex does the parts it is good at (``PDFReader`` for pages, ``SentenceSplitter``
  for token-bounded chunks with overlap). Headings are tracked here because the stock
  Markdown/HTML/DOCX readers drop the heading path (or need extra dependencies). LlamaIndex
  is imported lazily so that answering questions (retrieve.py) never pays its import cost.
"""

from __future__ import annotations

import csv
import hashlib
import html.parser
import io
import os
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

from bot.config import ACCESS_FILE, Department, DocumentAccess, check_entries, load_access_file
from bot.core.types import Classification
from bot.errors import ConfigError

SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".csv"})
CHUNK_TOKENS = 300
CHUNK_OVERLAP = 40
PARSER_VERSION = "1"  # bump when parsing/chunking changes so refresh re-parses everything
SEP = " › "


class IngestError(Exception):
    """A file cannot become a document; ``reason`` is short and safe to show a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Chunk:
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class DocRecord:
    """A parsed document: what the index stores besides the vectors."""

    doc_id: str
    rel: str  # path relative to the knowledge folder, posix
    path: str  # path shown to people, e.g. knowledge/hr/time-off.md
    title: str
    modified: float  # POSIX seconds (file mtime)
    classification: int
    audiences: tuple[tuple[str, ...], ...]
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class SourceFile:
    """A candidate document on disk plus the access context that applies to it."""

    abspath: Path
    rel: str
    size: int
    mtime_ns: int
    context: str  # hash of access files above it + department classification + parser version
    access: tuple[DocumentAccess, ...] = ()
    access_error: str = ""


# ── folder walk ──────────────────────────────────────────────────────────────────────


def shown_path(knowledge: Path, rel: str) -> str:
    """Stable, readable path: the knowledge folder's last two parts plus ``rel``."""
    return f"{knowledge.parent.name}/{knowledge.name}/{rel}"


def scan(dept: Department) -> list[SourceFile]:
    """Stat every candidate document (no reads except ``_access.yaml``); sorted by path."""
    root = Path(dept.knowledge)
    out: list[SourceFile] = []
    # dir → (access chain, raw-bytes digest chain, error)
    chains: dict[str, tuple[tuple[DocumentAccess, ...], str, str]] = {}
    base_ctx = f"{PARSER_VERSION}:{int(dept.classification)}"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        parent = chains.get(Path(rel_dir).parent.as_posix()) if rel_dir != "." else None
        access, ctx, error = parent if parent else ((), base_ctx, "")
        if ACCESS_FILE in filenames:
            af = here / ACCESS_FILE
            try:
                raw = af.read_bytes()
                ctx = hashlib.sha256((ctx + ":").encode() + raw).hexdigest()[:16]
                access = (*access, load_access_file(af))
            except (ConfigError, OSError):
                error = error or f"invalid {ACCESS_FILE} in {rel_dir if rel_dir != '.' else 'the top folder'}"
        chains[rel_dir] = (access, ctx, error)
        for name in sorted(filenames):
            if name.startswith(("_", ".")) or Path(name).suffix.lower() not in SUFFIXES:
                continue
            p = here / name
            try:
                st = p.stat()
            except OSError:
                continue
            rel = p.relative_to(root).as_posix()
            out.append(SourceFile(p, rel, st.st_size, st.st_mtime_ns, ctx, access, error))
    out.sort(key=lambda s: s.rel)
    return out


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ── parsing ──────────────────────────────────────────────────────────────────────────


def parse_file(src: SourceFile, dept: Department) -> DocRecord:
    """Parse and chunk one file; raises IngestError with a short reason."""
    if src.access_error:
        raise IngestError(src.access_error)
    if src.size == 0:
        raise IngestError("empty file")
    suffix = src.abspath.suffix.lower()
    try:
        data = src.abspath.read_bytes()
    except OSError:
        raise IngestError("cannot be read") from None
    meta: dict[str, Any] = {}
    if suffix == ".pdf":
        title, sections = _parse_pdf(src.abspath, data)
    elif suffix == ".docx":
        title, sections = _parse_markdown(_docx_to_markdown(data))
    else:
        text = _decode(data)
        if suffix == ".csv":
            title, sections = "", _parse_csv(text)
        elif suffix in (".html", ".htm"):
            html_title, md = _html_to_markdown(text)
            title, sections = _parse_markdown(md)
            title = html_title or title
        elif suffix in (".md", ".markdown"):
            meta, body = _split_front_matter(text)
            title, sections = _parse_markdown(_strip_templates(body))
        else:
            title, sections = "", [("", text)]
    chunks = chunk_sections(sections)
    if not chunks:
        raise IngestError("no text" if suffix == ".pdf" or meta else "empty file")
    classification = int(dept.classification)
    for access in src.access:
        if access.classification is not None:
            classification = max(classification, int(access.classification))
    audiences = [tuple(a.audience) for a in src.access]
    if meta:
        fm_title = meta.get("title")
        if isinstance(fm_title, str | int | float) and str(fm_title).strip():
            title = str(fm_title).strip()
        if meta.get("classification") is not None:
            try:
                classification = max(classification, int(Classification.parse(str(meta["classification"]))))
            except KeyError:
                raise IngestError("invalid classification in front matter") from None
        if "audience" in meta:
            raw = meta["audience"]
            entries = [raw] if isinstance(raw, str) else raw
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise IngestError("invalid audience in front matter")
            try:
                audiences.append(tuple(check_entries(entries)))
            except ValueError:
                raise IngestError("invalid audience in front matter") from None
    title = title or prettify(src.abspath.name)
    return DocRecord(
        doc_id=f"{dept.name}/{src.rel}",
        rel=src.rel,
        path=shown_path(Path(dept.knowledge), src.rel),
        title=title,
        modified=_updated(meta) or src.mtime_ns / 1e9,
        classification=classification,
        audiences=tuple(audiences),
        chunks=_without_document_heading(tuple(_drop_title_from_anchor(c, title) for c in chunks)),
    )


def _updated(meta: dict[str, Any]) -> float | None:
    """Front matter ``updated: 2026-09-14`` is the date people mean, not the file mtime."""
    value = meta.get("updated")
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
    return None


def _drop_title_from_anchor(chunk: Chunk, title: str) -> Chunk:
    """ "Time off policy › Annual vacation" under a document titled so reads "Annual vacation"."""
    head, sep, rest = chunk.anchor.partition(SEP)
    if head.strip().casefold() == title.strip().casefold():
        return Chunk(chunk.text, rest if sep else "")
    return chunk


def _without_document_heading(chunks: tuple[Chunk, ...]) -> tuple[Chunk, ...]:
    """A single top heading over every section is the document's own title: drop it."""
    heads = {c.anchor.partition(SEP)[0] for c in chunks if c.anchor}
    nested = any(SEP in c.anchor for c in chunks)
    if len(heads) != 1 or not nested or any(c.anchor.startswith(("page ", "row")) for c in chunks):
        return chunks
    return tuple(Chunk(c.text, c.anchor.partition(SEP)[2]) for c in chunks)


def prettify(filename: str) -> str:
    """``annual-leave_policy.md`` → ``Annual leave policy``."""
    stem = re.sub(r"[-_]+", " ", Path(filename).stem).strip()
    return stem[:1].upper() + stem[1:] if stem else filename


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise IngestError("binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError("not UTF-8 text") from None
    if not text.strip():
        raise IngestError("empty file")
    return text


_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_TEMPLATE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|<!--.*?-->", re.S)


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    match = _FRONT.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1) or "") or {}
    except yaml.YAMLError:
        raise IngestError("invalid front matter") from None
    if not isinstance(meta, dict):
        raise IngestError("invalid front matter")
    return meta, text[match.end() :]


def _strip_templates(text: str) -> str:
    """Jekyll/Liquid tags and HTML comments are build instructions, not content."""
    return _TEMPLATE.sub("", text)


_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _parse_markdown(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split Markdown into (heading path, body) sections; also return the first H1."""
    title = ""
    stack: list[tuple[int, str]] = []
    sections: list[tuple[str, str]] = []
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
        if not in_fence:
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


def _parse_csv(text: str) -> list[tuple[str, str]]:
    """Rows as ``header: value`` lines, grouped into sections anchored by row range."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error:
        raise IngestError("not a valid CSV file") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return []
    header, data = rows[0], rows[1:]
    if not data:
        return [("row 1", " | ".join(header))]
    sections: list[tuple[str, str]] = []
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
    return sections


def _parse_pdf(path: Path, data: bytes) -> tuple[str, list[tuple[str, str]]]:
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise IngestError("not a valid PDF")
    _offline_llama_index()
    from llama_index.readers.file import PDFReader

    try:
        pages = PDFReader(return_full_document=False).load_data(file=path)
    except Exception:  # pypdf raises many types for broken/encrypted files
        raise IngestError("not a valid PDF") from None
    sections = []
    for i, page in enumerate(pages, start=1):
        text = page.text or ""
        if text.strip():
            sections.append((f"page {page.metadata.get('page_label') or i}", text))
    if not sections:
        raise IngestError("no extractable text in PDF (scanned?)")
    return "", sections


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_to_markdown(data: bytes) -> str:
    """DOCX paragraphs as Markdown, heading styles → ``#`` levels (docx2txt drops them)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            xml = zf.read("word/document.xml")
        root = ElementTree.fromstring(xml)
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError):
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


# ── chunking ─────────────────────────────────────────────────────────────────────────


def _offline_llama_index() -> None:
    """Make sure no LlamaIndex default ever reaches for OpenAI (no network, no key)."""
    _offline_once()


@lru_cache(maxsize=1)
def _offline_once() -> None:
    from llama_index.core import Settings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)


@lru_cache(maxsize=1)
def _splitter() -> Any:
    _offline_llama_index()
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP, include_metadata=False)


def chunk_sections(sections: list[tuple[str, str]]) -> list[Chunk]:
    splitter = _splitter()
    chunks: list[Chunk] = []
    for anchor, text in sections:
        text = text.strip()
        if not text:
            continue
        # Short sections (most of them) skip the splitter: it is the slowest step.
        pieces = [text] if len(text) < CHUNK_TOKENS * 3 else splitter.split_text(text)
        chunks.extend(Chunk(p.strip(), anchor) for p in pieces if p.strip())
    return chunks


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")


def index_text(title: str, anchor: str, text: str) -> str:
    """What BM25 and the embedder see: title and heading path give context; URLs are noise."""
    body = _URL.sub(" ", _LINK.sub(r"\1", text))
    head = f"{title}{SEP}{anchor}" if anchor and not anchor.startswith(("page ", "row")) else title
    return f"{head}\n{body}"
