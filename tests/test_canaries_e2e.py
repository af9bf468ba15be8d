"""The canary matrix through the real parts: LlamaIndex-backed index, hybrid retrieval,
router (offline → extractive), SQLite audit and answer cache, and the logs.

Every department and the restricted folder hold a unique canary string. For every
(user, department) pair, a canary the user may not see must never appear in the answer,
its citations and snippets, the request given to the generator, the audit database, the
cache database or anything logged.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest

from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.knowledge import KnowledgeBase
from bot.llm.factory import build_generator, open_usage_store
from bot.sensitivity import PatternClassifier
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.cache import SqliteAnswerCache
from tests.fakes import CANARIES, RecordingGenerator, make_company

USERS = [
    "alice@example.com",
    "hank@example.com",
    "carol@example.com",
    "dave@example.com",
    "bob@example.com",
    "grace@example.com",
]
VISIBLE = {
    "hr": set(USERS),
    "hr-private": {"hank@example.com"},
    "finance": set(USERS),
    "payroll": {"carol@example.com"},
    "eng": {"bob@example.com"},
}
QUESTIONS = [
    "How many vacation days carry over?",
    "How are workplace investigations handled? case code",
    "Meal expenses per day and receipts",
    "payroll salary band L3 and payroll dates code",
    "production deploys and rollbacks reference",
    "What is the reference code?",
]


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Assistant, RecordingGenerator, Path]:
    """A fresh company, index, audit and cache per test, so the databases hold only what
    this test's user caused to be written."""
    root = tmp_path_factory.mktemp("company")
    company = make_company(root)
    state = root / "state"
    settings = Settings.load(departments=root / "departments", state=state, env={})
    kb = KnowledgeBase(state_dir=state)
    for dept in company:
        report = kb.refresh(dept)
        assert report.failed == ()
    gen = RecordingGenerator(build_generator(settings, usage_store=open_usage_store(settings)))
    assistant = Assistant(
        company=company,
        retriever=kb,
        indexer=kb,
        generator=gen,  # type: ignore[arg-type]
        audit=SqliteAuditLog(path=state / "audit.db"),
        classifier=PatternClassifier(),
        cache=SqliteAnswerCache(path=state / "cache.db"),
    )
    return assistant, gen, state


def _dump_db(path: Path) -> str:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
    return "\n".join(repr(row) for t in tables for row in conn.execute(f"select * from [{t}]"))


@pytest.mark.parametrize("user", USERS)
def test_canaries_never_leak(world, user: str, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    assistant, gen, state = world
    gen.requests.clear()
    caplog.set_level(logging.DEBUG)
    answers = []
    for question in QUESTIONS:
        for dept in (None, "hr", "finance", "eng"):
            for in_channel in (False, True):
                answers.append(
                    assistant.ask(
                        Message(
                            user_id=user,
                            email=user,
                            text=question,
                            department=dept,
                            in_channel=in_channel,
                            channel="C0FIN" if in_channel else None,
                        )
                    )
                )
    seen = "\n".join(repr(asdict(a)) for a in answers)
    generated = "\n".join(repr(r) for r in gen.requests)
    stored = _dump_db(state / "audit.db") + _dump_db(state / "cache.db")
    logged = caplog.text
    for name, canary in CANARIES.items():
        if user in VISIBLE[name]:
            continue
        assert canary not in seen, f"{name} canary in an answer for {user}"
        assert canary not in generated, f"{name} canary sent to the generator for {user}"
        assert canary not in stored, f"{name} canary stored (audit/cache) for {user}"
        assert canary not in logged, f"{name} canary logged for {user}"
    # Not vacuous: what the user may see does come back through the same path.
    allowed = [c for n, c in CANARIES.items() if user in VISIBLE[n]]
    assert any(c in seen for c in allowed)
    assert any(a.status is Status.ANSWERED for a in answers)


def test_restricted_folder_reaches_its_admin_only(world) -> None:  # type: ignore[no-untyped-def]
    assistant, _, _ = world
    q = "payroll salary band L3 and payroll dates code"
    carol = assistant.ask(Message(user_id="c", email="carol@example.com", text=q, department="finance"))
    dave = assistant.ask(Message(user_id="d", email="dave@example.com", text=q, department="finance"))
    assert any("payroll/" in c.path for c in carol.citations)
    assert not any("payroll/" in c.path for c in dave.citations)
