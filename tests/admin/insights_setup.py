"""A small real world for the Insights tests: the tiny company of ``tests.fakes``, a real
knowledge index (wordllama), a real sealed audit log, usage ledger and eval runs, and a
fixed clock. Rows are written through the stores' own APIs, never raw SQL, so the tests
read what the bot really writes."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.admin.insights import Insights
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.ports import AuditEntry
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder
from bot.llm.extractive import ExtractiveGenerator
from bot.settings import Settings
from bot.store.audit import ChainedAudit
from tests.fakes import make_company

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
QUESTION_CANARY = "QCANARY-7f3e"  # in hidden-text HR questions and 👎 comments
FINANCE_CANARY = "FINCANARY-2b9d"  # in finance questions and comments

EXTRA_DOCS = {
    "hr/old-handbook.md": """\
        ---
        title: Old employee handbook
        updated: 2020-01-15
        ---
        # Handbook
        Dress code and office hours from the 2020 handbook.
        """,
    "hr/broken.pdf": "this is not a pdf at all",
}


@dataclass
class World:
    root: Path
    state: Path
    company: Company
    assistant: Assistant
    audit: ChainedAudit
    kb: KnowledgeBase
    settings: Settings

    def insights(self, **kw: object) -> Insights:
        return Insights(assistant=self.assistant, settings=self.settings, clock=lambda: NOW, **kw)  # type: ignore[arg-type]

    def ask(
        self,
        department: str,
        question: str,
        *,
        status: str = "answered",
        ago: timedelta = timedelta(hours=1),
        user: str = "alice@example.com",
        doc_ids: Iterable[str] = (),
        confidence: float = 0.8,
        latency_ms: float = 1000.0,
        route: str = "local",
        generator: str = "extractive",
        cache_hit: bool = False,
        tokens: tuple[int, int] = (0, 0),
        cost: float = 0.0,
    ) -> str:
        rid = uuid.uuid4().hex[:12]
        self.audit.record(
            AuditEntry(
                request_id=rid,
                time=NOW - ago,
                user=user,
                platform="slack",
                decision="denied" if status == "denied" else "allowed",
                rule="ask",
                status=status,
                department=department,
                question=question,
                doc_ids=tuple(doc_ids),
                generator=generator if status == "answered" else "none",
                route=route if status == "answered" else "none",
                confidence=confidence,
                latency_ms=latency_ms,
                cache_hit=cache_hit,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                cost=cost,
            )
        )
        return rid

    def vote(self, rid: str, value: str, reason: str = "", user: str = "bob@example.com") -> None:
        self.audit.record_feedback(rid, user, value, reason)

    def set_department(self, name: str, **changes: object) -> None:
        dept = self.company.department(name).model_copy(update=changes)
        self.company = replace(self.company, departments={**self.company.departments, name: dept})
        self.assistant.reconfigure(self.company)


def build_world(tmp_path: Path, embedder: Embedder, *, database_url: str = "") -> World:
    """``database_url``: keep the audit records in that PostgreSQL database (as
    ``DEPTBOT_DATABASE_URL`` does) instead of the state folder."""
    from bot.wiring import open_audit_log

    company = make_company(tmp_path)
    for rel, body in EXTRA_DOCS.items():
        path = tmp_path / "knowledge" / rel
        path.write_text(textwrap.dedent(body))
    state = tmp_path / "state"
    # on PostgreSQL every replica must be given the chain's key (none makes its own)
    env = {"DEPTBOT_DATABASE_URL": database_url, "DEPTBOT_AUDIT_KEY": "5a" * 32} if database_url else {}
    settings = Settings.load(departments=tmp_path / "departments", state=state, env=env)
    audit = open_audit_log(settings)
    kb = KnowledgeBase(state_dir=state, embedder=embedder)
    for dept in company:
        kb.refresh(dept)
    assistant = Assistant(
        company=company,
        retriever=kb,
        indexer=kb,
        generator=ExtractiveGenerator(),
        audit=audit,
        clock=lambda: NOW,
    )
    return World(tmp_path, state, company, assistant, audit, kb, settings)
