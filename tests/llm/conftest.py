"""Stub LLM servers on 127.0.0.1 and a router built through the real factory.

Every test talks to the real ``anthropic``/``openai`` SDKs pointed at the stubs by base
URL; retries and timeouts are set tiny so failures are fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.core.types import Classification, GenerationRequest, SourceChunk
from bot.llm.factory import build_generator
from bot.llm.router import Router
from bot.settings import Settings
from bot.store.usage import UsageStore
from tests.llm.stubs import StubLLM

TEST_LLM: dict[str, object] = {
    "max_retries": 0,
    "timeout_seconds": 1.5,
    "deadline_seconds": 8,
    "breaker_failures": 3,
    "breaker_cooldown_seconds": 60,
    "max_tokens": 300,
}
NO_BUDGETS: dict[str, object] = {
    "user_daily_tokens": 0,
    "user_daily_cost": 0,
    "department_daily_tokens": 0,
    "department_daily_cost": 0,
}


def _toml(tables: dict[str, dict[str, object]]) -> str:
    out = []
    for name, values in tables.items():
        out.append(f"[{name}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


@pytest.fixture
def anthropic_stub() -> Iterator[StubLLM]:
    stub = StubLLM("anthropic")
    yield stub
    stub.close()


@pytest.fixture
def openai_stub() -> Iterator[StubLLM]:
    stub = StubLLM("openai")
    yield stub
    stub.close()


@pytest.fixture
def private_stub() -> Iterator[StubLLM]:
    stub = StubLLM("openai", text="Investigations are handled within 14 days [1].")
    yield stub
    stub.close()


def down_url() -> str:
    """An address on loopback where nothing listens."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def make_settings(
    tmp_path: Path,
    env: dict[str, str],
    *,
    llm: dict[str, object] | None = None,
    budgets: dict[str, object] | None = None,
) -> Settings:
    path = tmp_path / "settings.toml"
    path.write_text(_toml({"llm": {**TEST_LLM, **(llm or {})}, "budgets": {**NO_BUDGETS, **(budgets or {})}}))
    return Settings.load(
        departments=tmp_path / "departments", state=tmp_path / "state", settings_file=path, env=env
    )


def env_for(
    anthropic: StubLLM | None = None, openai: StubLLM | None = None, private: StubLLM | str | None = None
) -> dict[str, str]:
    env: dict[str, str] = {}
    if anthropic is not None:
        env |= {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": anthropic.url}
    if openai is not None:
        env |= {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai.url}
    if private is not None:
        url = private if isinstance(private, str) else private.url
        env |= {"DEPTBOT_PRIVATE_LLM_URL": url, "DEPTBOT_PRIVATE_LLM_KEY": "private-key"}
    return env


RouterFactory = Callable[..., tuple[Router, UsageStore]]


@pytest.fixture
def make_router(tmp_path: Path) -> RouterFactory:
    def build(
        env: dict[str, str], *, llm: dict[str, object] | None = None, budgets: dict[str, object] | None = None
    ) -> tuple[Router, UsageStore]:
        settings = make_settings(tmp_path, env, llm=llm, budgets=budgets)
        usage = UsageStore(path=settings.state_dir / "usage.db")
        router = build_generator(settings, usage_store=usage)
        assert isinstance(router, Router)
        return router, usage

    return build


def chunk(
    n: int, text: str, *, label: Classification = Classification.INTERNAL, doc: str = ""
) -> SourceChunk:
    return SourceChunk(
        chunk_id=f"hr/doc{n}.md#0",
        doc_id=doc or f"hr/doc{n}.md",
        department="hr",
        title=f"Document {n}",
        path=f"knowledge/hr/doc{n}.md",
        text=text,
        score=0.8,
        classification=label,
    )


VACATION = chunk(1, "Full-time employees receive 25 days of paid vacation per year. CANARY-HR-5b1e.")
SICK = chunk(2, "Employees may take up to 10 paid sick days per year without a doctor's note.")


def make_request(
    question: str = "How many vacation days do I get?",
    *,
    sources: tuple[SourceChunk, ...] = (VACATION, SICK),
    classification: Classification = Classification.INTERNAL,
    route: str = "auto",
    user: str = "alice@example.com",
    **kw: object,
) -> GenerationRequest:
    return GenerationRequest(
        question=question,
        department="hr",
        department_title="Human Resources",
        sources=sources,
        classification=classification,
        route=route,
        user=user,
        **kw,  # type: ignore[arg-type]
    )
