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
        else:
            for block in _blocks(_LONG_RUN.sub(" ", text)):
                pieces = [block] if len(block) < CHUNK_TOKENS * 3 else _splitter().split_text(block)
                chunks.extend(Chunk(p.strip(), anchor) for p in pieces if p.strip())
                if max_chunks is not None and len(chunks) > max_chunks:
                    raise ChunkLimit
        if max_chunks is not None and len(chunks) > max_chunks:
            raise ChunkLimit
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
