"""The Anthropic and OpenAI providers against wire-format stubs (real SDKs, loopback only)."""

from __future__ import annotations

import re
import time

import pytest

from bot.errors import ProviderError, ProviderUnavailable
from bot.llm.anthropic import AnthropicProvider
from bot.llm.openai import OpenAIProvider
from bot.llm.prompts import build_prompt
from bot.llm.provider import ChatProvider, failure_kind
from tests.llm.conftest import make_request
from tests.llm.stubs import StubLLM


def provider_for(
    stub: StubLLM, *, retries: int = 0, timeout: float = 1.5, private: bool = False
) -> ChatProvider:
    if stub.kind == "anthropic":
        return AnthropicProvider(
            api_key="sk-ant-test", base_url=stub.url, max_retries=retries, timeout=timeout
        )
    if private:
        return OpenAIProvider(
            name="private",
            trust="private",
            api_key="k",
            base_url=stub.url,
            max_retries=retries,
            timeout=timeout,
        )
    return OpenAIProvider(api_key="sk-test", base_url=stub.url, max_retries=retries, timeout=timeout)


PROMPT = build_prompt(make_request())


@pytest.fixture(params=["anthropic", "openai"])
def stub(request: pytest.FixtureRequest) -> StubLLM:
    s = StubLLM(request.param)
    request.addfinalizer(s.close)
    return s


def test_request_carries_model_max_tokens_system_and_only_given_sources(stub: StubLLM) -> None:
    done = provider_for(stub).complete(PROMPT, model="m-small", max_tokens=123, timeout=2)
    assert done.text.startswith("Full-time employees")
    assert (done.input_tokens, done.output_tokens) == (120, 18)
    body = stub.requests[0].body
    assert body["model"] == "m-small"
    if stub.kind == "anthropic":
        assert stub.requests[0].path == "/v1/messages"
        assert body["max_tokens"] == 123
        system = body["system"]
        assert body["messages"] == [{"role": "user", "content": "How many vacation days do I get?"}]
        headers = stub.requests[0].headers
        assert "sk-ant-test" in (
            headers.get("x-api-key", ""),
            headers.get("authorization", "").removeprefix("Bearer "),
        )
    else:
        assert stub.requests[0].path == "/v1/chat/completions"
        assert body["max_completion_tokens"] == 123 and "max_tokens" not in body
        assert body["messages"][0]["role"] == "system"
        system = body["messages"][0]["content"]
        assert stub.requests[0].headers["authorization"] == "Bearer sk-test"
    assert "UNTRUSTED DATA" in system
    assert "CANARY-HR-5b1e" in system and "10 paid sick days" in system
    assert re.findall(r'<source n="(\d+)"', system) == ["1", "2"]


def test_private_endpoint_sends_max_tokens(openai_stub: StubLLM) -> None:
    provider_for(openai_stub, private=True).complete(PROMPT, model="llama", max_tokens=50, timeout=2)
    body = openai_stub.requests[0].body
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert openai_stub.requests[0].headers["authorization"] == "Bearer k"


def test_streaming_sends_deltas_and_records_real_usage(stub: StubLLM) -> None:
    deltas: list[str] = []
    done = provider_for(stub).complete(PROMPT, model="m", max_tokens=100, timeout=2, on_delta=deltas.append)
    assert len(deltas) > 3
    assert "".join(deltas) == done.text == stub.text
    assert (done.input_tokens, done.output_tokens) == (120, 18)
    assert done.usage_reported
    assert stub.requests[0].body["stream"] is True


def test_429_retries_after_the_servers_retry_after(stub: StubLLM) -> None:
    stub.script.extend(["429"])
    stub.retry_after = "0.3"
    started = time.monotonic()
    done = provider_for(stub, retries=1).complete(PROMPT, model="m", max_tokens=100, timeout=2)
    assert done.text and stub.count == 2
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("behaviour", "kind", "unavailable"),
    [
        ("429", "rate-limited", True),
        ("500", "server-error", True),
        ("slow", "timeout", True),
        ("malformed", "malformed", False),
        ("empty", "empty", False),
        ("401", "auth", False),
        ("404", "unknown-model", False),
        ("400-context", "too-long", False),
    ],
)
def test_failures_become_clear_errors_without_sdk_text(
    stub: StubLLM, behaviour: str, kind: str, unavailable: bool
) -> None:
    stub.default = behaviour
    stub.slow_seconds = 1.0
    with pytest.raises(ProviderError) as info:
        provider_for(stub, timeout=0.3).complete(PROMPT, model="m", max_tokens=100, timeout=0.3)
    assert failure_kind(info.value) == kind
    assert isinstance(info.value, ProviderUnavailable) is unavailable
    assert "SECRET-SDK-TEXT" not in info.value.user_message
    assert info.value.user_message.endswith(".")


def test_500_is_retried_by_the_sdk(stub: StubLLM) -> None:
    stub.script.extend(["500"])
    done = provider_for(stub, retries=2).complete(PROMPT, model="m", max_tokens=100, timeout=2)
    assert done.text and stub.count == 2


def test_stream_cut_midway_is_an_error_not_a_partial_answer(stub: StubLLM) -> None:
    stub.default = "cut"
    deltas: list[str] = []
    with pytest.raises(ProviderError) as info:
        provider_for(stub).complete(PROMPT, model="m", max_tokens=100, timeout=2, on_delta=deltas.append)
    assert failure_kind(info.value) in ("stream-cut", "connection", "malformed")
    assert "SECRET-SDK-TEXT" not in info.value.user_message


def test_nothing_listening_is_unavailable() -> None:
    from tests.llm.conftest import down_url

    p = OpenAIProvider(api_key="k", base_url=down_url(), max_retries=0, timeout=1)
    with pytest.raises(ProviderUnavailable):
        p.complete(PROMPT, model="m", max_tokens=10, timeout=1)
