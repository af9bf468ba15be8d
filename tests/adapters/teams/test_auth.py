"""With an app id: real Bot Framework token validation, keys served from a loopback stub.

``ChannelValidation.open_id_metadata_endpoint`` is botframework-connector's own override
for the OpenID metadata URL, so the production code path (public cloud, issuer
``https://api.botframework.com``, audience = our app id, ``serviceurl`` claim = the
activity's serviceUrl) runs unchanged; only where the signing keys come from differs.
Outbound calls use a static test token instead of MSAL (which needs login.microsoftonline.com).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import (
    AppCredentials,
    ChannelValidation,
    PasswordServiceClientCredentialFactory,
)
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.adapters.teams.auth import TeamsSettings
from tests.adapters.teams.conftest import APP_ID, TENANT, Harness, TokenIssuer

ENV = {
    "MicrosoftAppId": APP_ID,
    "MicrosoftAppPassword": "not-a-real-secret",
    "MicrosoftAppType": "SingleTenant",
    "MicrosoftAppTenantId": TENANT,
}


class _StaticToken(AppCredentials):
    def get_access_token(self, force_refresh: bool = False) -> str:
        return "outbound-test-token"


class _StaticFactory(PasswordServiceClientCredentialFactory):
    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> Any:
        assert app_id == APP_ID
        return _StaticToken(app_id=app_id)


@pytest.fixture
def secured(teams: Callable[..., None], openid_stub: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", openid_stub.metadata_url)
    config = TeamsSettings.from_env(ENV).bot_framework_config()
    auth = ConfigurationBotFrameworkAuthentication(
        config, credentials_factory=_StaticFactory(APP_ID, "not-a-real-secret", TENANT)
    )

    def run(scenario: Callable[[Harness], Any], env: dict[str, str] | None = None) -> None:
        teams(scenario, env={**ENV, **(env or {})}, auth=auth)

    return run


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_is_answered_with_an_authenticated_reply(secured: Any, openid_stub: TokenIssuer) -> None:
    async def scenario(h: Harness) -> None:
        token = openid_stub.token(serviceurl=h.service_url)
        posted = await h.ask(h.activity("How many vacation days do I get?"), headers=bearer(token))
        assert "25 days" in posted[-1].body["text"]
        assert {p.auth for p in posted} == {"Bearer outbound-test-token"}

    secured(scenario)


def test_request_without_token_is_401(secured: Any) -> None:
    async def scenario(h: Harness) -> None:
        status, _ = await h.post(h.activity("How many vacation days do I get?"))
        assert status == 401
        assert h.connector.posted == []

    secured(scenario)


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "00000000-0000-0000-0000-000000000000"},  # someone else's bot
        {"iss": "https://evil.example"},  # not the Bot Framework
        {"exp": 1_000_000_000},  # long expired
    ],
    ids=["wrong-audience", "wrong-issuer", "expired"],
)
def test_wrong_claims_are_401(secured: Any, openid_stub: TokenIssuer, claims: dict[str, Any]) -> None:
    async def scenario(h: Harness) -> None:
        token = openid_stub.token(serviceurl=h.service_url, **claims)
        status, _ = await h.post(h.activity("How many vacation days do I get?"), headers=bearer(token))
        assert status == 401
        assert h.connector.posted == []

    secured(scenario)


def test_token_signed_by_another_key_is_401(secured: Any, openid_stub: TokenIssuer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def scenario(h: Harness) -> None:
        for kid in (openid_stub.kid, "unknown-kid"):
            token = openid_stub.token(serviceurl=h.service_url, key=other, kid=kid)
            status, _ = await h.post(h.activity("hi"), headers=bearer(token))
            assert status == 401
        for junk in ("not-a-jwt", "a.b.c", ""):
            status, _ = await h.post(h.activity("hi"), headers={"Authorization": f"Bearer {junk}"})
            assert status == 401
        assert h.connector.posted == []

    secured(scenario)


def test_service_url_must_match_the_token_claim(secured: Any, openid_stub: TokenIssuer) -> None:
    async def scenario(h: Harness) -> None:
        token = openid_stub.token(serviceurl="https://smba.trafficmanager.net/amer/")
        status, _ = await h.post(h.activity("How many vacation days do I get?"), headers=bearer(token))
        assert status == 401
        assert h.connector.posted == []

    secured(scenario)


def test_tenant_not_on_the_allow_list_is_refused(secured: Any, openid_stub: TokenIssuer) -> None:
    async def scenario(h: Harness) -> None:
        token = openid_stub.token(serviceurl=h.service_url)
        body = h.activity("How many vacation days do I get?")
        body["conversation"]["tenantId"] = "11111111-2222-3333-4444-555555555555"
        body["channelData"]["tenant"]["id"] = "11111111-2222-3333-4444-555555555555"
        status, _ = await h.post(body, headers=bearer(token))
        assert status == 403
        assert h.connector.posted == []

    secured(scenario)


def test_feedback_invoke_needs_a_token_too(secured: Any) -> None:
    async def scenario(h: Harness) -> None:
        invoke = h.activity("")
        invoke.update(type="invoke", name="message/submitAction", value={"actionName": "feedback"})
        status, _ = await h.post(invoke)
        assert status == 401

    secured(scenario)
