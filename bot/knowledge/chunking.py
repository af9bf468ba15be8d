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
* The cap bites before the splitter runs: a file of hundreds of thousands of tiny
  paragraphs made the splitter work 23-40 s (one split per character, each tokenised)
  just to reach ``max_chunks``. Every block first gets a floor, the fewest chunks the
  splitter can possibly make of it (``_floor``: never more than it makes), and a file
  whose floors, plus the chunks already made, exceed the cap is refused at once or as
  soon as that is certain. The floors change no chunk of a file under the cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex  # \p{L} as the splitter's tokenizer (tiktoken) reads it

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

    class Splitter(SentenceSplitter):
        """The same splitter and tokenizer, without pydantic's private-attribute lookup on
        every split: on text cut character by character that lookup was most of its time."""

        def _token_size(self, text: str) -> int:
            return len(encode(text))

    splitter = Splitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP, include_metadata=False)
    encode = splitter._tokenizer
    return splitter


_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")


def chunk_sections(sections: list[tuple[str, str]], *, max_chunks: int | None = None) -> list[Chunk]:
    """Chunks of every section; raises ChunkLimit beyond ``max_chunks``.

    With a cap, every unit of work (a short section, a block, a section with tables or
    lists) is planned first with its floor, the fewest chunks it can make; the file is
    refused as soon as the chunks made plus the floors still ahead exceed the cap.
    """
    capped = max_chunks is not None
    units: list[tuple[str, str, str, int]] = []  # (kind, anchor, text, floor)
    for anchor, text in sections:
        text = text.strip()
        if not text:
            continue
        # Short sections (most of them) skip the splitter: it is the slowest step.
        if len(text) < CHUNK_TOKENS * 3:
            units.append(("whole", anchor, text, 1))
        elif _STRUCTURE.search(text):
            units.append(("structured", anchor, _LONG_RUN.sub(" ", text), 0))
        else:
            for block in _blocks(_LONG_RUN.sub(" ", text)):
                short = len(block) < CHUNK_TOKENS * 3
                units.append(
                    (
                        "whole" if short else "split",
                        anchor,
                        block,
                        1 if short or not capped else _floor(block),
                    )
                )
    ahead = sum(unit[3] for unit in units)  # floors of the units not chunked yet
    if max_chunks is not None and ahead > max_chunks:
        raise ChunkLimit
    chunks: list[Chunk] = []
    for kind, anchor, text, floor in units:
        ahead -= floor
        if kind == "whole":
            chunks.append(Chunk(text, anchor))
        elif kind == "split":
            chunks.extend(Chunk(p.strip(), anchor) for p in _splitter().split_text(text) if p.strip())
        else:
            for piece in _structured(text):
                chunks.append(Chunk(piece, anchor))
                if max_chunks is not None and len(chunks) + ahead > max_chunks:
                    raise ChunkLimit
        if max_chunks is not None and len(chunks) + ahead > max_chunks:
            raise ChunkLimit
    return chunks


# ── the floor: fewest chunks the splitter can make of a block ───────────────────────────

_LETTERS = regex.compile(r"\p{L}+")
# a gap of at most 8 non-letters between two letters that holds a line break
_LINE_GAP = regex.compile(r"(?<=\p{L})(?=\P{L}{0,7}[\r\n])\P{L}{1,8}(?=\p{L})")
# cl100k_base's special tokens: with allowed_special="all" each is one token whatever it spells
SPECIAL_TOKENS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>")


def _floor(block: str) -> int:
    """At most the number of chunks ``_splitter().split_text(block)`` returns (kept, non-blank).

    Why it holds (cl100k_base, the splitter's tokenizer; tests/knowledge/test_chunk_floor.py
    checks it against the splitter): its pre-tokenizer gives every maximal run of letters
    at least one piece of its own, and a gap holding a line break another, letter-free one;
    each piece is at least one token. Cutting text only adds runs and keeps every break, so
    the splitter's splits together hold at least F = runs + gaps tokens. Every chunk holds at
    most 300 tokens of splits, and every split is in a chunk. Only whitespace-only chunks
    are dropped; such a chunk inside a gap of at most 8 characters (at most 32 tokens) was
    closed by a split of more than 268 tokens that cannot share a chunk with another, so
    each such loss is paid by a chunk: 300·N >= F - N, N >= F / 301.
    """
    for special in SPECIAL_TOKENS:
        if special in block:
            block = block.replace(special, "\x00")
    units = len(_LETTERS.findall(block)) + len(_LINE_GAP.findall(block))
    return max(1, -(-units // (CHUNK_TOKENS + 1)))


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


def _pieces(unit: _Unit) -> Iterable[str]:
    """A unit as texts of at most ``PIECE_CHARS`` where possible: a table split between
    rows with its header repeated in every piece, a list split between items, the intro
    kept with the first rows or items. A single row or item longer than that stays whole."""
    if unit.kind == "prose":
        text = unit.lines[0]
        if len(text) <= PIECE_CHARS:
            return [text]
        return (p.strip() for b in _blocks(text) for p in _splitter().split_text(b) if p.strip())
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


def _structured(text: str) -> Iterator[str]:
    """Chunks of a long section with tables or lists: units packed up to ``PIECE_CHARS``;
    one at a time, so the cap stops a long one early (a prose unit is split block by block)."""
    cur: list[str] = []
    size = 0
    for unit in _units(text):
        for piece in _pieces(unit):
            if cur and size + len(piece) + 2 > PIECE_CHARS:
                yield "\n\n".join(cur)
                cur, size = [], 0
            cur.append(piece)
            size += len(piece) + 2
    if cur:
        yield "\n\n".join(cur)


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
