"""Turn a department's knowledge folder into documents and chunks with citation anchors.

Public entry points::

    scan(dept, limits=DEFAULT_LIMITS) -> list[SourceFile]     stat + access context, no reads
    parse_file(src, dept, limits=DEFAULT_LIMITS, *, data=None) -> DocRecord   or IngestError
    read_source(src, limits) -> bytes                          the checked read parse_file uses
    check_folder(dept, limits=DEFAULT_LIMITS) -> list[Problem] every link/metadata/size problem
                                                               of a folder, without indexing
                                                               (for ``deptbot check``)
    Limits.from_settings(settings.section("knowledge"))        the caps and the link rule

Why it looks like this:

* **Fail closed.** When deptbot cannot be sure who may read a file, the file is not
  indexed and is reported: ``scan`` (``folder.Walker``) reads nothing but access files and
  marks links, special files and folders under a bad access file as ``refused``; only
  regular files whose real path stays inside the folder are read, with a check that they
  were not swapped since the scan, and every format is parsed from those bytes.
* Access narrowing is data, not code: ``_access.yaml`` files (outermost first) and the
  front-matter ``audience`` each add one audience tuple; a reader must match every one.
  Their schema and rules (strict YAML, exact lower-case keys, front matter only in
  Markdown on line 1, look-alike access file names) live in ``metadata``.
* Broken input never aborts a batch: each file becomes a ``DocRecord`` or an
  ``IngestError`` with a short human reason. Caps (``Limits``) bound file size,
  decompressed size, PDF pages and chunks per file.
* Every chunk keeps what a person needs to check it: the page of a PDF, the heading path of
  Markdown/HTML/DOCX, CSV row ranges, and a date that means something (``dates``): when
  the content was last changed, or else when it was first indexed — never the mtime.
* Structure survives: tables become Markdown pipe tables (header first) and lists one item
  per line, in every format (``formats``, ``tables``), and the chunker keeps a header with
  every piece of a table and a list with the sentence introducing it (``chunking``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.config import Department
from bot.knowledge import dates, formats
from bot.knowledge.chunking import SEP, Chunk, ChunkLimit, chunk_sections
from bot.knowledge.folder import (
    DEFAULT_LIMITS,
    SUFFIXES,
    Limits,
    SourceFile,
    Walker,
    read_source,
    shown_path,
)
from bot.knowledge.formats import IngestError
from bot.knowledge.metadata import MetadataError, Problem, split_front_matter

__all__ = [
    "DEFAULT_LIMITS",
    "PARSER_VERSION",
    "SUFFIXES",
    "Chunk",
    "DocRecord",
    "IngestError",
    "Limits",
    "Problem",
    "SourceFile",
    "check_folder",
    "content_hash",
    "parse_file",
    "prettify",
    "read_source",
    "scan",
    "shown_path",
]

log = logging.getLogger(__name__)

TEXT_SUFFIXES = SUFFIXES - {".pdf", ".docx"}
# Bump when parsing/chunking changes so refresh re-parses everything. "2": strict metadata,
# links and special files refused, caps (indexes built under the lenient rules are stale).
# "3": tables as pipe tables (HTML, DOCX, PDF, CSV), lists kept, structure-aware chunks.
PARSER_VERSION = "3"


@dataclass(frozen=True)
class DocRecord:
    """A parsed document: what the index stores besides the vectors."""

    doc_id: str
    rel: str  # path relative to the knowledge folder, posix
    path: str  # path shown to people, e.g. knowledge/hr/time-off.md
    title: str
    modified: float  # POSIX seconds: when the content last changed, or was first indexed
    classification: int
    audiences: tuple[tuple[str, ...], ...]
    chunks: tuple[Chunk, ...]
    # "updated" (front matter, PDF/DOCX metadata, git) or "indexed" (none of them: the time
    # of this parse, which the index replaces by the first time it saw this content)
    date_kind: str = dates.UPDATED


def scan(dept: Department, limits: Limits = DEFAULT_LIMITS) -> list[SourceFile]:
    """Stat every candidate document (reads only ``_access.yaml``); sorted by path."""
    return Walker(dept, limits, version=PARSER_VERSION).run()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ── parsing ──────────────────────────────────────────────────────────────────────────


def parse_file(
    src: SourceFile,
    dept: Department,
    limits: Limits = DEFAULT_LIMITS,
    *,
    data: bytes | None = None,
    dated: Mapping[str, datetime] | None = None,
) -> DocRecord:
    """Parse and chunk one file; raises IngestError with a short reason.

    ``data`` is what ``read_source`` returned (the indexer reads once to hash and parse);
    ``dated`` maps paths to their last commit (``dates.git_dates``), used when the file
    itself carries no date.
    """
    if src.refused:
        raise IngestError(src.refused)
    if src.size == 0:
        raise IngestError("empty file")
    if data is None:
        data = read_source(src, limits)
    suffix = src.suffix
    meta = None
    own_date: datetime | None = None
    if suffix == ".pdf":
        title, sections, own_date = formats.parse_pdf_dated(
            data, max_pages=limits.max_pdf_pages, max_bytes=limits.max_decompressed_bytes
        )
    elif suffix == ".docx":
        title, sections = formats.parse_docx(data, max_bytes=limits.max_decompressed_bytes)
        own_date = dates.docx_date(data)
    else:
        text = formats.decode(data)
        meta, body = split_front_matter(text, suffix=suffix, ignore=frozenset(limits.front_matter_ignore))
        if suffix == ".csv":
            title, sections = formats.parse_csv(body)
        elif suffix in (".html", ".htm"):
            title, sections = formats.parse_html(body)
        elif suffix in (".md", ".markdown"):
            title, sections = formats.parse_markdown(_strip_templates(body))
        else:
            title, sections = formats.parse_text(body)
    try:
        chunks = chunk_sections(sections, max_chunks=limits.max_chunks_per_file)
    except ChunkLimit:
        raise IngestError(
            f"more than {limits.max_chunks_per_file} chunks (setting knowledge.max_chunks_per_file)"
        ) from None
    if not chunks:
        raise IngestError("no text" if suffix == ".pdf" or meta else "empty file")
    classification = int(dept.classification)
    for access in src.access:
        if access.classification is not None:
            classification = max(classification, int(access.classification))
    audiences = [tuple(a.audience) for a in src.access]
    if meta is not None:
        title = meta.title or title
        if meta.classification is not None:
            classification = max(classification, int(meta.classification))
        if meta.audience is not None:
            audiences.append(tuple(meta.audience))
        own_date = meta.updated or own_date
    # Never the mtime: a clone or copy sets it to "now" for every file.
    when = own_date or (dated or {}).get(src.rel)
    kind = dates.UPDATED if when is not None else dates.INDEXED
    modified = when.timestamp() if when is not None else time.time()
    title = title or prettify(src.abspath.name)
    return DocRecord(
        doc_id=f"{dept.name}/{src.rel}",
        rel=src.rel,
        path=shown_path(Path(dept.knowledge), src.rel),
        title=title,
        modified=modified,
        classification=classification,
        audiences=tuple(audiences),
        chunks=_without_document_heading(tuple(_drop_title_from_anchor(c, title) for c in chunks)),
        date_kind=kind,
    )


def check_folder(dept: Department, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    """Every link, access-file, front-matter and size problem of ``dept``'s folder.

    Reads access files and text files (not PDF/DOCX contents), never chunks or embeds;
    sorted by file. An empty list means every candidate file's metadata is acceptable.
    """
    walker = Walker(dept, limits, version=PARSER_VERSION)
    sources = walker.run()
    problems = list(walker.problems)
    for src in sources:
        if src.refused:
            continue
        shown = shown_path(Path(dept.knowledge), src.rel)
        try:
            data = read_source(src, limits)
            if src.suffix in TEXT_SUFFIXES and data:
                split_front_matter(
                    formats.decode(data), suffix=src.suffix, ignore=frozenset(limits.front_matter_ignore)
                )
        except MetadataError as exc:
            problems.append(exc.at(shown))
        except IngestError as exc:
            problems.append(Problem(shown, exc.reason))
    problems.sort(key=lambda p: (p.file, p.line or 0))
    return problems


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


_TEMPLATE_MARKS = (("{%", "%}"), ("{{", "}}"), ("<!--", "-->"))


def _strip_templates(text: str) -> str:
    """Jekyll/Liquid tags and HTML comments are build instructions, not content.

    A linear scan: an opener without a closer ends the search for that kind (a regex with
    ``.*?`` rescans the rest of the text for every unclosed opener: quadratic).
    """
    for opener, closer in _TEMPLATE_MARKS:
        if opener not in text:
            continue
        out: list[str] = []
        pos = 0
        while (start := text.find(opener, pos)) != -1:
            end = text.find(closer, start + len(opener))
            if end == -1:
                break
            out.append(text[pos:start])
            pos = end + len(closer)
        out.append(text[pos:])
        text = "".join(out)
    return text
