"""An erase reaches every Teams row of the person, however old: the adapter links their
Teams user id to their e-mail (as a hash) when it learns who is asking, so a conversation
reference kept for months is found after the history rows that used to lead to it expired.

Through the real Teams endpoint (fake Bot Connector on loopback) and a real audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.teams.bot import mount
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults, subject_id
from bot.store.teams_state import TeamsState
from tests.adapters.teams.conftest import PEOPLE, FakeConnector, Harness, member, secure
from tests.governance.test_privacy_erase import _world

ALICE = PEOPLE["alice"]


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _rows(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    store = TeamsState(path=state_dir / TeamsState.FILE)
    try:
        return store.read(sql, ())
    finally:
        store.close()


def test_erase_finds_a_teams_reference_after_its_history_expired(tmp_path: Path) -> None:
    settings, assistant, _, _ = _world(tmp_path, {})
    state = settings.state_dir

    async def main() -> None:
        connector = FakeConnector(members={f"29:{n}": member(n) for n in PEOPLE})
        server = TestServer(connector.app(), host="127.0.0.1")
        await server.start_server()
        connector.url = str(server.make_url("/")).rstrip("/") + "/"
        secured, auth, issuer = secure(settings)  # authenticated, as in production
        app = web.Application()
        mount(app, assistant=assistant, settings=secured, auth=auth)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            h = Harness(client=client, connector=connector, app=app, issuer=issuer)
            posted = await h.ask(h.activity("How many vacation days carry over?", user="alice"))
            assert posted, "alice got an answer"
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())
    assert _rows(state, "SELECT key FROM teams_references")  # alice's 1:1 reference
    assert ALICE.encode() not in (state / TeamsState.FILE).read_bytes()  # the link is a hash
    # History is kept 14 days, references 180: two weeks on, only the reference is left.
    store = TeamsState(path=state / TeamsState.FILE)
    assert store.purge_older_than("history", datetime.now(UTC) + timedelta(days=15)) >= 2
    store.close()

    privacy = Privacy.for_settings(settings)
    receipt = privacy.erase(ALICE)
    privacy.close()
    assert receipt.removed["teams_references"] == 1
    linked = subject_id(ALICE)
    assert linked not in str(_rows(state, "SELECT person FROM teams_people"))
    assert _rows(state, "SELECT key FROM teams_references") == []
    assert _rows(state, "SELECT user_id FROM teams_people") == []
    assert ALICE.encode() not in (state / TeamsState.FILE).read_bytes()
