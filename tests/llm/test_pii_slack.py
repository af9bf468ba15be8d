"""``pii: redact`` through the real Slack server and its streaming reply.

A DM streams: every partial ``chat.update`` and the final message must show the asker's
own values, never a placeholder or a fragment of one, while the cloud stub sees neither
the values in the question nor those in the thread history.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.sensitivity import PatternClassifier
from tests.adapters.slack.conftest import SlackHarness, dm
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder
from tests.llm.conftest import RouterFactory, env_for
from tests.llm.test_pii_assistant import _company
from tests.llm.test_pii_router import ChoppedStub

EMAIL = "canary.pii.7f3a@example.org"
IBAN = "DE89 3704 0044 0532 0130 00"
CANARIES = (EMAIL, "canary.pii.7f3a", IBAN, "DE89370400440532013000", "0532 0130")


def test_streamed_slack_reply_shows_restored_values(
    company: Company, tmp_path: Path, make_router: RouterFactory
) -> None:
    stub = ChoppedStub("openai", text="Five days carry over [1]. We will write to [EMAIL_1] about [IBAN_1].")
    stub.piece = 4
    try:
        router, _ = make_router(env_for(openai=stub))
        dept = _company(company, "redact")
        assistant = Assistant(
            company=dept,
            retriever=FakeRetriever([c for d in dept for c in chunks_from_folder(d)]),
            indexer=FakeIndexer(),
            generator=router,
            audit=MemoryAudit(),
            classifier=PatternClassifier(),
        )
        harness = SlackHarness(assistant, tmp_path / "slack-state", stream_interval=0.0)
        root = "1700000000.000100"

        async def scenario() -> None:
            async with harness as h:
                h.stub.add_thread_message(
                    "D0ALICE", root, {"ts": root, "user": "UALICE", "text": f"I am {EMAIL}"}
                )
                question = f"How many vacation days carry over? Pay into {IBAN}."
                await h.event(dm(question, ts="1700000009.000100", thread_ts=root))
                await h.stub.wait_for("reactions.remove")

        asyncio.run(scenario())
        sent = "\n".join(json.dumps(s.body, ensure_ascii=False) for s in stub.requests)
        assert stub.count == 1 and [c for c in CANARIES if c in sent] == []
        assert "[EMAIL_1]" in sent and "[IBAN_1]" in sent  # history and question both redacted
        shown = [
            json.dumps(c.args, ensure_ascii=False)
            for c in harness.stub.calls
            if c.method in ("chat.postMessage", "chat.update")
        ]
        assert len(shown) >= 2, "the reply streamed (placeholder, then at least one update)"
        for text in shown:
            assert "EMAIL_" not in text and "IBAN_" not in text and "[EMA" not in text
        assert f"We will write to {EMAIL} about {IBAN}." in shown[-1]
    finally:
        stub.close()
