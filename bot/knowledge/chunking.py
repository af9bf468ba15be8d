"""Cut parsed sections into token-bounded chunks and build the text the retrievers see.

Why it looks like this:

* A chunk keeps the anchor of the section it came from (heading path, page, row range), so
  every hit can be cited back to a place a person can check.
* LlamaIndex's ``SentenceSplitter`` does the token-bounded splitting with overlap; it is the
  slowest step, so short sections (most of them) skip it. LlamaIndex is imported lazily so
  that answering questions (retrieve.py) never pays its import cost, and it is pinned
  offline first so no default ever reaches for OpenAI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

CHUNK_TOKENS = 300
CHUNK_OVERLAP = 40
SEP = " › "  # joins a heading path: "Time off › Annual vacation"


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
