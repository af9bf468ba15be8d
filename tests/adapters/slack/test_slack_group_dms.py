"""Group DMs (mpim) work like private channels (issue 14): the manifest asks for what they
need, follow-ups arrive, threads are read, and every member must be allowed.

The harness delivers an event only when the manifest subscribes to it, and the stub Web API
answers ``missing_scope`` for a conversation type the manifest has no scope for — as Slack
does — so these tests fail whenever the manifest and the code disagree.
"""

from __future__ import annotations

import asyncio

import pytest
import yaml

from bot.adapters.slack import translate
from bot.adapters.slack.manifest import manifest_path, render_manifest
from bot.adapters.slack.stub import BOT_USER_ID, StubChannel
from tests.adapters.slack.conftest import SlackHarness, mention
from tests.adapters.slack.test_slack_server import run, text_of
from tests.fakes import RecordingGenerator

VACATION = "How many vacation days do I get?"
GROUP = "G0HRGROUP"  # alice and hank: both may ask HR and read its vacation policy
MIXED = "G0MIXED"  # alice and bob: bob is in engineering
ROOT = "1699990000.000100"


def group(*members: str) -> StubChannel:
    return StubChannel(members=[*members, BOT_USER_ID], is_mpim=True)


def follow_up(text: str, *, channel: str = GROUP, ts: str, thread: str = ROOT, user: str = "UALICE") -> dict:
    """A plain reply in a group DM thread, as ``message.mpim`` delivers it (docs example shape)."""
    return {
        "type": "message",
        "channel_type": "mpim",
        "channel": channel,
        "user": user,
        "ts": ts,
        "thread_ts": thread,
        "text": text,
        "event_ts": ts,
    }


@pytest.mark.parametrize("socket_mode", [False, True])
def test_both_manifests_ask_for_group_dm_history_and_events(socket_mode: bool) -> None:
    for text in (
        manifest_path(socket_mode=socket_mode).read_text(),
        render_manifest("https://h.example", socket_mode=socket_mode),
    ):
        data = yaml.safe_load(text)
        scopes = data["oauth_config"]["scopes"]["bot"]
        events = data["settings"]["event_subscriptions"]["bot_events"]
        assert {"mpim:history", "mpim:read"} <= set(scopes)
        assert "message.mpim" in events
        assert "im:read" not in scopes  # a DM's members are never fetched
        assert "mpim:history" in text.split("display_information:")[0]  # the comment says why


def test_a_group_dm_is_never_taken_for_a_direct_message() -> None:
    base = {"type": "message", "user": "U1", "ts": "2.0", "text": "hi", "channel_type": "mpim"}
    for channel in ("G024BE91L", "C0GROUP", "D0ODD"):  # the channel type decides, not the id
        inc = translate.incoming({**base, "channel": channel}, bot_user_id="UBOT")
        assert inc is not None and not inc.is_dm and inc.in_channel, channel
    im = translate.incoming({**base, "channel": "D0ALICE", "channel_type": "im"}, bot_user_id="UBOT")
    assert im is not None and im.is_dm
    # app_mention carries no channel_type: a D… id is a DM, anything else a conversation
    mention_in_group = translate.incoming(mention("hi", channel=GROUP), bot_user_id="UBOT")
    assert mention_in_group is not None and mention_in_group.in_channel


def test_a_follow_up_in_a_group_dm_thread_is_answered_with_its_history(
    harness: SlackHarness, generator: RecordingGenerator
) -> None:
    async def scenario(h: SlackHarness) -> None:
        h.stub.channels[GROUP] = group("UALICE", "UHANK")
        await h.event(mention(VACATION, channel=GROUP, ts=ROOT))
        (first,) = await h.stub.wait_for("chat.postMessage")
        assert first["channel"] == GROUP and first["thread_ts"] == ROOT and "25 days" in text_of(first)
        h.stub.add_thread_message(GROUP, ROOT, {"ts": ROOT, "user": "UALICE", "text": f"<@UBOT> {VACATION}"})
        await h.event(follow_up("And do unused days carry over?", ts="1700000100.000100"))
        posts = await h.stub.wait_for("chat.postMessage", 2)
        assert posts[1]["channel"] == GROUP and posts[1]["thread_ts"] == ROOT
        assert not h.stub.to("chat.postEphemeral")
        (replies,) = h.stub.to("conversations.replies")
        assert replies["channel"] == GROUP and replies["ts"] == ROOT
        history = generator.requests[-1].history  # type: ignore[attr-defined]
        assert any(VACATION in t.text for t in history if t.role == "user")
        assert any(t.role == "assistant" for t in history)

    run(harness, scenario)


def test_a_mention_inside_a_group_dm_thread_reads_the_thread(
    harness: SlackHarness, generator: RecordingGenerator
) -> None:
    async def scenario(h: SlackHarness) -> None:
        h.stub.channels[GROUP] = group("UALICE", "UHANK")
        h.stub.add_thread_message(
            GROUP, ROOT, {"ts": ROOT, "user": "UHANK", "text": "Planning the summer rota"}
        )
        await h.event({**mention(VACATION, channel=GROUP, ts="1700000200.000100"), "thread_ts": ROOT})
        (post,) = await h.stub.wait_for("chat.postMessage")
        assert post["thread_ts"] == ROOT and "25 days" in text_of(post)
        history = generator.requests[-1].history  # type: ignore[attr-defined]
        assert [t.text for t in history] == ["Planning the summer rota"]

    run(harness, scenario)


def test_in_a_group_dm_every_member_must_be_allowed(harness: SlackHarness) -> None:
    """alice may not ask Engineering, so bob's Engineering answer in their group DM goes to
    bob alone; his follow-up in that thread (never answered in the open) is not picked up."""

    async def scenario(h: SlackHarness) -> None:
        h.stub.channels[MIXED] = group("UALICE", "UBOB")
        await h.event(mention("How do production deploys work?", user="UBOB", channel=MIXED, ts=ROOT))
        (eph,) = await h.stub.wait_for("chat.postEphemeral")
        assert eph["user"] == "UBOB" and "Only visible to you" in text_of(eph)
        assert not h.stub.to("chat.postMessage")
        await h.event(follow_up("and rollbacks?", channel=MIXED, ts="1700000300.000100", user="UBOB"))
        await asyncio.sleep(0.5)
        assert len(h.stub.to("chat.postEphemeral")) == 1 and not h.stub.to("chat.postMessage")

    run(harness, scenario)
