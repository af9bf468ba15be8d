"""Cut parsed sections into token-bounded chunks and build the text the retrievers see.

Why it looks like this:

* A chunk keeps the anchor of the section it came from (heading path, page, row range), so
  every hit can be cited back to a place a person can check.
* LlamaIndex's ``SentenceSplitter`` does the token-bounded splitting with overlap; it is the
  slowest step, so short sections (most of them) skip it. LlamaIndex is imported lazily so
  that answering questions (retrieve.py) never pays its import cost, and it is pinned
  offline first so no default ever reaches for OpenAI.
* The splitter is only ever given bounded input: long sections are first cut at paragraph,
  line or word boundaries into blocks of at most ``BLOCK_CHARS``, and runs of more than
  ``MAX_WORD_CHARS`` characters without whitespace (base64 images, minified blobs) are
  dropped — on such text the splitter falls back to one piece per character, and a 34 MB
  one-line file once hung a refresh. ``max_chunks`` stops a file early instead of
  chunking all of it (``ChunkLimit``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bot.knowledge.tables import LIST_ITEM, TABLE_LINE

CHUNK_TOKENS = 300
CHUNK_OVERLAP = 40
SEP = " › "  # joins a heading path: "Time off › Annual vacation"
BLOCK_CHARS = 8000  # the splitter never sees more than this at once
MAX_WORD_CHARS = 1000  # longer whitespace-free runs are noise, not words


class ChunkLimit(Exception):
    """A file would produce more than ``max_chunks`` chunks."""


@dataclass(frozen=True)
class Chunk:
    text: str
    anchor: str = ""


def offline_llama_index() -> None:
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
    offline_llama_index()
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP, include_metadata=False)


_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")


def chunk_sections(sections: list[tuple[str, str]], *, max_chunks: int | None = None) -> list[Chunk]:
    """Chunks of every section; raises ChunkLimit beyond ``max_chunks``."""
    chunks: list[Chunk] = []
    for anchor, text in sections:
        text = text.strip()
        if not text:
            continue
        # Short sections (most of them) skip the splitter: it is the slowest step.
        if len(text) < CHUNK_TOKENS * 3:
            chunks.append(Chunk(text, anchor))
        elif _STRUCTURE.search(text):
            for piece in _structured(_LONG_RUN.sub(" ", text)):
                chunks.append(Chunk(piece, anchor))
                if max_chunks is not None and len(chunks) > max_chunks:
                    raise ChunkLimit
        else:
            for block in _blocks(_LONG_RUN.sub(" ", text)):
                pieces = [block] if len(block) < CHUNK_TOKENS * 3 else _splitter().split_text(block)
                chunks.extend(Chunk(p.strip(), anchor) for p in pieces if p.strip())
                if max_chunks is not None and len(chunks) > max_chunks:
                    raise ChunkLimit
        if max_chunks is not None and len(chunks) > max_chunks:
            raise ChunkLimit
    return chunks


# ── sections with tables or lists ───────────────────────────────────────────────────

_STRUCTURE = re.compile(r"(?m)^\s*(?:\||(?:[-*+]|\d{1,3}[.)])\s+\S)")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
PIECE_CHARS = CHUNK_TOKENS * 3  # a structured chunk holds what a short section may (900 chars)
INTRO_CHARS = 400  # a paragraph this short before a list or table introduces it


@dataclass
class _Unit:
    kind: str  # "prose" | "table" | "list"
    lines: list[str]
    intro: str = ""


def _units(text: str) -> list[_Unit]:
    """Paragraphs, tables (runs of ``|`` lines) and lists (items plus their continuation
    lines), in order; a short paragraph right before a table or list becomes its intro."""
    units: list[_Unit] = []
    para: list[str] = []

    def end_para() -> None:
        if para:
            units.append(_Unit("prose", ["\n".join(para)]))
            para.clear()

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if TABLE_LINE.match(line):
            end_para()
            rows = []
            while i < len(lines) and TABLE_LINE.match(lines[i]):
                rows.append(lines[i].strip())
                i += 1
            units.append(_Unit("table", rows))
            continue
        if LIST_ITEM.match(line):
            end_para()
            items: list[str] = []
            while i < len(lines):
                cur = lines[i]
                if LIST_ITEM.match(cur):
                    items.append(cur.rstrip())
                elif cur.strip() and not TABLE_LINE.match(cur) and items and not cur.lstrip().startswith("#"):
                    items[-1] += " " + cur.strip()  # continuation of the item above
                elif not cur.strip():
                    nxt = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
                    if nxt is None or not LIST_ITEM.match(lines[nxt]):
                        break
                else:
                    break
                i += 1
            units.append(_Unit("list", items))
            continue
        if line.strip():
            para.append(line)
        else:
            end_para()
        i += 1
    end_para()
    out: list[_Unit] = []
    for unit in units:
        prev = out[-1] if out else None
        if (
            unit.kind != "prose"
            and prev is not None
            and prev.kind == "prose"
            and len(prev.lines[0]) <= INTRO_CHARS
        ):
            unit.intro = out.pop().lines[0]
        out.append(unit)
    return out


def _pieces(unit: _Unit) -> list[str]:
    """A unit as texts of at most ``PIECE_CHARS`` where possible: a table split between
    rows with its header repeated in every piece, a list split between items, the intro
    kept with the first rows or items. A single row or item longer than that stays whole."""
    if unit.kind == "prose":
        text = unit.lines[0]
        if len(text) <= PIECE_CHARS:
            return [text]
        return [p.strip() for b in _blocks(text) for p in _splitter().split_text(b) if p.strip()]
    head: list[str] = []
    body = unit.lines
    if unit.kind == "table":
        n = 2 if len(body) > 1 and _SEPARATOR.match(body[1]) else 1
        head, body = body[:n], body[n:]
    out: list[str] = []
    cur: list[str] = [unit.intro, ""] if unit.intro else []
    cur += head
    size = sum(len(x) + 1 for x in cur)
    fresh = True  # nothing but intro/header in ``cur`` yet
    for line in body:
        if not fresh and size + len(line) + 1 > PIECE_CHARS:
            out.append("\n".join(cur).strip())
            cur, size, fresh = list(head), sum(len(x) + 1 for x in head), True
        cur.append(line)
        size += len(line) + 1
        fresh = False
    if not fresh or not out:
        out.append("\n".join(cur).strip())
    return [o for o in out if o]


def _structured(text: str) -> list[str]:
    """Chunks of a long section with tables or lists: units packed up to ``PIECE_CHARS``."""
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for unit in _units(text):
        for piece in _pieces(unit):
            if cur and size + len(piece) + 2 > PIECE_CHARS:
                chunks.append("\n\n".join(cur))
                cur, size = [], 0
            cur.append(piece)
            size += len(piece) + 2
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


def _blocks(text: str) -> list[str]:
    """Cut ``text`` into blocks of at most BLOCK_CHARS, preferring paragraph, line, word ends."""
    out: list[str] = []
    start, n = 0, len(text)
    while n - start > BLOCK_CHARS:
        end = start + BLOCK_CHARS
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = text.rfind(sep, start + BLOCK_CHARS // 2, end)
            if cut > start:
                break
        cut = cut if cut > start else end
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return [b for b in (b.strip() for b in out) if b]


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")


def index_text(title: str, anchor: str, text: str) -> str:
    """What BM25 and the embedder see: title and heading path give context; URLs are noise."""
    body = _URL.sub(" ", _LINK.sub(r"\1", text))
    head = f"{title}{SEP}{anchor}" if anchor and not anchor.startswith(("page ", "row")) else title
    return f"{head}\n{body}"
