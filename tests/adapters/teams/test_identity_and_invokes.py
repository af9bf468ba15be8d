"""Who is asking (member look-up, activities without ``channelData``, the Bot Framework Emulator)
and what the feedback invoke answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.teams.auth import TeamsSettings, check_teams_settings
from bot.errors import ConfigError
from tests.adapters.teams.conftest import APP_ID, GROUP_CHAT, TENANT, Harness, make_settings
from tests.fakes import MemoryAudit

EMULATOR_VAR = "DEPTBOT_TEAMS_EMULATOR_EMAIL"  # who the Emulator user is (Emulator mode only)
EMULATOR_USER = "5e3a9d0e-2c4b-4f7e-9a31-6b2d8c1f0e47"


def emulator_activity(h: Harness, text: str, *, user: str = EMULATOR_USER) -> dict[str, Any]:
    """A message as the Bot Framework Emulator sends it: no Teams channelData, no tenant, no AAD id."""
    return {
        "type": "message",
        "id": "f0a1",
        "channelId": "emulator",
        "serviceUrl": h.service_url,
        "from": {"id": user, "name": "User", "role": "user"},
        "recipient": {"id": "bot-1", "name": "Bot", "role": "bot"},
        "conversation": {"id": "0c2f7d3a|livechat"},
        "text": text,
        "textFormat": "plain",
        "locale": "en-US",
        "channelData": {"clientActivityID": "1718000000000abc"},
    }


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()} ({r.exc_info[0].__name__ if r.exc_info and r.exc_info[0] else ''})"
        for r in caplog.records
        if r.exc_info
    ]


# ── 2. the feedback invoke ──────────────────────────────────────────────────────────────


def test_feedback_invoke_answers_200_with_an_empty_json_object(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    """bot-messages-ai-generated-content.md: "return a status code 200 with an empty JSON object"."""

    async def scenario(h: Harness) -> None:
        answer = (await h.ask(h.activity("How many vacation days do I get?")))[-1]
        invoke = h.activity("")
        invoke.update(
            type="invoke",
            name="message/submitAction",
            text=None,
            replyToId=answer.id,
            value={"actionName": "feedback", "actionValue": {"reaction": "like", "feedback": "{}"}},
        )
        resp = await h.client.post("/api/messages", json=invoke, headers=h.signed(invoke))
        assert resp.status == 200
        assert resp.content_type == "application/json" and await resp.text() == "{}"
        assert [f[2] for f in audit.feedback] == ["up"]
        # feedback that cannot be matched to an answer gets the same reply
        invoke.update(replyToId="unknown", value="nonsense")
        resp = await h.client.post("/api/messages", json=invoke, headers=h.signed(invoke))
        assert (resp.status, await resp.text()) == (200, "{}")

    teams(scenario)


# ── 4. activities without channelData ───────────────────────────────────────────────────


def test_personal_message_without_channel_data_is_answered_without_a_traceback(
    teams: Callable[..., None], caplog: pytest.LogCaptureFixture, audit: MemoryAudit
) -> None:
    """botbuilder's ``TeamsInfo.get_member`` runs ``TeamsChannelData(**activity.channel_data)``,
    a TypeError when ``channelData`` is absent; the member look-up must not go through it."""

    async def scenario(h: Harness) -> None:
        body = h.activity("How many vacation days do I get?")
        del body["channelData"]  # the tenant is still in conversation.tenantId
        with caplog.at_level(logging.DEBUG):
            posted = await h.ask(body)
        assert "25 days" in posted[-1].body["text"]
        assert audit.entries[-1].user == "alice@example.com"
        assert h.connector.lookups == ["29:alice"]

    teams(scenario)
    assert tracebacks(caplog) == []
    assert "TeamsChannelData" not in caplog.text and "Traceback" not in caplog.text


def test_group_chat_without_channel_data_reads_the_roster_without_a_traceback(
    teams: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("How many vacation days do I get?", kind="groupChat")
        del body["channelData"]
        with caplog.at_level(logging.DEBUG):
            posted = await h.ask(body)
        replies = [p.body.get("text", "") for p in posted if p.conversation == GROUP_CHAT]
        assert any("25 days" in t for t in replies), replies  # read the roster, answered in the chat
        assert h.connector.created == []
        assert [c for c, _ in h.connector.roster_calls] == [GROUP_CHAT] * len(h.connector.roster_calls)

    teams(scenario)
    assert tracebacks(caplog) == []


# ── 5. the Bot Framework Emulator ──────────────────────────────────────────────────────


# The Emulator mode's identity rules are in test_emulator_mode.py (reviewer R2, finding 5).


def test_the_emulator_email_is_refused_with_an_app_id(tmp_path: Path) -> None:
    env = {
        "MicrosoftAppId": APP_ID,
        "MicrosoftAppPassword": "secret",
        "MicrosoftAppType": "SingleTenant",
        "MicrosoftAppTenantId": TENANT,
        EMULATOR_VAR: "alice@example.com",
    }
    with pytest.raises(ConfigError) as err:
        check_teams_settings(make_settings(tmp_path, env), "127.0.0.1")
    assert err.value.field == EMULATOR_VAR


@pytest.mark.parametrize("value", ["alice", "alice@", "a b@example.com", "alice@example.com,bob@example.com"])
def test_the_emulator_email_must_be_one_address(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        TeamsSettings.from_env({EMULATOR_VAR: value})
    assert err.value.field == EMULATOR_VAR
