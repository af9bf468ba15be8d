"""Several replicas (``DEPTBOT_DATABASE_URL``): Slack delivers a membership event to ONE
replica, yet no replica may post a channel answer against the member list it cached before
the event (reviewer R2, finding 4). Two real servers share one PostgreSQL database and one
stub Web API; the event reaches replica A only, and replica B must see it through the shared
membership mark (``bot.store.member_marks``) before it answers in the channel again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.member_marks import MembershipWatch, watch_for
from bot.adapters.slack.members import ChannelMembers, Home
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.stub import BOT_USER_ID, SlackStub, StubChannel
from bot.core.pipeline import Assistant
from bot.store.backend import Database
from bot.store.dedup import DedupStore
from bot.store.pg_dedup import PgDedupStore
from tests.adapters.slack.conftest import USERS, SlackHarness, mention
from tests.adapters.slack.test_slack_members import (  # noqa: F401  (its generator fixture)
    DEPLOYS,
    answered,
    assert_never_in_channel,
    channel,
    ephemeral_for,
    generator,
)
from tests.pg_fixtures import checked_url

HOME = Home(team_id="T1", bot_user_id=BOT_USER_ID)


def test_an_event_seen_by_one_replica_reaches_every_replica_before_its_next_channel_answer(
    assistant: Assistant, tmp_path: Path, pg_url: str
) -> None:
    env = {"DEPTBOT_DATABASE_URL": pg_url}
    a = SlackHarness(assistant, tmp_path / "a", env=env)
    b = SlackHarness(assistant, tmp_path / "b", env=env)
    b.stub = a.stub  # one workspace, two replicas behind its load balancer

    async def main() -> None:
        async with a:
            await b.start_server()
            b.session = aiohttp.ClientSession()
            try:
                a.stub.channels["C0ENG"] = channel("UBOB")  # bob may ask Engineering
                n = 0

                async def ask(h: SlackHarness) -> None:
                    nonlocal n
                    n += 1
                    await h.event(
                        mention(DEPLOYS, user="UBOB", channel="C0ENG", ts=f"17000009{n:02d}.000100")
                    )
                    await answered(a, n)

                await ask(a)
                await ask(b)  # both replicas now hold C0ENG = {bob}
                assert len(a.stub.to("chat.postMessage")) == 2
                a.stub.channels["C0ENG"].members.append("UALICE")  # alice is not in Engineering
                await a.event(
                    {"type": "member_joined_channel", "user": "UALICE", "channel": "C0ENG", "team": "T1"}
                )
                await ask(b)  # B never saw the event
                assert len(a.stub.to("chat.postMessage")) == 2, (
                    "B answered in the channel from its stale list"
                )
                assert len(ephemeral_for(a, "UBOB")) == 1
                await ask(a)
                assert len(a.stub.to("chat.postMessage")) == 2 and len(ephemeral_for(a, "UBOB")) == 2
                await ask(b)  # the mark is read once per answer; B's fresh list is cached again
                assert len(a.stub.to("chat.postMessage")) == 2 and len(ephemeral_for(a, "UBOB")) == 3
                assert_never_in_channel(a, "Only visible")
            finally:
                await b.session.close()
                await b.stop_server()

    asyncio.run(main())


def test_an_unreadable_mark_keeps_the_cached_list_out_of_channel_answers(pg_url: str) -> None:
    """Fail closed: when the shared mark cannot be read, no cached list is trusted."""

    async def main() -> None:
        stub = await SlackStub(
            users=USERS, channels={"CHR": StubChannel(members=["UALICE", BOT_USER_ID])}
        ).start()
        client = AsyncWebClient(token="xoxb-test", base_url=stub.api_url)
        db = Database(checked_url(pg_url))
        try:
            watch = watch_for(PgDedupStore(db))
            assert isinstance(watch, MembershipWatch)
            members = ChannelMembers(people=SlackPeople(), watch=watch)
            first = await members.readers("CHR", client, HOME)
            assert first.emails == frozenset({"alice@example.com"}) and not first.unknown
            with db.connection() as conn:
                conn.execute("drop table member_marks")
            again = await members.readers("CHR", client, HOME)
            assert again.unknown == "unavailable" and not again.emails
            # a share click asks fresh (no cache), so it never needed the mark
            fresh = await members.readers("CHR", client, HOME, fresh=True)
            assert fresh.emails == frozenset({"alice@example.com"})
        finally:
            db.close()
            await stub.stop()

    asyncio.run(main())


def test_one_sqlite_process_keeps_its_cache_without_marks(tmp_path: Path) -> None:
    """SQLite means one process, which gets every event itself: no mark, no extra read."""
    state = DedupStore.in_state_dir(tmp_path)
    try:
        assert watch_for(state) is None
    finally:
        state.close()


@pytest.mark.parametrize("bumps", [0, 1])
def test_a_replica_counts_only_newer_marks_as_moved(pg_url: str, bumps: int) -> None:
    from bot.store.member_marks import PgMemberMarks

    async def main() -> None:
        db = Database(checked_url(pg_url))
        try:
            marks = PgMemberMarks(db)
            here, there = MembershipWatch(marks), MembershipWatch(marks)
            assert await here.moved("slack:C1") is True  # never looked: do not trust a cache
            assert await here.moved("slack:C1") is False
            for _ in range(bumps):
                await there.announce(["slack:C1", "slack:C1"])
            assert await here.moved("slack:C1") is bool(bumps)
            assert marks.version("slack:C1") == bumps
        finally:
            db.close()

    asyncio.run(main())
