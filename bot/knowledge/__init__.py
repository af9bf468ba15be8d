"""Knowledge: ingest department folders, index them, retrieve access-filtered chunks.

The only package that imports llama_index (lazily, in formats.py and chunking.py). Public
entry points: ``KnowledgeBase`` (Retriever + Indexer ports), ``get_embedder``/
``check_embedder_allowed`` and ``bot.knowledge.evaluate.evaluate_beir``.
"""

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.embedders import check_embedder_allowed, get_embedder

__all__ = ["KnowledgeBase", "check_embedder_allowed", "get_embedder"]
