"""End to end: signed requests in, Web API calls out — server and stub both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.adapters.slack import blocks as bk
from tests.adapters.slack.conftest import SlackHarness, dm, mention
from tests.fakes import CANARIES, MemoryAudit

Scenario = Callable[[SlackHarness], Awaitable[None]]


def run(harness: SlackHarness, scenario: Scenario) -> None:
    async def main() -> None:
        async with harness:
            await scenario(harness)

    asyncio.run(main())


def block_types(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in blocks]


def text_of(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)


def test_mention_gets_a_threaded_reply_with_sources_and_feedback(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        started = time.perf_counter()
        status, _ = await h.event(mention("How many vacation days do I get?"))
        assert status == 200
        assert time.perf_counter() - started < 3
        (post,) = await h.stub.wait_for("chat.postMessage")
        assert post["channel"] == "C0HRHELP" and post["thread_ts"] == "1700000001.000100"
        assert post["unfurl_links"] is False and post["unfurl_media"] is False
        blocks = post["blocks"]
        assert "25 days" in text_of(blocks)
        sources = [b for b in blocks if b["type"] == "context" and "*Sources*" in b["elements"][0]["text"]]
        assert (
            sources
            and "[1] Time off policy › Annual vacation · Human Resources · updated Sep 14, 2026"
            in (sources[0]["elements"][0]["text"])
        )
        (actions,) = [b for b in blocks if b["type"] == "actions"]
        ids = [e["action_id"] for e in actions["elements"]]
        assert ids == [bk.ACTION_UP, bk.ACTION_DOWN]
        rid = actions["elements"][0]["value"]
        assert f"request {rid}" in text_of(blocks)
        await h.stub.wait_for("reactions.remove")
        assert h.stub.to("reactions.add")[0]["name"] == "eyes"
        assert h.stub.to("users.info")[0]["user"] == "UALICE"

    run(harness, scenario)


def test_bad_or_stale_signature_is_401_and_calls_nothing(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        body = json.dumps({"type": "event_callback", "event_id": "Ev1", "event": mention("vacation?")})
        assert (await h.post(body, signed=False))[0] == 401
        assert (await h.post(body, headers={"X-Slack-Signature": "v0=deadbeef"}))[0] == 401
        assert (await h.post(body, timestamp=int(time.time()) - 6 * 60))[0] == 401
        assert (await h.post(body, headers={"X-Slack-Request-Timestamp": "soon"}))[0] == 401
        await asyncio.sleep(0.3)
        assert h.stub.calls == []

    run(harness, scenario)


def test_malformed_bodies_are_400_never_500(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        form = "application/x-www-form-urlencoded"
        assert (await h.post("{not json"))[0] == 400
        assert (await h.post("[1, 2]"))[0] == 400
        assert (await h.post("payload=%7Bbroken", content_type=form))[0] == 400
        assert (await h.post("hello=world", content_type=form))[0] == 400
        assert (await h.post(""))[0] == 400
        unknown = {
            "type": "event_callback",
            "event_id": "EvX",
            "event": {"type": "pin_added", "user": "UALICE"},
        }
        assert (await h.post(json.dumps(unknown)))[0] == 200
        await asyncio.sleep(0.2)
        assert not h.stub.to("chat.postMessage")

    run(harness, scenario)


def test_url_verification_and_healthz(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        status, text = await h.post(
            json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
        )
        assert status == 200 and "abc123" in text
        assert h.session is not None
        for path in ("/healthz", "/livez"):
            async with h.session.get(h.url + path) as resp:
                health = await resp.json()
            # liveness reveals nothing (no department names, counts or versions) and does no I/O
            assert resp.status == 200 and health == {"status": "ok"}

    run(harness, scenario)


def test_redelivered_event_gets_exactly_one_reply_even_after_restart(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        event = mention("How many vacation days do I get?")
        results = [await h.event(event, event_id="EvSAME", retry=n) for n in (None, 1, 2)]
        assert [s for s, _ in results] == [200, 200, 200]
        await h.stub.wait_for("chat.postMessage")
        await h.stub.wait_for("reactions.remove")
        await h.stop_server()  # a restart: the persisted event id still counts
        await h.start_server()
        assert (await h.event(event, event_id="EvSAME", retry=3))[0] == 200
        await asyncio.sleep(0.5)
        assert len(h.stub.to("chat.postMessage")) == 1

    run(harness, scenario)


def test_unknown_or_unauthorised_users_get_a_denial(harness: SlackHarness, audit: MemoryAudit) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(dm("How do production deploys work?", user="UNOMAIL"))
        (post,) = await h.stub.wait_for("chat.postMessage")
        assert ":no_entry:" in text_of(post) and "don't know who you are" in text_of(post)
        # In a channel the denial goes to the asker only.
        await h.command("/ask", "eng How do production deploys work?", user="UGRACE", name="deny")
        (reply,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "deny")
        assert (
            "can't ask Engineering" in text_of(reply)
            or "can’t ask" in text_of(reply)
            or "Engineering" in text_of(reply)
        )
        assert reply["response_type"] == "ephemeral"
        assert CANARIES["eng"] not in text_of(reply)
        assert any(e.decision == "denied" for e in audit.entries)

    run(harness, scenario)


def test_restricted_answer_never_reaches_the_channel(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        q = "What is the payroll salary band L3 range?"
        await h.event(mention(q, user="UCAROL", channel="C0FIN"))
        (eph,) = await h.stub.wait_for("chat.postEphemeral")
        assert eph["user"] == "UCAROL" and eph["channel"] == "C0FIN"
        assert CANARIES["payroll"] in text_of(eph) or "95,000" in text_of(eph)
        assert "Only visible to you" in text_of(eph)
        await h.stub.wait_for("reactions.remove")
        for post in h.stub.to("chat.postMessage"):
            assert CANARIES["payroll"] not in text_of(post) and "95,000" not in text_of(post)
        # In a DM the asker's own access applies: the same question is answered normally.
        await h.event(dm(q, user="UCAROL"))
        (post,) = await h.stub.wait_for("chat.postMessage")
        assert "95,000" in text_of(post) and "Only visible" not in text_of(post)

    run(harness, scenario)


def test_slack_control_sequences_in_documents_are_inert(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("When does the office closure on Friday start?"))
        (post,) = await h.stub.wait_for("chat.postMessage")
        raw = text_of(post)
        assert "5pm" in raw
        assert "&lt;!channel&gt;" in raw
        for live in ("<!channel>", "<!here>", "<@U999EVIL>", "<https://evil.example"):
            assert live not in raw

    run(harness, scenario)


def test_feedback_clicks_are_stored_and_thumbs_down_asks_why(
    harness: SlackHarness, audit: MemoryAudit
) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("How many vacation days do I get?"))
        (post,) = await h.stub.wait_for("chat.postMessage")
        rid = next(b for b in post["blocks"] if b["type"] == "actions")["elements"][0]["value"]
        assert (await h.click(bk.ACTION_UP, rid))[0] == 200
        await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "click")
        assert (rid, "alice@example.com", "up", "") in audit.feedback
        assert (await h.click(bk.ACTION_DOWN, rid, user="UHANK"))[0] == 200
        (modal,) = await h.stub.wait_for("views.open")
        assert modal["view"]["private_metadata"] == rid
        submission = {
            "type": "view_submission",
            "user": {"id": "UHANK"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": bk.FEEDBACK_VIEW,
                "private_metadata": rid,
                "state": {"values": {"reason": {"text": {"type": "plain_text_input", "value": "outdated"}}}},
            },
        }
        assert (await h.interaction(submission))[0] == 200
        for _ in range(50):
            if (rid, "hank@example.com", "down", "outdated") in audit.feedback:
                break
            await asyncio.sleep(0.05)
        assert (rid, "hank@example.com", "down", "outdated") in audit.feedback

    run(harness, scenario)


def test_refresh_is_for_department_admins_only(harness: SlackHarness, audit: MemoryAudit) -> None:
    async def scenario(h: SlackHarness) -> None:
        status, ack = await h.command("/kb", "refresh hr", user="UALICE", name="alice")
        assert status == 200 and "Refreshing Human Resources knowledge" in ack
        (denied,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "alice")
        assert ":no_entry:" in text_of(denied)
        await h.command("/kb", "refresh hr", user="UHANK", name="hank")
        (done,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "hank")
        assert (
            "Human Resources knowledge refreshed in 0 s: 0 added, 0 changed, 0 removed, 1 unchanged, 0 failed"
            in (done["text"])
        )
        refreshes = [(e.user, e.decision) for e in audit.entries if e.platform == "admin"]
        assert refreshes == [("alice@example.com", "denied"), ("hank@example.com", "allowed")]

    run(harness, scenario)


def test_slash_ask_is_ephemeral_and_can_be_shared(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        started = time.perf_counter()
        status, body = await h.command("/ask", "hr How many vacation days do I get?", name="ask")
        assert status == 200 and body == "" and time.perf_counter() - started < 3
        (reply,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "ask")
        assert reply["response_type"] == "ephemeral" and "25 days" in text_of(reply)
        share = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"][-1]
        assert share["action_id"] == bk.ACTION_SHARE
        await h.click(bk.ACTION_SHARE, share["value"], name="share")
        (shared,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "share")
        assert shared["response_type"] == "in_channel" and "25 days" in text_of(shared)
        assert "Shared by <@UALICE>" in text_of(shared)

    run(harness, scenario)


def test_help_task_list_and_status_commands(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.command("/ask", "help", name="help")
        await h.command("/task", "no-such-template something", name="task")
        await h.command("/kb", "status", user="UHANK", name="status")
        replies = {a["_name"]: text_of(a) for a in await h.stub.wait_for("response_url", 3)}
        assert "/task TEMPLATE input" in replies["help"]
        assert "no-such-template" in replies["task"] and "offer-letter" in replies["task"]
        assert "Human Resources: 1 documents" in replies["status"]

    run(harness, scenario)


def test_thread_follow_up_uses_history_and_other_threads_are_ignored(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        root = "1700000001.000100"
        await h.event(mention("How many vacation days do I get?", ts=root))
        await h.stub.wait_for("chat.postMessage")
        h.stub.add_thread_message(
            "C0HRHELP", root, {"ts": root, "user": "UALICE", "text": "<@UBOT> vacation?"}
        )
        follow = {"type": "message", "channel_type": "channel", "channel": "C0HRHELP", "user": "UALICE"}
        await h.event({**follow, "ts": "1700000009.000100", "thread_ts": root, "text": "And sick days?"})
        await h.stub.wait_for("chat.postMessage", 2)
        assert h.stub.to("conversations.replies")[0]["ts"] == root
        # Not our thread, an edit, and another bot: all ignored.
        await h.event({**follow, "ts": "1700000010.000100", "thread_ts": "1600000000.000001", "text": "hi"})
        await h.event({**follow, "ts": "1700000011.000100", "subtype": "message_changed", "text": "x"})
        await h.event({**follow, "ts": "1700000012.000100", "bot_id": "B2", "thread_ts": root, "text": "x"})
        await asyncio.sleep(0.5)
        assert len(h.stub.to("chat.postMessage")) == 2

    run(harness, scenario)


def test_a_follow_up_sent_while_the_reply_is_still_being_posted_is_answered(harness: SlackHarness) -> None:
    """The thread is known before the reply is posted: Slack shows a reply before
    chat.postMessage returns, and a follow-up typed then used to be ignored (on a slow
    state store, also one typed just after)."""

    async def scenario(h: SlackHarness) -> None:
        root = "1700000031.000100"
        gate = h.stub.held["chat.postMessage"] = asyncio.Event()  # the post stays in flight
        try:
            await h.event(mention("How many vacation days do I get?", ts=root))
            await h.stub.wait_for("chat.postMessage")
            h.stub.add_thread_message(
                "C0HRHELP", root, {"ts": root, "user": "UALICE", "text": "<@UBOT> vacation?"}
            )
            follow = {"type": "message", "channel_type": "channel", "channel": "C0HRHELP", "user": "UALICE"}
            await h.event({**follow, "ts": "1700000032.000100", "thread_ts": root, "text": "And sick days?"})
            posts = await h.stub.wait_for("chat.postMessage", 2)  # answered while the first is held
            assert posts[1]["thread_ts"] == root
        finally:
            gate.set()

    run(harness, scenario)


def test_only_a_mention_or_a_huge_message_gets_a_polite_reply(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("", ts="1700000020.000100"))
        await h.event(dm("vacation " * 600, ts="1700000021.000100"))
        posts = await h.stub.wait_for("chat.postMessage", 2)
        texts = " ".join(text_of(p) for p in posts)
        assert "Ask me a question" in texts and "please keep it under" in texts

    run(harness, scenario)


def test_app_home_lists_what_this_person_may_do(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event({"type": "app_home_opened", "user": "UHANK", "channel": "D0HANK", "tab": "home"})
        (pub,) = await h.stub.wait_for("views.publish")
        home = text_of(pub["view"])
        assert pub["user_id"] == "UHANK" and "Human Resources" in home and "offer-letter" in home
        assert "Knowledge status" in home and "Engineering" not in home

    run(harness, scenario)


def test_rate_limited_calls_are_retried(assistant: Any, tmp_path: Any) -> None:
    h = SlackHarness(assistant, tmp_path / "state", rate_limit_once={"chat.postMessage"})

    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("How many vacation days do I get?"))
        await h.stub.wait_for("chat.postMessage", timeout=15)
        assert [c.method for c in h.stub.calls].count("chat.postMessage:429") == 1

    run(h, scenario)
