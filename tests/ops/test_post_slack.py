"""Operations messages on Slack through slack_sdk against the loopback Web API stub: the
admin channel, or each admin by DM (users.lookupByEmail → conversations.open →
chat.postMessage), every payload checked against Slack's published limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.slack import limits
from bot.adapters.slack.stub import SlackStub
from bot.config import Company
from bot.ops.post import Delivery, SlackChannel, slack_payload
from bot.store.notices import MemoryNotices
from tests.fakes import make_company
from tests.ops.helpers import company_with

TOKEN = "xoxb-ops-test"
USERS = {"UHANK": "hank@example.com", "UALICE": "alice@example.com"}


class DirectoryStub(SlackStub):
    """The shared stub plus the two Web API methods DMs need, in Slack's wire format
    (docs.slack.dev: users.lookupByEmail → {"ok", "user": {...}} or "users_not_found";
    conversations.open → {"ok", "channel": {"id": "D…"}})."""

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "users.lookupByEmail":
            email = str(args.get("email", "")).lower()
            for uid, known in self.users.items():
                if known and known.lower() == email:
                    user = {"id": uid, "team_id": self.team_id, "profile": {"email": known}}
                    return {"ok": True, "user": user}
            return {"ok": False, "error": "users_not_found"}
        if method == "conversations.open":
            users = str(args.get("users", ""))
            if not users or any(u not in self.users for u in users.split(",")):
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "channel": {"id": "D" + users.replace(",", "")[1:]}}
        return super()._answer(method, args)

    def _needed_scope(self, method: str, args: dict[str, Any]) -> str | None:
        """The bot scopes the DM path needs, per Slack's reference: users.lookupByEmail
        needs ``users:read.email``; conversations.open with a bot token ``im:write`` (the
        1:1 case; docs.slack.dev/reference/scopes/im.write); chat.postMessage ``chat:write``."""
        needed = {
            "users.lookupByEmail": "users:read.email",
            "conversations.open": "im:write",
            "chat.postMessage": "chat:write",
        }.get(method)
        return needed or super()._needed_scope(method, args)


def _start(server: DirectoryStub) -> Iterator[DirectoryStub]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        assert server.violations == [], "Slack would refuse these payloads"


@pytest.fixture
def stub() -> Iterator[DirectoryStub]:
    yield from _start(DirectoryStub(users=USERS))


def _delivery(stub: SlackStub, notices: MemoryNotices, admins: list[str]) -> Delivery:
    channel = SlackChannel.from_env({"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": stub.api_url})
    assert channel is not None
    return Delivery(slack=channel, teams=None, notices=notices, admins_of=lambda d: admins)


@pytest.fixture
def company(tmp_path: Path) -> Company:
    make_company(tmp_path)
    return company_with(tmp_path, {"hr": "alerts:\n  slack: C0HRADMIN\n"})


TEXT = "⚠️ Human Resources: today's AI spend is $41.00 <of> its $50.00 & more.\nWhat to do: check."


def test_posts_to_the_admin_channel(stub: DirectoryStub, company: Company) -> None:
    notices = MemoryNotices()
    delivery = _delivery(stub, notices, ["hank@example.com"])
    assert delivery.deliver(company.department("hr"), TEXT, kind="budget-cost")
    [post] = stub.to("chat.postMessage")
    assert post["channel"] == "C0HRADMIN"
    assert post["text"].startswith("⚠️ Human Resources") and "&lt;of&gt;" in post["text"]  # escaped
    assert post["blocks"][0]["text"]["type"] == "mrkdwn" and "What to do" in post["blocks"][0]["text"]["text"]
    assert stub.to("users.lookupByEmail") == [] and notices.items == []
    assert stub.calls[0].path == "/api/chat.postMessage"


def test_dms_each_admin_when_no_channel_is_set(stub: DirectoryStub, tmp_path: Path) -> None:
    company = make_company(tmp_path)  # finance has no alerts: block
    notices = MemoryNotices()
    admins = ["hank@example.com", "nobody@example.com"]
    assert _delivery(stub, notices, admins).deliver(company.department("finance"), TEXT, kind="digest")
    assert [a["email"] for a in stub.to("users.lookupByEmail")] == admins
    assert [a["users"] for a in stub.to("conversations.open")] == ["UHANK"]
    [post] = stub.to("chat.postMessage")
    assert post["channel"] == "DHANK"


def test_without_im_write_the_dm_goes_to_the_user_id(stub: DirectoryStub, tmp_path: Path) -> None:
    company = make_company(tmp_path)
    stub.errors["conversations.open"] = "missing_scope"
    assert _delivery(stub, MemoryNotices(), ["hank@example.com"]).deliver(
        company.department("finance"), TEXT, kind="digest"
    )
    assert stub.to("chat.postMessage")[0]["channel"] == "UHANK"


@pytest.mark.parametrize("socket_mode", [False, True], ids=["http", "socket-mode"])
def test_the_manifests_grant_what_a_dm_to_an_admin_needs(socket_mode: bool, tmp_path: Path) -> None:
    """With exactly the manifest's bot scopes, the DM path works as designed: the admin is
    found by e-mail and a real DM is opened (not the user-id fallback), nothing refused."""
    import yaml

    from bot.adapters.slack.manifest import render_manifest

    manifest = yaml.safe_load(render_manifest("https://h.example", socket_mode=socket_mode))
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    for server in _start(DirectoryStub(users=USERS, scopes=scopes)):
        company = make_company(tmp_path)
        notices = MemoryNotices()
        assert _delivery(server, notices, ["hank@example.com"]).deliver(
            company.department("finance"), TEXT, kind="digest"
        )
        assert [c.method for c in server.calls] == [
            "users.lookupByEmail",
            "conversations.open",
            "chat.postMessage",
        ]
        assert server.to("chat.postMessage")[0]["channel"] == "DHANK" and notices.items == []


def test_when_nothing_reaches_anyone_admins_get_a_notice(stub: DirectoryStub, company: Company) -> None:
    stub.errors["chat.postMessage"] = "channel_not_found"  # the bot is not in the admin channel
    notices = MemoryNotices()
    assert not _delivery(stub, notices, []).deliver(company.department("hr"), TEXT, kind="budget-cost")
    [notice] = notices.items
    assert notice.department == "hr" and notice.kind == "ops-budget-cost"
    assert "could not be posted" in notice.text


def test_long_messages_stay_within_slacks_limits() -> None:
    text = "\n".join(f"line {i} " + "x" * 200 for i in range(400))  # ~82,000 characters
    payload = slack_payload("C0HRADMIN", text)
    assert limits.problems("chat.postMessage", payload) == []
    assert all(len(b["text"]["text"]) <= limits.TEXT for b in payload["blocks"])
    assert len(payload["blocks"]) <= limits.MESSAGE_BLOCKS
    one_line = slack_payload("C1", "y" * 7000)
    assert [len(b["text"]["text"]) for b in one_line["blocks"]] == [3000, 3000, 1000]
