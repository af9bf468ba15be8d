"""The only place that picks implementations for the core's ports.

``build_assistant(settings)`` is what the CLI and the server call; tests build an
``Assistant`` themselves with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Company, knowledge_roots, load_company
from bot.core.pipeline import Assistant
from bot.core.ports import AdminNotices
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.ingest import Limits
from bot.llm.factory import build_cache, build_generator, open_usage_store
from bot.sensitivity import PatternClassifier
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.notices import SqliteNotices
from bot.store.state import ensure_private_dir
from bot.store.usage import UsageStore


@dataclass
class Wired:
    """The assistant plus the concrete parts the CLI needs directly (eval, audit tail)."""

    assistant: Assistant
    company: Company  # as loaded at start; the config watcher swaps ``assistant.company``
    knowledge: KnowledgeBase
    audit: SqliteAuditLog
    usage: UsageStore
    settings: Settings
    notices: SqliteNotices


def build_knowledge(settings: Settings, *, notices: AdminNotices | None = None) -> KnowledgeBase:
    """The knowledge base with the ``[knowledge]`` caps and link rule; files it does not index
    are told to admins through ``notices`` (default: ``<state>/notices.sqlite3``)."""
    r = settings.values.retrieval
    return KnowledgeBase(
        state_dir=settings.state_dir,
        embedder=r.embedder,
        fusion=r.fusion,
        limits=Limits.from_settings(settings.section("knowledge")),
        notices=notices if notices is not None else SqliteNotices.in_state_dir(settings.state_dir),
    )


def build(settings: Settings, *, company: Company | None = None) -> Wired:
    company = company or load_company(settings.departments_dir, allowed_roots=knowledge_roots(settings))
    ensure_private_dir(settings.state_dir)
    notices = SqliteNotices.in_state_dir(settings.state_dir)
    knowledge = build_knowledge(settings, notices=notices)
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
        notices=notices,
        top_k=settings.values.retrieval.top_k,
    )
    return Wired(
        assistant=assistant,
        company=company,
        knowledge=knowledge,
        audit=audit,
        usage=usage,
        settings=settings,
        notices=notices,
    )


def build_assistant(settings: Settings) -> Assistant:
    return build(settings).assistant
