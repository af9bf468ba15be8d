"""Logs never contain question text, answer text or personal data, at any log level.

Every flow runs with deptbot's own logging set-up at its most verbose (``-vv``), then the
root logger forced to DEBUG on top (as a host or an operator might): the CLI ask and
index, the Slack and Teams servers (DM, mention, streaming), a knowledge refresh, and an
LLM provider failing. Canaries sit in the question, in a document and in the model's
answer; none may appear in anything logged — by deptbot or by the libraries it drives
(slack_sdk, slack_bolt, botbuilder/msrest, openai, anthropic, httpx/httpcore, urllib3,
LlamaIndex), including exception tracebacks — nor on the CLI's stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.app import _configure_logging
from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.types import Message
from bot.sensitivity import PatternClassifier
from tests.adapters.slack.conftest import SlackHarness, dm, mention
from tests.adapters.teams.conftest import Harness, _run
from tests.adapters.teams.conftest import make_settings as teams_settings
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder, make_company
from tests.llm.conftest import env_for, make_settings
from tests.llm.stubs import StubLLM

Q_CANARY = "QCANARYzq81"  # in every question
DOC_CANARY = "DOCCANARYkx42"  # in a document
A_CANARY = "ANSCANARYvv07"  # in the model's answer
EMAIL = "logcanary.p3@example.org"
PHONE = "+44 20 7946 0958"
CANARIES = (Q_CANARY, DOC_CANARY, A_CANARY, EMAIL, "logcanary.p3", PHONE, "7946 0958", "SECRET-SDK-TEXT")

QUESTION = f"How many vacation days carry over? {Q_CANARY}"
PII_QUESTION = f"How many vacation days carry over? Reply to {EMAIL} or {PHONE}. {Q_CANARY}"
MODEL_ANSWER = f"Unused vacation days carry over until March 31 [1]. {A_CANARY}"
DOC = f"""\
    # Carry-over rules
    ## Vacation carry-over
    Unused vacation days carry over until March 31 of the next year. {DOC_CANARY}
    Questions go to {EMAIL}.
    """


PROBE = "hygiene-probe: DEBUG records are captured"


def _most_verbose(verbosity: int = 2) -> None:
    """deptbot's own set-up at ``-vv``, then root and ``bot`` forced to DEBUG on top."""
    _configure_logging(max(verbosity, 2))
    logging.root.setLevel(logging.DEBUG)
    logging.getLogger("bot").setLevel(logging.DEBUG)


@pytest.fixture
def verbose(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    """The worst case an operator can produce, also for ``main`` (which sets logging up
    again on every call)."""
    saved = {
        n: lg.level for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }
    root_level = logging.root.level
    monkeypatch.setattr("bot.cli.app._configure_logging", _most_verbose)
    caplog.set_level(logging.DEBUG)
    _most_verbose()
    yield caplog
    from bot.logs import uninstall

    uninstall()
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
    logging.root.setLevel(root_level)


def assert_clean(caplog: pytest.LogCaptureFixture, *also: str) -> None:
    logging.getLogger("tests.hygiene").debug(PROBE)
    assert PROBE in caplog.text, "DEBUG records are not captured: the test would prove nothing"
    logged = caplog.text + "\n".join(also)
    for record in caplog.records:  # the message even if a formatter would drop it
        logged += "\n" + record.getMessage() + repr(record.args) + str(record.exc_text or "")
    found = sorted({c for c in CANARIES if c in logged})
    leaking = sorted(
        {r.name for r in caplog.records for c in CANARIES if c in r.getMessage() + str(r.exc_text or "")}
    )
    assert found == [], f"logged: {found} by {leaking}"


def _company(root: Path) -> Company:
    make_company(root)
    hr = root / "departments" / "hr.yaml"
    hr.write_text(hr.read_text().replace("dont_know_below: 0.35", "dont_know_below: 0.05\npii: redact"))
    doc = root / "knowledge" / "hr" / "carry-over.md"
    doc.write_text(textwrap.dedent(DOC))
    return load_company(root / "departments")


@pytest.fixture(params=["anthropic", "openai"])
def stub(request: pytest.FixtureRequest) -> Iterator[StubLLM]:
    """The anthropic SDK logs whole request bodies at DEBUG; the openai one (3.x) no longer does."""
    s = StubLLM(request.param, text=MODEL_ANSWER)
    yield s
    s.close()


def _env(stub: StubLLM) -> dict[str, str]:
    return env_for(anthropic=stub) if stub.kind == "anthropic" else env_for(openai=stub)


@pytest.fixture
def world(tmp_path: Path, stub: StubLLM) -> Assistant:
    from bot.llm.factory import build_generator

    company = _company(tmp_path / "co")
    router = build_generator(make_settings(tmp_path, _env(stub)), usage_store=None)
    return Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=router,
        audit=MemoryAudit(),
        classifier=PatternClassifier(),
    )


