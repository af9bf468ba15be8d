"""A template skeleton reaches a real provider's wire only while the index would show it.

Through the real router and the ``openai`` SDK against a loopback stub: a clean skeleton
is in the prompt; once it narrows its readers (``--- `` with a trailing space and an
audience, the review repro), the template is refused before any request is sent.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.config import load_company
from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from tests.core.test_skeleton_access import CANARY, HOSTILE, _company_with_skeleton
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder
from tests.llm.conftest import RouterFactory, env_for
from tests.llm.stubs import StubLLM


def test_a_hostile_skeleton_never_reaches_the_provider(
    tmp_path: Path, make_router: RouterFactory, openai_stub: StubLLM
) -> None:
    skeleton = _company_with_skeleton(tmp_path)
    skeleton.write_text("Dear [Candidate first name], SKELETON-CLEAN-MARK as [Job title].\n")
    company = load_company(tmp_path / "departments")
    router, _ = make_router(env_for(None, openai_stub))
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=router,
        audit=MemoryAudit(),
    )
    message = Message(
        user_id="alice@example.com",
        text="Jane Doe, data analyst, paid vacation days",
        template="offer-letter",
    )
    first = assistant.ask(message)
    assert first.status is Status.ANSWERED and openai_stub.count == 1
    assert "SKELETON-CLEAN-MARK" in json.dumps(openai_stub.requests[0].body)
    skeleton.write_text(HOSTILE["fence-trailing-space"][1]["templates/s.md"], encoding="utf-8")
    second = assistant.ask(message)
    assert second.status is Status.ERROR and CANARY not in second.text
    assert openai_stub.count == 1
    assert all(CANARY not in json.dumps(seen.body) for seen in openai_stub.requests)
