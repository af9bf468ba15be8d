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
* This module owns the folder walk, access and front matter, and assembling a
  ``DocRecord``; ``formats`` parses each file format into sections and ``chunking`` cuts
  them into chunks (LlamaIndex's ``PDFReader`` and ``SentenceSplitter``, imported lazily).
* ``IngestError`` and ``Chunk`` are re-exported on purpose: they are part of what callers of
  ``parse_file`` handle (the error it raises, the parts of the ``DocRecord`` it returns).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from bot.config import ACCESS_FILE, Department, DocumentAccess, check_entries, load_access_file
from bot.core.types import Classification
from bot.errors import ConfigError
from bot.knowledge import formats
from bot.knowledge.chunking import SEP, Chunk, chunk_sections
from bot.knowledge.formats import IngestError

__all__ = [
    "PARSER_VERSION",
    "SUFFIXES",
    "Chunk",
    "DocRecord",
    "IngestError",
    "SourceFile",
    "content_hash",
    "parse_file",
    "prettify",
    "scan",
    "shown_path",
]

SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".csv"})
PARSER_VERSION = "1"  # bump when parsing/chunking changes so refresh re-parses everything


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
        title, sections = formats.parse_pdf(src.abspath, data)
    elif suffix == ".docx":
        title, sections = formats.parse_docx(data)
    else:
        text = formats.decode(data)
        if suffix == ".csv":
            title, sections = formats.parse_csv(text)
        elif suffix in (".html", ".htm"):
            title, sections = formats.parse_html(text)
        elif suffix in (".md", ".markdown"):
            meta, body = _split_front_matter(text)
            title, sections = formats.parse_markdown(_strip_templates(body))
        else:
            title, sections = formats.parse_text(text)
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


# ── front matter ─────────────────────────────────────────────────────────────────────


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
