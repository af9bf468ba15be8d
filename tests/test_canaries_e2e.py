"""The canary matrix through the real parts: LlamaIndex-backed index, hybrid retrieval,
router (offline → extractive), the audit log, answer cache and admin notices, and the logs.
It runs on both backends (``db_backend``): SQLite files in the state folder, and
PostgreSQL (``DEPTBOT_DATABASE_URL``), where every table but the knowledge index's is read.

Every department and the restricted folder hold a unique canary string. For every
(user, department) pair, a canary the user may not see must never appear in the answer,
its citations and snippets, the request given to the generator, any stored row (audit,
cache, notices, usage: SQLite files or PostgreSQL tables) or anything logged.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import pytest

from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.sensitivity import PatternClassifier
from bot.settings import Settings
from bot.store.notices import open_notices
from tests.canary_world import open_stores
from tests.fakes import CANARIES, RecordingGenerator, make_company
from tests.pg_fixtures import DbBackend

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
def world(
    tmp_path_factory: pytest.TempPathFactory, db_backend: DbBackend
) -> tuple[Assistant, RecordingGenerator, Path]:
    """A fresh company, index, audit and cache per test (and a fresh PostgreSQL database),
    so the stores hold only what this test's user caused to be written."""
    root = tmp_path_factory.mktemp("company")
    company = make_company(root)
    stores = open_stores(root, db_backend.env, company)
    assert stores.failed == []
    assistant = Assistant(
        company=company,
        retriever=stores.knowledge,
        indexer=stores.knowledge,
        generator=stores.generator,  # type: ignore[arg-type]
        audit=stores.audit,
        classifier=PatternClassifier(),
        cache=stores.cache,
        notices=stores.notices,
    )
    return assistant, stores.generator, stores.settings.state_dir


@pytest.mark.parametrize("user", USERS)
def test_canaries_never_leak(  # type: ignore[no-untyped-def]
    world, db_backend: DbBackend, user: str, caplog: pytest.LogCaptureFixture
) -> None:
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
    stored = db_backend.dump(state)
    assert "answered" in stored  # not vacuous: the audit rows are in what was read
    logged = caplog.text
    for name, canary in CANARIES.items():
        if user in VISIBLE[name]:
            continue
        assert canary not in seen, f"{name} canary in an answer for {user}"
        assert canary not in generated, f"{name} canary sent to the generator for {user}"
        assert canary not in stored, f"{name} canary stored ({db_backend.name}) for {user}"
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


def test_the_stored_rows_checked_include_every_store(world, db_backend: DbBackend) -> None:  # type: ignore[no-untyped-def]
    """The check above can fail: a canary written through a store (here an admin notice,
    which keeps plain text) is found in what ``dump`` reads, on either backend."""
    assistant, _, state = world
    assistant.ask(Message(user_id="c", email="carol@example.com", text=QUESTIONS[0], department="hr"))
    settings = Settings.load(departments=state.parent / "departments", state=state, env=db_backend.env)
    open_notices(settings).notify("hr", "canary-probe", f"probe {CANARIES['payroll']}")
    stored = db_backend.dump(state)
    assert CANARIES["payroll"] in stored
    if db_backend.name == "postgresql":
        assert {"requests", "answers", "notices", "reservations"} <= set(db_backend.tables())
        assert not (state / "audit.db").exists()  # the audit went to PostgreSQL, not a file
