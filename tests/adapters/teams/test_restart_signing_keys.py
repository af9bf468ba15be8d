"""Fetching the Bot Framework signing keys never stalls the event loop.

botframework-connector 4.17 fetches the OpenID metadata and the JWKS with blocking
``requests.get`` from inside ``authenticate_request``. Here the key endpoints (a stub on
127.0.0.1) take 0.6 s each, as a slow or distant login endpoint may; meanwhile a ticker on
the bot's event loop must keep ticking, and the request must still be authenticated.
Patch-free apart from botframework-connector's own metadata URL override.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import ChannelValidation
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.adapters.teams.auth import TeamsSettings
from tests.adapters.teams.conftest import Harness, TokenIssuer
from tests.adapters.teams.test_auth import ENV, _StaticFactory, bearer

DELAY = 0.6


@pytest.fixture
def slow_keys() -> Iterator[tuple[TokenIssuer, list[float]]]:
    """A metadata + JWKS stub whose every answer takes ``DELAY`` seconds; records request times."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="slow-key-1", use="sig", endorsements=["msteams"])
    served: list[float] = []
    base: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(DELAY)
            served.append(time.monotonic())
            if self.path.endswith("/openidconfiguration"):
                body: dict[str, Any] = {
                    "issuer": "https://api.botframework.com",
                    "jwks_uri": base["url"] + "/keys",
                }
            else:
                body = {"keys": [jwk]}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield (
        TokenIssuer(
            key=key, kid="slow-key-1", metadata_url=base["url"] + "/v1/.well-known/openidconfiguration"
        ),
        served,
    )
    server.shutdown()


def test_slow_signing_key_fetch_does_not_block_the_event_loop(
    teams: Callable[..., None], slow_keys: tuple[TokenIssuer, list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer, served = slow_keys
    monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", issuer.metadata_url)
    config = TeamsSettings.from_env(ENV).bot_framework_config()
    auth = ConfigurationBotFrameworkAuthentication(
        config, credentials_factory=_StaticFactory(ENV["MicrosoftAppId"], "x", ENV["MicrosoftAppTenantId"])
    )

    async def scenario(h: Harness) -> None:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticks = asyncio.create_task(ticker())
        token = issuer.token(serviceurl=h.service_url)
        posted = await h.ask(h.activity("How many vacation days do I get?"), headers=bearer(token))
        stop.set()
        await ticks
        assert "25 days" in posted[-1].body["text"]
        assert len(served) >= 2  # metadata and keys were really fetched, slowly
        assert max(gaps) < DELAY / 2, f"the event loop stalled for {max(gaps):.2f} s"

    teams(scenario, env=ENV, auth=auth)
