"""The only place that picks implementations for the core's ports.

``build_assistant(settings)`` is what the CLI and the server call; tests build an
``Assistant`` themselves with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.sensitivity import PatternClassifier
from bot.knowledge.base import KnowledgeBase
from bot.llm.factory import build_cache, build_generator, open_usage_store
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.usage import UsageStore


@dataclass
class Wired:
    """The assistant plus the concrete parts the CLI needs directly (eval, audit tail)."""

    assistant: Assistant
    company: Company
    knowledge: KnowledgeBase
    audit: SqliteAuditLog
    usage: UsageStore
    settings: Settings


def build_knowledge(settings: Settings) -> KnowledgeBase:
    r = settings.retrieval
    return KnowledgeBase(
        state_dir=settings.state_dir,
        embedder=str(r.get("embedder", "wordllama")),
        fusion=str(r.get("fusion", "minmax")),
    )


def build(settings: Settings, *, company: Company | None = None) -> Wired:
    company = company or load_company(settings.departments_dir)
    knowledge = build_knowledge(settings)
    audit = SqliteAuditLog(path=settings.state_dir / "audit.db")
    usage = open_usage_store(settings)
    assistant = Assistant(
        company=company,
        retriever=knowledge,
        indexer=knowledge,
        generator=build_generator(settings, usage_store=usage),
        audit=audit,
        classifier=PatternClassifier(),
        cache=build_cache(settings),
        top_k=int(settings.retrieval.get("top_k", 6)),
    )
    return Wired(
        assistant=assistant, company=company, knowledge=knowledge, audit=audit, usage=usage, settings=settings
    )


def build_assistant(settings: Settings) -> Assistant:
    return build(settings).assistant
