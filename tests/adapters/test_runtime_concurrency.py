"""Many Slack questions at once through the real server and a real (stub) LLM endpoint:
every question is answered exactly once, and beyond ``max_in_flight`` the asker is told
the question is queued. Correctness only; how fast is ``python -m bench.concurrency``."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.adapters.http import RUNTIME, build_app
from bot.adapters.runtime import Runtime, busy_line
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.llm.extractive import ExtractiveGenerator
from bot.llm.factory import build_generator
from bot.settings import Settings
from tests.adapters.slack.conftest import SECRET, TOKEN, SlackHarness, mention
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit
from tests.llm.stubs import StubLLM

QUESTIONS = 50
ASKERS = ("UALICE", "UHANK")  # both may ask HR and are the members of C0HRHELP


class Harness(SlackHarness):
    """The Slack harness with a runtime of the test's choosing."""

    def __init__(self, *args: Any, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runtime = runtime

    async def start_server(self) -> None:
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": self.stub.api_url}
        settings = Settings(departments_dir=Path("."), state_dir=self.state_dir, env=env)
        app = build_app(assistant=self.assistant, settings=settings, runtime=self.runtime)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


@pytest.fixture
def llm() -> Any:
    stub = StubLLM(kind="openai", default="slow", slow_seconds=0.3)
    yield stub
    stub.close()


@pytest.fixture
def slow_assistant(company: Company, retriever: FakeRetriever, llm: StubLLM, tmp_path: Path) -> Assistant:
    """The stub serves as the cloud and the private model: every answer comes from it."""
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.url, "DEPTBOT_PRIVATE_LLM_URL": llm.url}
    settings = Settings.load(departments=tmp_path, state=tmp_path / "state", env=env)
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=build_generator(settings, usage_store=None),
        audit=MemoryAudit(),
    )


def _ts(i: int) -> str:
    return f"1700001{i:03d}.000100"


def _busy(args: dict[str, Any]) -> bool:
    return str(args.get("text", "")).startswith("I'm busy")


async def _ask_all(h: Harness) -> list[int]:
    events = [
        mention(f"How many vacation days do I get? ({i})", user=ASKERS[i % 2], ts=_ts(i))
        for i in range(QUESTIONS)
    ]
    acks = await asyncio.gather(*(h.event(e) for e in events))
    for _ in range(600):  # until every question has a reply (at most 60 s)
        if len(_replies(h)) >= QUESTIONS:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # a duplicate would arrive by now
    return [status for status, _ in acks]


def _answers(h: Harness) -> list[dict[str, Any]]:
    """Answers: in the thread, or privately to the asker (never the busy line)."""
    return h.stub.to("chat.postMessage") + [a for a in h.stub.to("chat.postEphemeral") if not _busy(a)]


def _replies(h: Harness) -> Counter[str]:
    return Counter(str(a.get("thread_ts")) for a in _answers(h))


def test_fifty_concurrent_questions_are_each_answered_exactly_once(
    slow_assistant: Assistant, llm: StubLLM, tmp_path: Path
) -> None:
    async def main() -> None:
        async with Harness(slow_assistant, tmp_path / "state", runtime=Runtime()) as h:
            assert await _ask_all(h) == [200] * QUESTIONS
            replies = _replies(h)
        assert replies == Counter({_ts(i): 1 for i in range(QUESTIONS)})  # all delivered, none twice
        assert [a for a in h.stub.to("chat.postEphemeral") if _busy(a)] == []  # under the cap: no busy line
        assert all("25 days" in json.dumps(a) for a in _answers(h))
        assert llm.count == QUESTIONS

    asyncio.run(main())


def test_beyond_max_in_flight_the_asker_hears_the_question_is_queued(
    slow_assistant: Assistant, llm: StubLLM, tmp_path: Path
) -> None:
    runtime = Runtime(answer_threads=4, max_in_flight=4)

    async def main() -> None:
        async with Harness(slow_assistant, tmp_path / "state", runtime=runtime) as h:
            await _ask_all(h)
            replies = _replies(h)
        assert replies == Counter({_ts(i): 1 for i in range(QUESTIONS)})
        busy = [a for a in h.stub.to("chat.postEphemeral") if _busy(a)]
        assert len(busy) == QUESTIONS - 4  # everyone who had to wait was told, once, privately
        assert Counter(a["thread_ts"] for a in busy).most_common(1)[0][1] == 1
        assert all(a["user"] in ASKERS and a["channel"] == "C0HRHELP" for a in busy)
        ahead = sorted(int(a["text"].split("(")[1].split()[0]) for a in busy if "ahead" in a["text"])
        assert ahead == list(range(1, QUESTIONS - 4))  # one told "you're next", the others how many are ahead
        assert (runtime.in_flight, runtime.queued) == (0, 0)

    asyncio.run(main())


# ── Teams: the same cap and the same words ──────────────────────────────────────────


class SlowGenerator:
    """The offline generator, 0.2 s slower: answers overlap."""

    name = "slow"

    def __init__(self) -> None:
        self.inner = ExtractiveGenerator()

    def generate(self, request: Any, *, on_delta: Any = None) -> Any:
        time.sleep(0.2)
        return self.inner.generate(request, on_delta=on_delta)


def test_teams_shares_the_servers_runtime_and_says_when_a_question_waits(
    company: Company, retriever: FakeRetriever, tmp_path: Path
) -> None:
    from bot.adapters.teams.bot import ENDPOINT_KEY, mount
    from tests.adapters.teams.conftest import Harness as TeamsHarness
    from tests.adapters.teams.conftest import _run, make_settings

    assistant = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=SlowGenerator(),
        audit=MemoryAudit(),
    )
    settings = make_settings(tmp_path)
    shared = build_app(
        assistant=assistant,
        settings=settings,
        mounts=[partial(mount, assistant=assistant, settings=settings)],
    )
    assert shared[ENDPOINT_KEY].bot._runtime is shared[RUNTIME]  # one cap for Slack and Teams

    runtime = Runtime(max_in_flight=1)

    async def scenario(h: TeamsHarness) -> None:
        h.app[ENDPOINT_KEY].bot.use_runtime(runtime)
        for i in range(3):
            status, _ = await h.post(h.activity(f"How many vacation days do I get? ({i})"))
            assert status == 202
        await h.settle()
        texts = [str(p.body.get("text") or "") for p in h.connector.messages()]
        busy = [t for t in texts if t.startswith("I'm busy")]
        assert sorted(busy) == sorted([busy_line(0), busy_line(1)])
        assert len(texts) - len(busy) == 3  # every question answered once

    asyncio.run(_run(scenario, assistant, settings))
    runtime.shutdown()
