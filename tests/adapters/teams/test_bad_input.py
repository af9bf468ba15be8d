"""Malformed or unexpected requests get 4xx (or are ignored), never a 500 or a stray reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.adapters.teams.conftest import EMULATOR_ENV, Harness


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: "{not json", 400),
        (lambda b: b"\xff\xfe", 400),
        (lambda b: [1, 2], 400),
        (lambda b: {**b, "type": None}, 400),
        (lambda b: {k: v for k, v in b.items() if k != "serviceUrl"}, 400),
        (lambda b: {**b, "serviceUrl": "javascript:alert(1)"}, 400),
        (lambda b: {k: v for k, v in b.items() if k != "conversation"}, 400),
        (lambda b: {**b, "conversation": {"id": ""}}, 400),
        (lambda b: {**b, "conversation": "x"}, 400),
        (lambda b: {k: v for k, v in b.items() if k != "from"}, 400),
        (lambda b: {**b, "entities": "x"}, 400),
        (lambda b: {**b, "channelId": None}, 400),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "not-an-object",
        "no-type",
        "no-service-url",
        "bad-service-url",
        "no-conversation",
        "empty-conversation-id",
        "conversation-not-object",
        "no-from",
        "entities-not-list",
        "no-channel-id",
    ],
)
def test_malformed_activities_are_400(teams: Callable[..., None], mutate: Any, status: int) -> None:
    async def scenario(h: Harness) -> None:
        got, text = await h.post(mutate(h.activity("hi")))
        assert got == status
        assert "Traceback" not in text
        await h.settle()
        assert h.connector.posted == []

    teams(scenario)


def test_wrong_content_type_is_415(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        resp = await h.client.post(
            "/api/messages", data="type=message", headers={"Content-Type": "text/plain"}
        )
        assert resp.status == 415
        assert (await h.client.get("/api/messages")).status == 405

    teams(scenario)


@pytest.mark.parametrize("kind", ["messageReaction", "installationUpdate", "event", "typing", "somethingNew"])
def test_unknown_activity_types_are_ignored(teams: Callable[..., None], kind: str) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("hi")
        body["type"] = kind
        status, _ = await h.post(body)
        assert status == 202
        await h.settle()
        assert h.connector.posted == []

    teams(scenario)


def test_unknown_invoke_is_acknowledged_without_a_reply(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("")
        body.update(type="invoke", name="composeExtension/query", value={"x": 1})
        status, text = await h.post(body)
        assert (status, text) == (200, "")
        odd = h.activity("")
        odd.update(type="invoke", name="message/submitAction", value="nonsense", replyToId="nope")
        assert (await h.post(odd))[0] == 200
        assert h.connector.posted == []

    teams(scenario)


def test_anonymous_mode_only_talks_to_this_machine(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        body = h.activity("hi", channelId="emulator")
        body["serviceUrl"] = "https://smba.trafficmanager.net/amer/"
        assert (await h.post(body))[0] == 401
        local = h.activity("hi", channelId="emulator")
        proxied = await h.post(local, headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied[0] == 401
        await h.settle()
        assert h.connector.posted == []

    teams(scenario, env=EMULATOR_ENV)


def test_empty_mention_gets_help_not_an_error(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity("", kind="channel"))
        assert "deptbot" in posted[-1].body["text"] and "kb refresh" in posted[-1].body["text"]

    teams(scenario)
