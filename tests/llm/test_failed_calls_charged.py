"""Failed provider calls are charged to the budgets as providers bill them (reviewer R2,
finding 2): the old router settled every failure at 0 tokens and $0, so a model that cut
its stream (or hit our deadline, or timed out) streamed answers forever without ever
reaching a budget. Real SDKs against the loopback stubs, the real usage ledger."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from bot.errors import BudgetExceeded
from bot.llm.prompts import build_prompt
from bot.llm.router import Router
from bot.store.usage import UsageStore
from tests.llm.conftest import RouterFactory, env_for, make_request
from tests.llm.stubs import StubLLM

LONG = " ".join(["word"] * 200)  # cut after ~100 tokens, below max_tokens (300)


def spent(usage: UsageStore) -> tuple[int, float]:
    return usage.spent(day=datetime.now(UTC).date(), user="alice@example.com")


def estimate(router: Router) -> int:
    prompt = build_prompt(
        make_request(),
        history_tokens=router.config.history_tokens,
        source_tokens=router.config.source_tokens,
    )
    return math.ceil(prompt.input_tokens * router.config.estimate_margin)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_cut_stream_is_charged_input_plus_what_was_streamed(make_router: RouterFactory, kind: str) -> None:
    stub = StubLLM(kind, default="cut", text=LONG)
    try:
        env = env_for(anthropic=stub) if kind == "anthropic" else env_for(openai=stub)
        router, usage = make_router(env)
        shown: list[str] = []
        gen = router.generate(make_request(), on_delta=shown.append)
        assert gen.generator == "extractive" and shown, "the model streamed, then cut"
        tokens, cost = spent(usage)
        failed = [a for a in usage.attempts() if a["provider"] == kind]
        assert failed and all(a["outcome"] in ("stream-cut", "connection") for a in failed)
        for row in failed:  # input estimate plus what was seen, not the reservation
            assert row["input_tokens"] == estimate(router)
            assert 0 < row["output_tokens"] < router.config.max_tokens
        assert tokens == sum(a["input_tokens"] + a["output_tokens"] for a in failed)
        assert cost > 0
    finally:
        stub.close()


def test_repeated_cut_streams_reach_the_budget(make_router: RouterFactory) -> None:
    """R2's repro: 20 questions, every stream cut, a 3,000-token daily budget."""
    stub = StubLLM("anthropic", default="cut", text=LONG)
    try:
        router, usage = make_router(
            env_for(anthropic=stub), budgets={"user_daily_tokens": 3000}, llm={"breaker_failures": 1000}
        )
        refused = 0
        for i in range(20):
            try:
                router.generate(
                    make_request(f"How many vacation days do I get? {i}"), on_delta=lambda d: None
                )
            except BudgetExceeded:
                refused += 1
        assert refused >= 1 and stub.count < 20
        assert spent(usage)[0] <= 3000
    finally:
        stub.close()


def test_a_non_streaming_timeout_keeps_its_reservation(make_router: RouterFactory) -> None:
    stub = StubLLM("openai", default="slow", slow_seconds=1.0)
    try:
        router, usage = make_router(env_for(openai=stub), llm={"timeout_seconds": 0.3})
        router.generate(make_request())
        assert [a["outcome"] for a in usage.attempts()][:1] == ["timeout"]
        assert spent(usage)[0] == estimate(router) + router.config.max_tokens
    finally:
        stub.close()


def test_our_deadline_mid_stream_is_charged(make_router: RouterFactory) -> None:
    stub = StubLLM("anthropic", text=LONG)
    try:
        router, usage = make_router(env_for(anthropic=stub))
        late = [False]
        router._mono = lambda: 1e9 if late[0] else 0.0  # the clock jumps after 3 deltas
        shown: list[str] = []

        def on_delta(d: str) -> None:
            shown.append(d)
            late[0] = len(shown) >= 3

        router.generate(make_request(), on_delta=on_delta)
        outcomes = [a["outcome"] for a in usage.attempts()]
        assert outcomes[0] == "deadline" and len(shown) >= 3
        assert spent(usage)[0] > estimate(router)
    finally:
        stub.close()


def test_a_refusal_before_any_output_is_not_charged(make_router: RouterFactory) -> None:
    stub = StubLLM("openai", default="401")
    try:
        router, usage = make_router(env_for(openai=stub))
        router.generate(make_request(), on_delta=lambda d: None)
        assert [a["outcome"] for a in usage.attempts()][:1] == ["auth"]
        assert spent(usage) == (0, 0.0)
    finally:
        stub.close()
