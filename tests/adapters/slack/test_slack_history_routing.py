"""Labelled history per surface (issue 8, class 1): what the bot posted comes back as thread
history with the label it was posted with, so a restricted answer never travels to a cloud
model inside a later prompt — through the real server, the stub Web API, the real router
and recording LLM stubs (Anthropic for cloud, an OpenAI-compatible private endpoint)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.slack.stub import BOT_ID, BOT_USER_ID, StubChannel
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.llm.factory import build_generator
from bot.store.usage import UsageStore
from tests.adapters.slack.conftest import SlackHarness, dm, mention
from tests.adapters.slack.test_slack_server import run
from tests.fakes import CANARIES, FakeIndexer, FakeRetriever, MemoryAudit
from tests.llm.conftest import env_for, make_settings
from tests.llm.stubs import StubLLM

PRIVATE_TEXT = "PRIVATE-MODEL-ANSWER-5e2a: the L3 payroll band is 95,000 to 120,000 dollars [1]."
CLOUD_TEXT = "Full-time employees receive 25 days of paid vacation per year [1]."
UNLABELLED = "UNLABELLED-BOT-TEXT-4411 the old answer about salary bands"
PAYROLL_Q = "What is the payroll salary band L3 range?"
VACATION_Q = "How many vacation days do I get?"


@pytest.fixture
def cloud() -> Iterator[StubLLM]:
    stub = StubLLM("anthropic", text=CLOUD_TEXT)
    yield stub
    stub.close()


@pytest.fixture
def private() -> Iterator[StubLLM]:
    stub = StubLLM("openai", text=PRIVATE_TEXT)
    yield stub
    stub.close()


def llm_harness(
    tmp_path: Path,
    company: Company,
    retriever: FakeRetriever,
    cloud: StubLLM,
    private: StubLLM | None,
) -> SlackHarness:
    settings = make_settings(tmp_path, env_for(anthropic=cloud, private=private))
    usage = UsageStore(path=settings.state_dir / "usage.db")
    assistant = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=build_generator(settings, usage_store=usage),
        audit=MemoryAudit(),
    )
    return SlackHarness(assistant, tmp_path / "slack-state", stream_interval=0.01)


def sent_to(stub: StubLLM) -> str:
    return json.dumps([r.body for r in stub.requests], ensure_ascii=False)


@pytest.mark.parametrize("surface", ["dm", "channel"])
def test_a_restricted_answer_never_reaches_the_cloud_as_history(
    surface: str,
    tmp_path: Path,
    company: Company,
    retriever: FakeRetriever,
    cloud: StubLLM,
    private: StubLLM,
) -> None:
    """carol's payroll answer (restricted) comes from the private model; her internal
    follow-up in the same thread carries it as history, so it stays private too."""
    root = "1699990700.000100"  # before the stub's reply timestamps (1700000001.…)
    where = "D0ALICE" if surface == "dm" else "C0PAY"

    def ask(text: str, ts: str, thread: str = "") -> dict[str, object]:
        if surface == "dm":
            return dm(text, user="UCAROL", ts=ts, **({"thread_ts": thread} if thread else {}))
        if thread:  # a plain reply in a thread the bot answered in
            return {
                "type": "message",
                "channel_type": "channel",
                "channel": where,
                "user": "UCAROL",
                "ts": ts,
                "thread_ts": thread,
                "text": text,
            }
        return mention(text, user="UCAROL", channel=where, ts=ts)

    async def scenario(h: SlackHarness) -> None:
        h.stub.channels["C0PAY"] = StubChannel(members=["UCAROL", BOT_USER_ID])  # only carol reads it
        await h.event(ask(PAYROLL_Q, root))
        await h.stub.wait_for("reactions.remove")
        assert private.count == 1 and cloud.count == 0
        (first,) = h.stub.threads[(where, root)]
        assert "PRIVATE-MODEL-ANSWER" in first["text"]
        assert first["metadata"]["event_payload"]["label"] == "restricted"
        h.stub.add_thread_message(where, root, {"ts": root, "user": "UCAROL", "text": PAYROLL_Q})
        await h.event(ask(VACATION_Q, "1700000709.000100", thread=root))
        await h.stub.wait_for("reactions.remove", 2)
        assert private.count == 2 and cloud.count == 0
        assert "PRIVATE-MODEL-ANSWER" in sent_to(private)  # the history went where it may go
        # Control: the same internal question in a new thread is answered by the cloud model.
        await h.event(ask(VACATION_Q, "1700000800.000100"))
        await h.stub.wait_for("reactions.remove", 3)
        assert cloud.count == 1
        for secret in ("PRIVATE-MODEL-ANSWER", "95,000", CANARIES["payroll"]):
            assert secret not in sent_to(cloud)

    run(llm_harness(tmp_path, company, retriever, cloud, private), scenario)


@pytest.mark.parametrize("configured", [True, False], ids=["private-endpoint", "sources-only"])
def test_our_unlabelled_message_in_a_department_channel_counts_as_restricted(
    configured: bool,
    tmp_path: Path,
    company: Company,
    retriever: FakeRetriever,
    cloud: StubLLM,
    private: StubLLM,
) -> None:
    """A bot message without metadata (posted before labels, or by an older version) in the
    HR channel thread: the follow-up never goes to the cloud, whatever the channel."""
    root = "1699990900.000100"

    async def scenario(h: SlackHarness) -> None:
        h.stub.add_thread_message("C0HRHELP", root, {"ts": root, "user": "UALICE", "text": "<@UBOT> bands?"})
        old = {"ts": "1699990900.000200", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": UNLABELLED}
        h.stub.add_thread_message("C0HRHELP", root, old)
        await h.event(mention(VACATION_Q, channel="C0HRHELP", ts="1700000909.000100") | {"thread_ts": root})
        await h.stub.wait_for("reactions.remove")
        assert cloud.count == 0 and "UNLABELLED-BOT-TEXT" not in sent_to(cloud)
        assert private.count == (1 if configured else 0)
        if configured:
            assert "UNLABELLED-BOT-TEXT" in sent_to(private)

    run(llm_harness(tmp_path, company, retriever, cloud, private if configured else None), scenario)
