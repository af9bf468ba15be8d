"""The private endpoint never goes through a proxy from the environment (reviewer R2,
finding 3), and ``deptbot check`` names the proxy each cloud provider will use.

A recording stub plays a machine-wide egress proxy (``HTTP_PROXY`` / ``ALL_PROXY``): the
old private client (httpx ``trust_env`` default) sent the confidential prompt through it.
Real ``openai`` SDK, real factory, loopback stubs only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.types import Classification
from bot.llm.factory import build_generator, provider_status
from tests.llm.conftest import env_for, make_request, make_settings
from tests.llm.stubs import StubLLM

IBAN_Q = "Payroll for IBAN DE89370400440532013000?"


@pytest.fixture
def proxy() -> Iterator[StubLLM]:
    stub = StubLLM("openai", text="PROXY-ANSWERED [1].")  # answers what it relays, and records it
    yield stub
    stub.close()


@pytest.fixture
def no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def proxy_address(stub: StubLLM) -> str:
    host, port = stub.server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_the_private_endpoint_ignores_environment_proxies(
    tmp_path: Path,
    no_env_proxies: pytest.MonkeyPatch,
    proxy: StubLLM,
    private_stub: StubLLM,
    variable: str,
) -> None:
    no_env_proxies.setenv(variable, proxy_address(proxy))  # httpx reads the process environment
    (tmp_path / "departments").mkdir()
    router = build_generator(make_settings(tmp_path, env_for(private=private_stub)), usage_store=None)
    gen = router.generate(make_request(IBAN_Q, classification=Classification.CONFIDENTIAL))
    assert gen.generator == "private" and gen.route == "private"
    assert proxy.count == 0, "a confidential prompt went through the environment's proxy"
    assert private_stub.count == 1 and "DE89370400440532013000" in str(private_stub.requests[0].body)


def test_cloud_providers_still_follow_the_environment_proxy(
    tmp_path: Path, no_env_proxies: pytest.MonkeyPatch, proxy: StubLLM, openai_stub: StubLLM
) -> None:
    """Deliberate: a corporate egress proxy is how many companies reach the cloud."""
    no_env_proxies.setenv("HTTP_PROXY", proxy_address(proxy))
    (tmp_path / "departments").mkdir()
    router = build_generator(make_settings(tmp_path, env_for(openai=openai_stub)), usage_store=None)
    assert router.generate(make_request()).route == "cloud"
    assert proxy.count == 1 and proxy.requests[0].path.startswith("http://127.0.0.1:")


def test_check_names_the_proxy_of_each_endpoint(tmp_path: Path, private_stub: StubLLM) -> None:
    (tmp_path / "departments").mkdir()
    env = env_for(private=private_stub) | {
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "OPENAI_API_KEY": "sk-test",
        "HTTPS_PROXY": "http://user:hunter2@egress.corp.example:3128",
        "NO_PROXY": ".openai.com",
    }
    status = {name: detail for name, _, detail in provider_status(make_settings(tmp_path, env))}
    assert "via proxy egress.corp.example:3128" in status["anthropic"]
    assert "proxy" not in status["openai"]  # NO_PROXY covers api.openai.com
    assert "direct, ignoring HTTPS_PROXY" in status["private"]
    assert not any("hunter2" in d or "user:" in d for d in status.values())
    quiet = {n: d for n, _, d in provider_status(make_settings(tmp_path, env_for(private=private_stub)))}
    assert "proxy" not in quiet["private"] and "ignoring" not in quiet["private"]
