"""Self-service privacy requests in chat, through the Slack and Teams stub servers: a
person gets their own export privately, and erasure needs the one-time code back."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Message
from bot.governance import keys as mk
from bot.governance.privacy import Privacy, SelfService, register, self_service
from bot.governance.vault import Vault, forget_open_vaults
from bot.llm.extractive import ExtractiveGenerator
from bot.settings import Settings
from bot.store.audit import SqliteAuditLog
from bot.store.cache import SqliteAnswerCache
from tests.adapters.slack.conftest import SlackHarness, company  # noqa: F401 - fixture
from tests.adapters.slack.test_slack_server import run
from tests.fakes import FakeIndexer, FakeRetriever, chunks_from_folder

CANARY = "marzipanheron"


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def assistant(company: Company, state: Path) -> Assistant:  # noqa: F811
    vault = Vault.in_state_dir(state, mk.load({}, None))
    audit = SqliteAuditLog(path=state / "audit.db", vault=vault)
    a = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=audit,
        cache=SqliteAnswerCache(path=state / "cache.db", vault=vault),
    )
    settings = Settings.load(state=state, env={})
    register(a, SelfService(lambda: Privacy.for_settings(settings, audit=audit)))
    return a


def _texts(payloads: list[dict]) -> dict[str, str]:  # type: ignore[type-arg]
    return {p["_name"]: json.dumps(p, ensure_ascii=False) for p in payloads}


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(call, thread name) of every export and confirmed erase: both scan or rewrite a
    person's rows (seconds on a big audit log), so they run on the report threads, never on
    the quick threads a Slack acknowledgement or a Teams reply waits for."""
    seen: list[tuple[str, str]] = []
    for name in ("export", "confirm_erase"):
        real = getattr(SelfService, name)

        def spy(
            self: SelfService, *a: object, _real: object = real, _name: str = name, **k: object
        ) -> object:
            seen.append((_name, threading.current_thread().name))
            return _real(self, *a, **k)  # type: ignore[operator]

        monkeypatch.setattr(SelfService, name, spy)
    return seen


def _on_report_threads(seen: list[tuple[str, str]]) -> None:
    assert {call for call, _ in seen} == {"export", "confirm_erase"}
    assert all(name.startswith("deptbot-report") for _, name in seen), seen


def test_slack_my_data_and_forget_me(
    assistant: Assistant, state: Path, threads: list[tuple[str, str]]
) -> None:
    harness = SlackHarness(assistant, state)

    async def scenario(h: SlackHarness) -> None:
        await h.command("/ask", f"How many vacation days carry over {CANARY}?", user="UALICE", name="ask")
        await h.stub.wait_for("response_url", 1)
        await h.command("/kb", "my-data", user="UALICE", name="export")
        await h.command("/kb", "my-data", user="UBOB", name="other")
        got = _texts(await h.stub.wait_for("response_url", 3))
        assert CANARY in got["export"] and "only you can see this" in got["export"]
        assert "alice@example.com" in got["export"] and "1 questions" in got["export"]
        assert CANARY not in got["other"]  # bob gets his own (empty) record, never alice's
        assert all(json.loads(v)["response_type"] == "ephemeral" for v in got.values())

        await h.command("/kb", "forget-me", user="UALICE", name="start")
        start = _texts(await h.stub.wait_for("response_url", 4))["start"]
        code = re.search(r"/kb forget-me ([A-Z0-9]{6})", start)
        assert code is not None and "cannot be undone" in start
        await h.command("/kb", "forget-me ZZZZZZ", user="UALICE", name="wrong")
        await h.command("/kb", f"forget-me {code.group(1)}", user="UBOB", name="bob-steals")
        got = _texts(await h.stub.wait_for("response_url", 6))
        assert "not valid" in got["wrong"] and "not valid" in got["bob-steals"]
        assert (state / "audit.db").exists()
        await h.command("/kb", f"forget-me {code.group(1)}", user="UALICE", name="confirm")
        receipt = _texts(await h.stub.wait_for("response_url", 7))["confirm"]
        assert "Data key destroyed: yes" in receipt and "alice@example.com" not in receipt
        await h.command("/kb", f"forget-me {code.group(1)}", user="UALICE", name="reuse")
        assert "not valid" in _texts(await h.stub.wait_for("response_url", 8))["reuse"]  # one use only

    run(harness, scenario)
    _on_report_threads(threads)
    audit = SqliteAuditLog(path=state / "audit.db")
    rows = audit.tail(20)
    assert not any(r["user"] == "alice@example.com" for r in rows)
    erase = [r for r in rows if r["rule"] == "privacy:erase"]
    assert len(erase) == 1 and erase[0]["platform"] == "slack" and erase[0]["user"].startswith("u-")
    exports = [r for r in rows if r["rule"] == "privacy:export"]
    assert len(exports) == 2  # alice's (now pseudonymized) and bob's
    assert audit.verify().ok


