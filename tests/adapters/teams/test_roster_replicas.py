"""Several replicas (``DEPTBOT_DATABASE_URL``): Teams sends a ``conversationUpdate`` to ONE
replica, yet no replica may post a channel answer from the roster it cached before it
(reviewer R2, finding 4). Two real Teams endpoints share one PostgreSQL database and one
fake Bot Connector; the membership event reaches replica A only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.teams.bot import ENDPOINT_KEY, mount
from bot.adapters.teams.roster import Rosters, RosterSettings
from bot.adapters.teams.roster_marks import SharedRosters, rosters_for
from bot.core.pipeline import Assistant
from bot.store.conversations import ConversationStore
from tests.adapters.teams.conftest import (
    GROUP_CHAT,
    PEOPLE,
    ROSTER,
    TEAM,
    TEAM_CHANNEL,
    FakeConnector,
    Harness,
    make_settings,
    member,
    secure,
)
from tests.adapters.teams.test_channel_readers import conversation_update, in_chat, texts


def test_a_roster_change_seen_by_one_replica_reaches_the_other_before_its_next_channel_answer(
    assistant: Assistant, tmp_path: Path, pg_url: str
) -> None:
    settings, auth, issuer = secure(make_settings(tmp_path, {"DEPTBOT_DATABASE_URL": pg_url}))

    async def main() -> None:
        connector = FakeConnector(
            members={f"29:{n}": member(n) for n in PEOPLE},
            rosters={TEAM: [member(n) for n in ROSTER], GROUP_CHAT: [member(n) for n in ROSTER]},
        )
        connector_server = TestServer(connector.app(), host="127.0.0.1")
        await connector_server.start_server()
        connector.url = str(connector_server.make_url("/")).rstrip("/") + "/"
        replicas: list[Harness] = []
        try:
            for _ in range(2):
                app = web.Application()
                mount(app, assistant=assistant, settings=settings, auth=auth)
                client = TestClient(TestServer(app, host="127.0.0.1"))
                await client.start_server()
                replicas.append(Harness(client=client, connector=connector, app=app, issuer=issuer))
            a, b = replicas
            question = "How many vacation days do I get?"
            for h in (a, b):  # both replicas cache the team's roster
                posted = await h.ask(h.activity(question, kind="channel"))
                assert "attachments" in in_chat(posted, TEAM_CHANNEL)[0].body
            connector.rosters[TEAM].append(member("mallory"))  # may not ask HR
            event = conversation_update(
                a,
                conversation={"conversationType": "channel", "id": TEAM},
                data={"team": {"id": TEAM}, "eventType": "teamMemberAdded"},
                membersAdded=[{"id": "29:mallory", "aadObjectId": "aad-mallory"}],
            )
            assert await a.ask(event) == []  # replica A only
            rosters = a.app[ENDPOINT_KEY].bot._rosters
            assert isinstance(rosters, SharedRosters)
            await rosters.settled()  # the shared mark is written
            after = await b.ask(b.activity(question, kind="channel"))
            (note,) = texts(after, TEAM_CHANNEL)
            assert "not everyone here may ask Human Resources" in note, "B answered from its stale roster"
        finally:
            for h in replicas:
                await h.client.close()
            await connector_server.close()

    asyncio.run(main())


def test_plain_rosters_without_a_shared_database(tmp_path: Path) -> None:
    """One process (SQLite or memory): it sees every event itself; no marks, no extra read."""
    store = ConversationStore.in_state_dir(tmp_path)
    try:
        rosters = rosters_for(RosterSettings(), store.state)
        assert type(rosters) is Rosters
        assert type(rosters_for(RosterSettings(), None)) is Rosters
    finally:
        store.close()
