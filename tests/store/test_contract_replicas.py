"""Two Slack servers ("replicas", each with its own state folder, as on two machines)
behind one load balancer: Slack delivers an event to one and redelivers it to the other.
With ``DEPTBOT_DATABASE_URL`` they share the claims and the event gets exactly one reply;
with only their own SQLite files, each replica answers it once (the reason for the setting).

Both servers run in this process on 127.0.0.1 against one stub Slack Web API; the
PostgreSQL is the session's pgserver (unix socket).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.adapters.http import build_app
from bot.core.pipeline import Assistant
from bot.settings import Settings
from bot.store.backend import ENV_VAR
from tests.adapters.slack.conftest import SECRET, TOKEN, SlackHarness, mention


class Replica(SlackHarness):
    """A harness whose server reads ``DEPTBOT_DATABASE_URL`` (when given) like ``serve``."""

    def __init__(self, assistant: Assistant, state_dir: Path, database_url: str = "") -> None:
        super().__init__(assistant, state_dir)
        self.database_url = database_url

    async def start_server(self) -> None:
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": self.stub.api_url}
        if self.database_url:
            env[ENV_VAR] = self.database_url
        settings = Settings(departments_dir=Path("."), state_dir=self.state_dir, env=env)
        self._runner = web.AppRunner(build_app(assistant=self.assistant, settings=settings), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


def _replies(assistant: Assistant, tmp_path: Path, database_url: str) -> int:
    """Deliver one event to replica A, then redeliver it 3 times alternating B, A, B."""
    a = Replica(assistant, tmp_path / "machine-a", database_url)
    b = Replica(assistant, tmp_path / "machine-b", database_url)
    b.stub = a.stub  # one Slack

    async def main() -> int:
        async with a:
            await b.start_server()
            b.session = aiohttp.ClientSession()
            try:
                event = mention("How many vacation days do I get?")
                deliveries = [(a, None), (b, 1), (a, 2), (b, 3)]
                results = await asyncio.gather(
                    *(h.event(event, event_id="EvSAME", retry=r) for h, r in deliveries)
                )
                assert [status for status, _ in results] == [200, 200, 200, 200]
                await a.stub.wait_for("chat.postMessage")
                await asyncio.sleep(0.5)  # time for a second (wrong) reply to arrive
                return len(a.stub.to("chat.postMessage"))
            finally:
                await b.session.close()
                await b.stop_server()

    return asyncio.run(main())


def test_an_event_delivered_to_two_replicas_on_postgres_gets_one_reply(
    assistant: Assistant, tmp_path: Path, pg_url: str
) -> None:
    assert _replies(assistant, tmp_path, pg_url) == 1


def test_without_the_shared_database_each_replica_answers(assistant: Assistant, tmp_path: Path) -> None:
    """The control: separate SQLite state folders cannot know the other replica claimed it."""
    assert _replies(assistant, tmp_path, "") == 2
