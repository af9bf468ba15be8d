"""``pii:`` end to end: department file → classifier → pipeline → router → SDK → stub.

The asker sees their own values; the cloud stub never does; the audit row gets counts
(never values); the answer cache holds what the asker saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.ports import AuditLog
from bot.core.types import Answer, Message, Status
from bot.sensitivity import PatternClassifier
from bot.store.cache import SqliteAnswerCache
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder
from tests.llm.conftest import RouterFactory, env_for
from tests.llm.stubs import StubLLM

EMAIL = "canary.pii.7f3a@example.org"
PHONE = "+44 20 7946 0958"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "536-90-2218"
CANARIES = (EMAIL, "canary.pii.7f3a", PHONE, "7946 0958", IBAN, "DE89370400440532013000", SSN, "536902218")
QUESTION = f"How many vacation days carry over? I am {EMAIL}, phone {PHONE}, IBAN {IBAN}, SSN {SSN}."


def _company(company: Company, mode: str) -> Company:
    hr = company.department("hr").source_file
    assert hr is not None
    hr.write_text(hr.read_text().replace("dont_know_below: 0.35", f"dont_know_below: 0.05\npii: {mode}"))
    return load_company(hr.parent)


def _assistant(company: Company, router: object, audit: AuditLog, tmp_path: Path) -> Assistant:
    return Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=router,  # type: ignore[arg-type]
        audit=audit,
        classifier=PatternClassifier(),
        cache=SqliteAnswerCache(path=tmp_path / "cache.db"),
    )


def _ask(assistant: Assistant, text: str = QUESTION, **kw: object) -> Answer:
    return assistant.ask(
        Message(user_id="alice", email="alice@example.com", text=text, department="hr"),
        **kw,  # type: ignore[arg-type]
    )


def _sent(stub: StubLLM) -> str:
    return "\n".join(json.dumps(s.body, ensure_ascii=False) + json.dumps(s.body) for s in stub.requests)


def test_redact_end_to_end(
    company: Company, tmp_path: Path, make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    openai_stub.text = "Up to five days carry over [1]. We will confirm to [EMAIL_1] and [PHONE_1]."
    router, _ = make_router(env_for(openai=openai_stub))
    audit = MemoryAudit()
    assistant = _assistant(_company(company, "redact"), router, audit, tmp_path)
    deltas: list[str] = []
    answer = _ask(assistant, on_delta=deltas.append)

    assert answer.status == Status.ANSWERED and answer.route == "cloud"
    assert openai_stub.count == 1
    sent = _sent(openai_stub)
    assert [c for c in CANARIES if c in sent] == []
    assert f"We will confirm to {EMAIL} and {PHONE}." in answer.text
    assert "".join(deltas).endswith(f"We will confirm to {EMAIL} and {PHONE}.")
    # counts, never values, in the audit row
    row = audit.entries[-1]
    assert json.loads(row.pii_detected) == {
        "email-address": 1,
        "iban": 1,
        "national-id": 1,
        "phone-number": 1,
    }
    assert not any(c in row.pii_detected or c in row.route_reason for c in CANARIES)
    # the cache holds what the asker saw (restored): a repeat is served from it
    again = _ask(assistant)
    assert again.cache_hit and again.text == answer.text and openai_stub.count == 1


def test_block_end_to_end(
    company: Company, tmp_path: Path, make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    router, _ = make_router(env_for(openai=openai_stub))
    audit = MemoryAudit()
    assistant = _assistant(_company(company, "block"), router, audit, tmp_path)
    answer = _ask(assistant)
    assert openai_stub.count == 0
    assert answer.status == Status.SOURCES_ONLY
    assert answer.text.startswith("I didn't send this to the AI model")
    assert answer.citations  # the sources are still listed
    assert not any(c in answer.text for c in CANARIES)
    assert json.loads(audit.entries[-1].pii_detected)["email-address"] == 1
    # a question without personal data is answered as usual
    ok = _ask(assistant, "How many vacation days carry over?")
    assert ok.status == Status.ANSWERED and openai_stub.count == 1 and audit.entries[-1].pii_detected == ""


@pytest.mark.parametrize("mode", ["route_private", None])
def test_route_private_end_to_end(
    mode: str | None,
    company: Company,
    tmp_path: Path,
    make_router: RouterFactory,
    openai_stub: StubLLM,
    private_stub: StubLLM,
) -> None:
    router, _ = make_router(env_for(openai=openai_stub, private=private_stub))
    dept = _company(company, mode) if mode else company
    if mode is None:  # the default: no pii line at all
        hr = dept.department("hr").source_file
        assert hr is not None
        hr.write_text(hr.read_text().replace("dont_know_below: 0.35", "dont_know_below: 0.05"))
        dept = load_company(hr.parent)
        assert dept.department("hr").pii == "route_private"
    audit = MemoryAudit()
    answer = _ask(_assistant(dept, router, audit, tmp_path))
    assert openai_stub.count == 0 and private_stub.count == 1
    assert answer.route == "private"
    assert json.loads(audit.entries[-1].pii_detected)["iban"] == 1


def test_audit_database_row_holds_counts_not_values(
    company: Company, tmp_path: Path, make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    from bot.store.audit import SqliteAuditLog

    openai_stub.text = "Up to five days carry over [1]."
    router, _ = make_router(env_for(openai=openai_stub))
    audit = SqliteAuditLog(path=tmp_path / "state" / "audit.db")
    assistant = _assistant(_company(company, "redact"), router, audit, tmp_path)
    answer = _ask(assistant)
    row = audit.get(answer.request_id)
    assert row is not None and json.loads(row["pii_detected"])["phone-number"] == 1
    plain = repr(row)  # the facts table: who, route, reasons, counts
    assert not any(c in plain for c in CANARIES)
