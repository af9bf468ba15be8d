"""An answer given under a ``route: private`` pin never reaches a cloud model as history
(reviewer R2, finding 1), through the real CLI chat, the real router and the real SDKs.

Finance is pinned private but stays *internal*: nothing in its documents or the question
is above internal, so only the pin keeps its answer off the cloud. The old history carried
that answer labelled internal, and a follow-up in another department (auto: cloud) sent
the private model's answer to the cloud provider. Now the answer is held confidential, so
the follow-up stays on the private model, which still sees the conversation.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.types import Answer, Classification
from tests.fakes import CANARIES, make_company
from tests.llm.conftest import NO_BUDGETS, TEST_LLM, env_for
from tests.llm.stubs import StubLLM

PRIVATE_TEXT = "PRIVATE-PIN-ANSWER-c0f3: meals are reimbursed up to 60 dollars per day [1]."
MEALS_Q = "Meal expenses are reimbursed up to how many dollars per day when travelling for work?"
VACATION_Q = "How many vacation days do I get?"


@pytest.fixture
def stubs() -> Iterator[tuple[StubLLM, StubLLM]]:
    cloud, private = StubLLM("anthropic"), StubLLM("openai", text=PRIVATE_TEXT)
    yield cloud, private
    cloud.close()
    private.close()


def pin_finance_private(root: Path) -> None:
    """Finance pinned private with only internal documents (its restricted payroll folder
    removed), so the pin is the one reason its answers must stay off the cloud."""
    make_company(root)
    shutil.rmtree(root / "knowledge" / "finance" / "payroll")
    with (root / "departments" / "finance.yaml").open("a") as f:
        f.write("route: private\n")


def chat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str], env: dict[str, str]) -> None:
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[llm]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TEST_LLM.items())
        + "[budgets]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in NO_BUDGETS.items())
    )
    for key, value in {
        **env,
        "DEPTBOT_DEPARTMENTS": str(tmp_path / "departments"),
        "DEPTBOT_STATE": str(tmp_path / "state"),
        "DEPTBOT_SETTINGS": str(settings),
    }.items():
        monkeypatch.setenv(key, value)
    feed = iter([*lines, "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(feed))
    assert main(["chat", "--user", "carol@example.com", "--department", "finance"]) == 0


def sent_to(stub: StubLLM) -> str:
    return json.dumps([r.body for r in stub.requests], ensure_ascii=False)


def test_a_private_pin_answer_never_reaches_the_cloud_as_history_in_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stubs: tuple[StubLLM, StubLLM]
) -> None:
    cloud, private = stubs
    pin_finance_private(tmp_path)
    env = env_for(anthropic=cloud, private=private)
    chat(tmp_path, monkeypatch, [MEALS_Q, "/dept hr", VACATION_Q], env)
    assert private.count == 2, "the follow-up stays useful: the private model answers it"
    assert "PRIVATE-PIN-ANSWER" in json.dumps(private.requests[1].body)  # with the history
    for secret in ("PRIVATE-PIN-ANSWER", "60 dollars", CANARIES["finance"], MEALS_Q):
        assert secret not in sent_to(cloud)
    assert cloud.count == 0

    # not vacuous: without that history the same HR question goes to the cloud
    chat(tmp_path, monkeypatch, ["/dept hr", VACATION_Q], env)
    assert cloud.count == 1 and "PRIVATE-PIN-ANSWER" not in sent_to(cloud)


def test_a_private_pin_without_a_private_model_keeps_the_follow_up_off_the_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stubs: tuple[StubLLM, StubLLM]
) -> None:
    """Sources only under the pin (titles from finance): the follow-up is sources only too."""
    cloud, _ = stubs
    pin_finance_private(tmp_path)
    chat(tmp_path, monkeypatch, [MEALS_Q, "/dept hr", VACATION_Q], env_for(anthropic=cloud))
    assert cloud.count == 0


def test_held_label_and_answer_turns() -> None:
    from bot.core.labels import PRIVATE_ONLY, answer_turns, held_label

    internal = Classification.INTERNAL
    assert held_label(internal, pin="private") == PRIVATE_ONLY
    assert held_label(internal, pin="auto", route="private") == PRIVATE_ONLY
    assert held_label(Classification.RESTRICTED, pin="private") == Classification.RESTRICTED
    assert held_label(internal, pin="auto", route="cloud") == internal
    _, answer = answer_turns("q", Answer(text="a", request_id="r", classification=PRIVATE_ONLY))
    assert answer.label == PRIVATE_ONLY
