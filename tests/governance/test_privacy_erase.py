"""Erasure leaves nothing readable: after ``privacy erase``, no byte of any file under the
state folder holds the person's e-mail or the words of a question they asked; before it,
their questions are already unreadable at rest (encrypted), and the audit chain verifies."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.governance import keys as mk
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults, vault_for
from bot.llm.factory import build_cache, build_generator, open_usage_store
from bot.sensitivity import PatternClassifier
from bot.settings import Settings
from bot.store.admin_sessions import AdminSessionStore
from bot.store.conversations import ConversationStore
from bot.store.notices import Notices, open_notices
from bot.wiring import open_audit_log
from tests.fakes import FakeIndexer, FakeRetriever, chunks_from_folder, make_company

EMAIL = "Quokka.Canary@example.com"
BYSTANDER = "alice@example.com"
QUESTION_WORDS = ("zanzibarquokka", "periwinklemarmot")  # only ever typed by the canary person
FEEDBACK_WORDS = "tangerinevelociraptor"
QUESTIONS = [
    f"How many vacation days carry over {QUESTION_WORDS[0]}?",
    f"vacation days carry over {QUESTION_WORDS[1]}",
]


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _world(root: Path, env: dict[str, str]) -> tuple[Settings, Assistant, ConversationStore, Notices]:
    company = make_company(root)
    state = root / "state"
    settings = Settings.load(departments=root / "departments", state=state, env=env)
    vault_for(settings)
    usage = open_usage_store(settings)
    notices = open_notices(settings)  # PostgreSQL with DEPTBOT_DATABASE_URL in env
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=build_generator(settings, usage_store=usage),
        audit=open_audit_log(settings),
        classifier=PatternClassifier(),
        cache=build_cache(settings),
        notices=notices,
    )
    return settings, assistant, ConversationStore.for_settings(settings), notices  # PostgreSQL too


def _ask(assistant: Assistant, email: str, text: str) -> object:
    return assistant.ask(Message(user_id=email, email=email, text=text, platform="teams", department="hr"))


def _files(state: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file()}


def _holding(files: dict[Path, bytes], needle: str) -> list[str]:
    forms = {needle.encode(), needle.lower().encode(), needle.upper().encode()}
    return [p.name for p, raw in files.items() if any(f in raw for f in forms)]


@pytest.mark.parametrize("configured_key", [False, True], ids=["builtin-key", "master-key"])
def test_erase_leaves_no_canary_in_any_file(
    tmp_path: Path, configured_key: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {mk.ENV_VAR: mk.generate()} if configured_key else {}
    settings, assistant, convo, notices = _world(tmp_path, env)
    state = settings.state_dir

    console, bystander = _canary_activity(assistant, convo, notices, state)
    assert convo.history.get(KEY)[0].text == QUESTIONS[0]

    before = _files(state)
    for word in (*QUESTION_WORDS, FEEDBACK_WORDS):  # encrypted at rest already
        assert _holding(before, word) == [], word
    holding = {name.removesuffix("-wal") for name in _holding(before, EMAIL)}
    assert {"audit.db", "usage.db", "notices.sqlite3", AdminSessionStore.FILE} <= holding  # until the erase
    assert not any(w in caplog.text for w in (*QUESTION_WORDS, FEEDBACK_WORDS))

    privacy = Privacy.for_settings(settings)
    receipt = privacy.erase(EMAIL)
    privacy.close()

    after = _files(state)
    assert any(p.name.endswith("-wal") for p in after)  # WAL files exist and are searched too
    for needle in (EMAIL, *QUESTION_WORDS, FEEDBACK_WORDS):
        assert _holding(after, needle) == [], needle
    assert receipt.key_shredded and receipt.files_checkpointed
    assert receipt.removed["questions"] == 4 and receipt.removed["cached_answers"] >= 1
    assert receipt.removed["teams_history"] == 2 and receipt.removed["teams_replies"] == 1
    assert receipt.removed["notices"] == 1 and receipt.removed["usage_rows_pseudonymized"] >= 1
    assert receipt.pseudonym.startswith("u-") and EMAIL.lower() not in "\n".join(receipt.lines())
    assert receipt.removed["admin_events_pseudonymized"] == 3
    assert receipt.removed["admin_sessions"] == 1 and receipt.removed["admin_links"] == 2
    # the console's trail keeps what happened, under the pseudonym; the bystander is untouched
    trail = [(e.event, e.user) for e in console.events()]
    assert ("signin", receipt.pseudonym) in trail and ("signin", BYSTANDER) in trail
    assert console.session(console.open_session(BYSTANDER, absolute=60), idle=60) is not None
    console.close()

    audit = open_audit_log(settings)
    report = audit.verify()
    assert report.ok, report.problem
    rows = audit.tail(50)
    assert [r["user"] for r in rows].count(receipt.pseudonym) == 5  # 4 questions + the erase itself
    assert rows[-1]["rule"] == "privacy:erase" and rows[-1]["user"] == receipt.pseudonym
    # the bystander is untouched
    assert any(r["user"] == BYSTANDER for r in rows)
    assert audit.feedback_for(bystander.request_id)[0]["user"] == BYSTANDER  # type: ignore[attr-defined]
    again = Privacy.for_settings(settings).export(BYSTANDER, record=False)
    assert again.data["feedback"][0]["reason"] == "bystander kept"
    assert convo.history.get(KEY) == ()  # the running Teams store sees the erase too


KEY = ("19:conv@thread", "aad-quokka")  # the canary's Teams conversation


def _canary_activity(
    assistant: Assistant, convo: ConversationStore, notices: Notices, state: Path
) -> tuple[AdminSessionStore, Any]:
    """Everything the canary leaves behind: two questions asked twice (the second a cache
    hit), a 👎 with a comment, Teams history, a reply card and a reference, an admin notice
    naming them, admin console sign-ins (the store stays open, as in a running server);
    and a bystander's question and 👍. Returns the console store and the bystander's answer."""
    answers = [_ask(assistant, EMAIL, q) for q in QUESTIONS for _ in range(2)]
    assert {a.status for a in answers} == {Status.ANSWERED}  # type: ignore[attr-defined]
    assert any(a.cache_hit for a in answers)  # type: ignore[attr-defined]
    first: Any = answers[0]
    assistant.feedback(first.request_id, user=EMAIL, value="down", reason=f"wrong {FEEDBACK_WORDS}")
    convo.history.add_answer(KEY, QUESTIONS[0], first)
    convo.replies.remember("msg-1", first.request_id, first)
    convo.references.put(("teams", "tenant", "aad-quokka"), {"user": {"id": "aad-quokka", "name": "Q"}})
    notices.notify(None, "directory", f"{EMAIL} is not in any group")
    console = _console_activity(state)
    bystander: Any = _ask(assistant, BYSTANDER, "How many vacation days carry over for bystanders?")
    assistant.feedback(bystander.request_id, user=BYSTANDER, value="up", reason="bystander kept")
    return console, bystander


def _console_activity(state: Path) -> AdminSessionStore:
    """Admin console sign-ins of the canary (links issued, one redeemed into a session, a
    refresh) and of a bystander, as ``bot.admin`` records them (e-mails lower-cased)."""
    store = AdminSessionStore.in_state_dir(state)
    person = EMAIL.lower()
    token = store.create_link(person, 600)
    store.record("link", person, detail="teams")
    assert store.redeem(token) == person
    store.open_session(person, absolute=3600)
    store.record("signin", person)
    store.record("refresh", person, "hr", detail="started")
    store.create_link(person, 600)  # issued, never used
    store.record("signin", BYSTANDER)
    return store


def test_export_includes_admin_console_activity(tmp_path: Path) -> None:
    settings, _, _, _ = _world(tmp_path, {})
    _console_activity(settings.state_dir).close()
    export = Privacy.for_settings(settings).export(EMAIL, record=False)
    console = export.data["admin_console"]
    assert [e["event"] for e in console["events"]] == ["link", "signin", "refresh"]
    assert console["events"][2]["department"] == "hr"
    assert len(console["sessions"]) == 1 and len(console["links"]) == 2
    assert sum(1 for link in console["links"] if link["used"]) == 1
    assert "token_hash" not in console["links"][0] and "id_hash" not in console["sessions"][0]
    assert export.counts["admin_console_events"] == 3
    assert "3 admin console events" in export.summary()[0]


def test_export_after_erase_finds_nothing(tmp_path: Path) -> None:
    settings, assistant, _, _ = _world(tmp_path, {})
    _ask(assistant, EMAIL, QUESTIONS[0])
    privacy = Privacy.for_settings(settings)
    privacy.erase(EMAIL)
    export = privacy.export(EMAIL, record=False)
    assert export.counts["audit_rows"] == 0 and export.counts["questions"] == 0
    assert export.counts["admin_console_events"] == 0


def test_erase_with_the_wrong_audit_key_destroys_nothing(tmp_path: Path) -> None:
    """The audit rows can only be pseudonymized with the key that chained them: checked
    before anything is deleted or shredded, so a refused erase leaves everything readable."""
    from bot.errors import StoreError
    from bot.governance.chain import AuditKey
    from bot.store.audit import SqliteAuditLog

    settings, assistant, _, _ = _world(tmp_path, {})
    _ask(assistant, EMAIL, QUESTIONS[0])
    wrong = SqliteAuditLog(path=settings.state_dir / "audit.db", key=AuditKey(b"w" * 32, "environment"))
    with pytest.raises(StoreError):
        Privacy.for_settings(settings, audit=wrong).erase(EMAIL)
    export = Privacy.for_settings(settings).export(EMAIL, record=False)
    assert [q["question"] for q in export.data["questions"]] == [QUESTIONS[0]]
