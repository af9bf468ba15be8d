"""The runtime that runs the core for the adapters, and the probes of the server."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.http import RUNTIME, build_app
from bot.adapters.runtime import Runtime, busy_line
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.errors import ConfigError
from bot.settings import Settings
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, RecordingGenerator


def run(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """An async test body run on a fresh event loop (fixtures pass through)."""

    @functools.wraps(test)
    def sync(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return sync


@run
async def test_questions_beyond_the_cap_wait_in_arrival_order_and_are_told_how_many_are_ahead() -> None:
    runtime = Runtime(max_in_flight=2)
    release = asyncio.Event()
    told: dict[int, int] = {}
    finished: list[int] = []

    async def question(i: int) -> None:
        async def queued(ahead: int) -> None:
            told[i] = ahead

        async with runtime.admit(on_queued=queued):
            await release.wait()
            finished.append(i)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(question(i)))
        await asyncio.sleep(0)  # arrive one after another
    await asyncio.sleep(0.01)
    assert (runtime.in_flight, runtime.queued) == (2, 3)
    assert told == {2: 0, 3: 1, 4: 2}  # the first two were admitted without a word
    release.set()
    await asyncio.gather(*tasks)
    assert finished == [0, 1, 2, 3, 4]
    assert (runtime.in_flight, runtime.queued) == (0, 0)
    runtime.shutdown()


@run
async def test_a_question_given_up_while_queued_frees_nothing_it_did_not_hold() -> None:
    runtime = Runtime(max_in_flight=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with runtime.admit():
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    third = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    assert (runtime.in_flight, runtime.queued) == (1, 1)
    release.set()
    await asyncio.gather(first, third)
    assert (runtime.in_flight, runtime.queued) == (0, 0)
    runtime.shutdown()


@run
async def test_a_failing_busy_message_does_not_lose_the_question() -> None:
    runtime = Runtime(max_in_flight=1)
    release = asyncio.Event()

    async def broken(ahead: int) -> None:
        raise RuntimeError("chat.postEphemeral failed")

    async def hold() -> str:
        async with runtime.admit(on_queued=broken):
            await release.wait()
            return "answered"

    tasks = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*tasks) == ["answered", "answered"]
    runtime.shutdown()


@run
async def test_quick_calls_do_not_wait_behind_busy_answer_threads() -> None:
    runtime = Runtime(answer_threads=1, quick_threads=1)
    blocked = threading.Event()
    slow = asyncio.create_task(runtime.answer(blocked.wait, 5))
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(runtime.quick(lambda: "status"), 2) == "status"
    assert await asyncio.wait_for(runtime.background(lambda: "refreshed"), 2) == "refreshed"
    blocked.set()
    assert await slow is True
    runtime.shutdown()


def test_busy_line_words() -> None:
    assert busy_line(0) == "I'm busy — your question is queued (you're next)."
    assert busy_line(3) == "I'm busy — your question is queued (3 ahead)."


def test_runtime_settings_are_checked() -> None:
    runtime = Runtime.from_section({"answer_threads": 8, "max_in_flight": 16})
    assert (runtime.answer_threads, runtime.quick_threads, runtime.max_in_flight) == (8, 4, 16)
    runtime.shutdown()
    with pytest.raises(ConfigError) as err:
        Runtime.from_section({"answer_threads": 0})
    assert err.value.field == "runtime.answer_threads"
    env = {"DEPTBOT_RUNTIME__MAX_IN_FLIGHT": "12"}
    assert Settings.load(env=env).values.runtime.max_in_flight == 12


# ── probes ──────────────────────────────────────────────────────────────────────────


class _NoIndex(FakeRetriever):
    def index_version(self, department: str) -> str | None:
        return None if department == "finance" else self.version


def _assistant(company: Company, retriever: FakeRetriever) -> Assistant:
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=RecordingGenerator(None),  # type: ignore[arg-type]
        audit=MemoryAudit(),
    )


async def _get(assistant: Assistant, state: Path, *paths: str) -> list[tuple[int, dict[str, object]]]:
    state.mkdir(parents=True, exist_ok=True)
    settings = Settings(departments_dir=Path("."), state_dir=state, env={})
    app = build_app(assistant=assistant, settings=settings)
    out = []
    async with TestClient(TestServer(app)) as client:
        assert app[RUNTIME].max_in_flight == 256  # the packaged [runtime] defaults
        for path in paths:
            resp = await client.get(path)
            out.append((resp.status, await resp.json()))
    return out


@run
async def test_probes_when_ready(company: Company, retriever: FakeRetriever, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    import sqlite3

    sqlite3.connect(tmp_path / "state" / "audit.db").close()
    got = await _get(_assistant(company, retriever), tmp_path / "state", "/livez", "/healthz", "/readyz")
    assert got == [(200, {"status": "ok"}), (200, {"status": "ok"}), (200, {"status": "ready"})]


@run
async def test_readyz_says_not_ready_without_naming_departments(company: Company, tmp_path: Path) -> None:
    assistant = _assistant(company, _NoIndex([]))
    [(status, body)] = await _get(assistant, tmp_path / "state", "/readyz")
    assert (status, body) == (503, {"status": "not ready", "failing": ["indexes"]})
    assert "finance" not in str(body)


@run
async def test_readyz_fails_when_the_state_folder_takes_no_writes(
    company: Company, retriever: FakeRetriever, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.write_text("a file where the folder should be")
    assistant = _assistant(company, retriever)
    settings = Settings(departments_dir=Path("."), state_dir=state, env={})
    async with TestClient(TestServer(build_app(assistant=assistant, settings=settings))) as client:
        resp = await client.get("/readyz")
        assert (resp.status, await resp.json()) == (503, {"status": "not ready", "failing": ["databases"]})
