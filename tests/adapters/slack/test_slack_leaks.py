"""Security review regressions through the real Slack server and the loopback Web API stub."""

from __future__ import annotations

import json
from typing import Any

from bot.adapters.slack import blocks as bk
from tests.adapters.slack.conftest import SlackHarness, mention
from tests.adapters.slack.test_slack_server import run

DONT_KNOW_NEAR_PAYROLL = "payroll cafeteria menu tuesday lunch parking"


def _text(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)


def test_dont_know_naming_restricted_titles_stays_with_the_asker(harness: SlackHarness) -> None:
    """carol may see payroll, the channel may not: even the titles in "I don't know" stay private."""

    async def scenario(h: SlackHarness) -> None:
        await h.event(mention(DONT_KNOW_NEAR_PAYROLL, user="UCAROL", channel="C0FIN"))
        (eph,) = await h.stub.wait_for("chat.postEphemeral")
        assert eph["user"] == "UCAROL" and "salary-bands" in _text(eph)
        await h.stub.wait_for("reactions.remove")
        assert not any("salary-bands" in _text(p) for p in h.stub.to("chat.postMessage"))
        await h.command(
            "/ask", "finance " + DONT_KNOW_NEAR_PAYROLL, user="UCAROL", channel="C0FIN", name="ask"
        )
        (reply,) = await h.stub.wait_for("response_url", where=lambda a: a["_name"] == "ask")
        actions = [b for b in reply["blocks"] if b["type"] == "actions"]
        assert all(e["action_id"] != bk.ACTION_SHARE for a in actions for e in a["elements"])

    run(harness, scenario)


def test_empty_mention_help_names_only_departments_the_person_may_ask(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("", user="UALICE", ts="1700000020.000100"))  # alice: hr, finance; not eng
        (post,) = await h.stub.wait_for("chat.postMessage")
        line = next(s for s in _text(post).split("\\n") if "You can ask:" in s)
        assert "hr" in line and "finance" in line and "eng" not in line

    run(harness, scenario)
