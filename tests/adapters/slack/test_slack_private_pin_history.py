"""A Slack thread answer given under a ``route: private`` pin is posted with a label of at
least confidential, so a follow-up in the same thread that routes to another department
never sends it to a cloud model (reviewer R2, finding 1) — through the real server, the
stub Web API, the real router and recording LLM stubs (Anthropic plays the cloud)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import Company, load_company
from tests.adapters.slack.conftest import SlackHarness, dm
from tests.adapters.slack.test_slack_history_routing import llm_harness, sent_to
from tests.adapters.slack.test_slack_server import run
from tests.fakes import CANARIES, FakeRetriever, make_company
from tests.llm.stubs import StubLLM

MEALS_Q = "Meal expenses are reimbursed up to how many dollars per day when travelling for work?"
VACATION_Q = "How many vacation days do I get?"


@pytest.fixture
def company(tmp_path: Path) -> Company:  # finance pinned private, only internal documents
    make_company(tmp_path)
    shutil.rmtree(tmp_path / "knowledge" / "finance" / "payroll")
    with (tmp_path / "departments" / "finance.yaml").open("a") as f:
        f.write("route: private\n")
    return load_company(tmp_path / "departments")


@pytest.fixture
def private() -> StubLLM:
    stub = StubLLM("openai", text="PRIVATE-PIN-SLACK-77aa: up to 60 dollars per day [1].")
    yield stub  # type: ignore[misc]
    stub.close()


@pytest.fixture
def cloud() -> StubLLM:
    stub = StubLLM("anthropic")
    yield stub  # type: ignore[misc]
    stub.close()


def test_a_private_pin_answer_in_a_dm_thread_never_reaches_the_cloud(
    tmp_path: Path, company: Company, retriever: FakeRetriever, cloud: StubLLM, private: StubLLM
) -> None:
    assert company.department("finance").route == "private"
    root = "1699990700.000100"

    async def scenario(h: SlackHarness) -> None:
        await h.event(dm(MEALS_Q, user="UCAROL", ts=root))
        await h.stub.wait_for("reactions.remove")
        assert private.count == 1 and cloud.count == 0
        (first,) = h.stub.threads[("D0ALICE", root)]
        assert "PRIVATE-PIN-SLACK" in first["text"]
        assert first["metadata"]["event_payload"]["label"] == "confidential"
        h.stub.add_thread_message("D0ALICE", root, {"ts": root, "user": "UCAROL", "text": MEALS_Q})
        await h.event(dm(VACATION_Q, user="UCAROL", ts="1700000709.000100", thread_ts=root))
        await h.stub.wait_for("reactions.remove", 2)
        assert cloud.count == 0 and private.count == 2, "follow-up: private model, with the thread"
        assert "PRIVATE-PIN-SLACK" in sent_to(private)
        # Control: the same HR question in a new thread is answered by the cloud model.
        await h.event(dm(VACATION_Q, user="UCAROL", ts="1700000800.000100"))
        await h.stub.wait_for("reactions.remove", 3)
        assert cloud.count == 1
        for secret in ("PRIVATE-PIN-SLACK", "60 dollars", CANARIES["finance"], MEALS_Q):
            assert secret not in sent_to(cloud)

    run(llm_harness(tmp_path, company, retriever, cloud, private), scenario)