# ── CLI ──────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: StubLLM) -> Iterator[tuple[Path, StubLLM]]:
    root = tmp_path / "cli"
    _company(root)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(root / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(root / "state"))
    for name, value in _env(stub).items():
        monkeypatch.setenv(name, value)
    yield root, stub


def test_cli_ask_and_index(
    cli: tuple[Path, StubLLM], verbose: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also through the stderr handler deptbot installs when nothing else has (pytest has:
    its handlers are set aside for that one call)."""
    _, stub = cli
    root = logging.getLogger()
    hosts = root.handlers[:]
    root.handlers.clear()
    _configure_logging(2)  # the real set-up: a handler on (captured) stderr
    ours = root.handlers[:]
    root.handlers.extend(hosts)
    logging.root.setLevel(logging.DEBUG)
    try:
        assert main(["-vv", "index", "hr"]) == 0
        assert main(["-vv", "ask", QUESTION, "--user", "alice@example.com", "--department", "hr"]) == 0
        assert main(["-vv", "ask", PII_QUESTION, "--user", "alice@example.com", "--department", "hr"]) == 0
        logging.getLogger("tests.hygiene").debug(PROBE)
    finally:
        for handler in ours:
            root.removeHandler(handler)
    out, err = capsys.readouterr()
    assert stub.count == 2 and A_CANARY in out  # the flows really ran through the cloud stub
    assert PROBE in err, "deptbot's own stderr handler saw the DEBUG records too"
    assert_clean(verbose, err)


def test_refresh(world: Assistant, tmp_path: Path, verbose: pytest.LogCaptureFixture) -> None:
    from bot.knowledge import KnowledgeBase

    kb = KnowledgeBase(state_dir=tmp_path / "kb")
    report = kb.refresh(world.company.department("hr"))
    assert report.failed == () and report.chunks > 0
    assert_clean(verbose)


# ── LLM provider failures ────────────────────────────────────────────────────────────


@pytest.mark.parametrize("behaviour", ["500", "malformed", "401", "cut"])
def test_provider_errors(
    behaviour: str, world: Assistant, stub: StubLLM, verbose: pytest.LogCaptureFixture
) -> None:
    stub.default = behaviour
    for text in (QUESTION, PII_QUESTION):
        answer = world.ask(
            Message(user_id="alice", email="alice@example.com", text=text, department="hr"),
            on_delta=(lambda d: None) if behaviour == "cut" else None,
        )
        assert answer.ok
    assert stub.count >= 2
    assert_clean(verbose)


def test_an_unexpected_provider_bug(
    world: Assistant, verbose: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that raises something unforeseen, with the prompt in its message."""
    from bot.llm.anthropic import AnthropicProvider
    from bot.llm.openai import OpenAIProvider

    def broken(self: object, prompt: object, **kw: object) -> object:
        raise RuntimeError(f"unexpected: {prompt!r}")

    monkeypatch.setattr(OpenAIProvider, "complete", broken)
    monkeypatch.setattr(AnthropicProvider, "complete", broken)
    answer = world.ask(Message(user_id="alice", email="alice@example.com", text=QUESTION, department="hr"))
    assert answer.ok
    assert_clean(verbose)


# ── Slack and Teams ──────────────────────────────────────────────────────────────────


def test_slack_flows(
    world: Assistant, stub: StubLLM, tmp_path: Path, verbose: pytest.LogCaptureFixture
) -> None:
    harness = SlackHarness(world, tmp_path / "slack-state", stream_interval=0.01)

    async def scenario() -> None:
        async with harness as h:
            await h.event(dm(QUESTION, ts="1700000002.000100"))
            await h.stub.wait_for("chat.postMessage")
            await h.event(mention(PII_QUESTION, ts="1700000003.000100"))
            await h.stub.wait_for("chat.postMessage", 2)
            await h.command("/ask", "hr " + QUESTION, name="ask")
            await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "ask")
            # a redelivery and a command nobody handles: bolt logs request bodies there
            await h.event(dm(QUESTION, ts="1700000002.000100"), event_id="Ev-repeat")
            await h.event(dm(QUESTION, ts="1700000002.000100"), event_id="Ev-repeat", retry=1)
            await h.command("/not-ours", QUESTION, name="other")

    asyncio.run(scenario())
    assert stub.count >= 2
    posted = repr(harness.stub.calls)
    assert A_CANARY in posted  # the answer really went out through slack_sdk
    assert_clean(verbose)


def test_teams_flows(
    world: Assistant, stub: StubLLM, tmp_path: Path, verbose: pytest.LogCaptureFixture
) -> None:
    sent: list[str] = []

    async def scenario(h: Harness) -> None:
        for text in (QUESTION, PII_QUESTION):
            posted = await h.ask(h.activity(text))
            sent.extend(repr(p.body) for p in posted)
        posted = await h.ask(h.activity(QUESTION, kind="channel"))
        sent.extend(repr(p.body) for p in posted)

    asyncio.run(_run(scenario, world, teams_settings(tmp_path / "teams")))
    assert stub.count >= 2 and any(A_CANARY in s for s in sent)
    assert_clean(verbose)
