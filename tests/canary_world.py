"""The stores a canary test runs on, opened the way ``deptbot serve`` opens them.

The canary matrix runs once per backend (``db_backend``): the settings carry the backend's
environment, so the audit log, answer cache, admin notices and usage land in SQLite files
in the state folder or in PostgreSQL tables, through the same wiring functions a
deployment uses, and ``db_backend.dump`` then reads every row they hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.config import Company
from bot.core.ports import AnswerCache
from bot.knowledge import KnowledgeBase
from bot.llm.factory import build_cache, build_generator, open_usage_store
from bot.settings import Settings
from bot.store.audit import ChainedAudit
from bot.store.notices import Notices, open_notices
from bot.wiring import build_knowledge, open_audit_log
from tests.fakes import RecordingGenerator


@dataclass
class CanaryStores:
    settings: Settings
    knowledge: KnowledgeBase
    generator: RecordingGenerator
    audit: ChainedAudit
    cache: AnswerCache | None
    notices: Notices
    failed: list[object]  # what the refresh could not index (the hostile files, on purpose)


def open_stores(root: Path, env: dict[str, str], company: Company) -> CanaryStores:
    """Settings for ``root``'s departments and ``root/state`` with ``env`` (the backend's),
    every department indexed, and the stores an ``Assistant`` takes."""
    settings = Settings.load(departments=root / "departments", state=root / "state", env=dict(env))
    notices = open_notices(settings)
    knowledge = build_knowledge(settings, notices=notices)
    failed: list[object] = []
    for dept in company:
        failed += knowledge.refresh(dept).failed
    generator = RecordingGenerator(build_generator(settings, usage_store=open_usage_store(settings)))
    return CanaryStores(
        settings=settings,
        knowledge=knowledge,
        generator=generator,
        audit=open_audit_log(settings),
        cache=build_cache(settings),
        notices=notices,
        failed=failed,
    )
