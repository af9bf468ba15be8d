"""The only place that picks implementations for the core's ports.

``build_assistant(settings)`` is what the CLI and the server call; tests build an
``Assistant`` themselves with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.ports import Generator
from bot.knowledge.base import KnowledgeBase
from bot.llm.extractive import ExtractiveGenerator
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog


@dataclass
class Wired:
    """The assistant plus the concrete parts the CLI needs directly (eval, audit tail)."""

    assistant: Assistant
    company: Company
    knowledge: KnowledgeBase
    audit: SqliteAuditLog
    settings: Settings


def build_knowledge(settings: Settings) -> KnowledgeBase:
    r = settings.retrieval
    return KnowledgeBase(
        state_dir=settings.state_dir,
        embedder=str(r.get("embedder", "wordllama")),
        fusion=str(r.get("fusion", "default")),
    )


def build_generator(settings: Settings) -> Generator:
    return ExtractiveGenerator()


def build(settings: Settings, *, company: Company | None = None) -> Wired:
    company = company or load_company(settings.departments_dir)
    knowledge = build_knowledge(settings)
    audit = SqliteAuditLog(path=settings.state_dir / "audit.db")
    assistant = Assistant(
        company=company,
        retriever=knowledge,
        indexer=knowledge,
        generator=build_generator(settings),
        audit=audit,
        top_k=int(settings.retrieval.get("top_k", 6)),
    )
    return Wired(assistant=assistant, company=company, knowledge=knowledge, audit=audit, settings=settings)


def build_assistant(settings: Settings) -> Assistant:
    return build(settings).assistant