def test_teams_my_data_and_forget_me(
    assistant: Assistant, state: Path, tmp_path: Path, threads: list[tuple[str, str]]
) -> None:
    import asyncio

    from tests.adapters.teams.conftest import Harness, _run, make_settings

    async def scenario(h: Harness) -> None:
        await h.ask(h.activity(f"How many vacation days carry over {CANARY}?"))
        shared = await h.ask(h.activity("kb my-data", kind="channel"))
        assert CANARY not in json.dumps([p.body for p in shared])
        assert "1:1 chat" in shared[-1].body["text"]

        posted = await h.ask(h.activity("kb my-data"))
        texts = [p.body.get("text", "") for p in posted]
        assert any("only in this 1:1 chat" in t for t in texts)
        assert any(CANARY in t for t in texts)
        conversations = {p.path for p in posted}
        assert all("personal-alice" in c for c in conversations)  # alice's own 1:1 chat

        start = (await h.ask(h.activity("kb forget-me")))[-1].body["text"]
        code = re.search(r"kb forget-me ([A-Z0-9]{6})", start)
        assert code is not None
        wrong = (await h.ask(h.activity(f"kb forget-me {code.group(1)}", user="bob")))[-1].body["text"]
        assert "not valid" in wrong
        done = (await h.ask(h.activity(f"kb forget-me {code.group(1)}")))[-1].body["text"]
        assert "Data key destroyed: yes" in done and "alice@example.com" not in done
        again = await h.ask(h.activity("kb my-data"))
        assert not any(CANARY in p.body.get("text", "") for p in again)

    asyncio.run(_run(scenario, assistant, make_settings(tmp_path)))
    _on_report_threads(threads)
    rows = SqliteAuditLog(path=state / "audit.db").tail(20)
    assert [r["platform"] for r in rows if r["rule"] == "privacy:erase"] == ["teams"]
    erased_at = next(i for i, r in enumerate(rows) if r["rule"] == "privacy:erase")
    assert not any(r["user"] == "alice@example.com" for r in rows[:erased_at])
    assert (
        rows[-1]["rule"] == "privacy:export" and rows[-1]["user"] == "alice@example.com"
    )  # asked again after


def test_export_pieces_fit_slack_sections_and_reassemble() -> None:
    from bot.adapters.slack import limits
    from bot.adapters.slack.commands import _escaped_chunks
    from bot.governance.privacy import Export, export_chunks

    data = {"person": "a@example.com", "questions": [{"question": "<&>" * 900 + "```"} for _ in range(5)]}
    export = Export(data, {"questions": 5})
    pieces = export_chunks(export, 2600)
    assert "".join(pieces) == export.to_json()
    blocks = _escaped_chunks(pieces)
    assert all(len(f"```{b}```") <= limits.TEXT for b in blocks)
    joined = "".join(blocks).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert joined.replace("`\u200b``", "```") == export.to_json()


def test_forget_me_empties_a_per_process_memory_cache(tmp_path: Path) -> None:
    """With ``[cache] backend = "memory"`` the serving process holds answers that no file
    records an owner for; an erase from chat must not leave one behind there. The memory
    cache keeps no subject per entry, so the erase empties it (answers are recomputable)."""
    from bot.wiring import build

    root = Path(__file__).resolve().parents[2]
    settings = Settings.load(
        departments=root / "departments",
        state=tmp_path / "state",
        env={"DEPTBOT_CACHE__BACKEND": "memory"},
    )
    wired = build(settings)
    question = f"How many vacation days carry over {CANARY}?"
    answer = wired.assistant.ask(Message(user_id="alice@example.com", text=question, department="hr"))
    assert answer.request_id
    cache = wired.cache
    assert cache is not None and type(cache).__name__ == "MemoryAnswerCache"
    assert len(cache._data) == 1  # type: ignore[attr-defined]  # the asker's answer is held in memory
    service = self_service(wired.assistant)
    assert service is not None
    code = service.start_erase("alice@example.com")
    assert service.confirm_erase("alice@example.com", code, platform="slack") is not None
    assert len(cache._data) == 0  # type: ignore[attr-defined]
