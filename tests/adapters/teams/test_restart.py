"""Teams state survives a restart: a new endpoint on the same state folder carries on.

Through the real endpoint (authenticated as in production) and one fake Bot Connector that lives
across both servers, as Teams does. Before the restart: a confidential answer 1:1, a card
answer in a channel, and a 1:1 chat with carol. After it (a new ``mount`` on the same
``state_dir``): the follow-up's history still carries the earlier answer *with its label*,
👍/👎 on the earlier replies reach the audit log with the right request ids (and the card is
re-rendered from the stored answer), and carol's restricted answer still reaches her
personal chat through the stored reference although opening a new chat now fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.teams.bot import mount
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Classification
from bot.settings import Settings
from tests.adapters.teams.conftest import (
    GROUP_CHAT,
    PEOPLE,
    ROSTER,
    TEAM,
    FakeConnector,
    Harness,
    make_settings,
    member,
    secure,
)
from tests.fakes import CONFIDENTIAL_DOC, FakeRetriever, MemoryAudit, RecordingGenerator, add_document


async def _serving(
    assistant: Assistant,
    settings: Settings,
    connector: FakeConnector,
    scenario: Callable[[Harness], Awaitable[None]],
) -> None:
    """One server process's lifetime: mount, run, shut down (drain + cleanup hooks)."""
    settings, auth, issuer = secure(settings)
    app = web.Application()
    mount(app, assistant=assistant, settings=settings, auth=auth)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        await scenario(Harness(client=client, connector=connector, app=app, issuer=issuer))
    finally:
        await client.close()


def _run(assistant: Assistant, tmp_path: Path, *phases: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        roster = [member(n) for n in ROSTER]
        connector = FakeConnector(
            members={f"29:{n}": member(n) for n in PEOPLE},
            rosters={TEAM: list(roster), GROUP_CHAT: list(roster)},
        )
        server = TestServer(connector.app(), host="127.0.0.1")
        await server.start_server()
        connector.url = str(server.make_url("/")).rstrip("/") + "/"
        settings = make_settings(tmp_path)
        try:
            for phase in phases:  # each phase is a fresh TeamsEndpoint on the same state folder
                await _serving(assistant, settings, connector, phase)
            assert connector.invalid == [], "Teams would refuse these activities"
        finally:
            await server.close()

    asyncio.run(main())


def _feedback_invoke(h: Harness, reply_to: str) -> dict[str, Any]:
    invoke = h.activity("")
    invoke.update(
        type="invoke",
        name="message/submitAction",
        text=None,
        replyToId=reply_to,
        value={"actionName": "feedback", "actionValue": {"reaction": "like", "feedback": "{}"}},
    )
    return invoke


def test_history_feedback_and_private_chat_survive_a_restart(
    assistant: Assistant,
    company: Company,
    retriever: FakeRetriever,
    generator: RecordingGenerator,
    audit: MemoryAudit,
    tmp_path: Path,
) -> None:
    add_document(company, retriever, "hr/relocation.md", CONFIDENTIAL_DOC)
    before: dict[str, Any] = {}

    async def first_life(h: Harness) -> None:
        posted = await h.ask(h.activity("What is the relocation allowance?"))
        assert "7,500" in posted[-1].body["text"]
        before["personal"] = (posted[-1].id, audit.entries[-1].request_id)
        posted = await h.ask(h.activity("How many vacation days do I get?", kind="channel"))
        card = posted[-1].body["attachments"][0]["content"]
        before["card"] = (posted[-1].id, audit.entries[-1].request_id, card["actions"][0]["data"])
        await h.ask(h.activity("help", user="carol"))  # carol has chatted 1:1 with the bot

    async def second_life(h: Harness) -> None:
        # a follow-up: the earlier confidential answer comes back as history, label and all
        await h.ask(h.activity("How many vacation days do I get?"))
        request = generator.requests[-1]
        (earlier,) = [t for t in request.history if t.role == "assistant"]  # type: ignore[attr-defined]
        assert "7,500" in earlier.text and earlier.label is Classification.CONFIDENTIAL
        assert request.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]

        # 👍 on the 1:1 answer from before the restart: recorded against its request id
        message_id, request_id = before["personal"]
        status, text = await h.post(_feedback_invoke(h, message_id))
        assert (status, text) == (200, "{}")
        assert audit.feedback[-1] == (request_id, "alice@example.com", "up", "")

        # a vote on the channel card from before the restart: recorded, card re-rendered
        card_id, card_rid, up = before["card"]
        submit = h.activity("", kind="channel", mention=False, value=up, replyToId=card_id)
        submit["text"] = None
        after = await h.ask(submit)
        assert audit.feedback[-1] == (card_rid, "alice@example.com", "up", "")
        assert [p.method for p in after] == ["PUT"]
        content = after[0].body["attachments"][0]["content"]
        assert "actions" not in content and "25 days" in content["body"][0]["text"]

        # carol's restricted answer goes to the personal chat remembered before the restart
        h.connector.fail_create = True
        body = h.activity("ask finance What is the payroll salary band L3?", user="carol", kind="channel")
        posted = await h.ask(body)
        private = [p for p in posted if p.conversation == "a:personal-carol"]
        assert any("95,000" in p.body.get("text", "") for p in private)
        assert h.connector.created == []

    _run(assistant, tmp_path, first_life, second_life)


def test_state_file_is_private(assistant: Assistant, tmp_path: Path) -> None:
    """The state holds answer text: created 0600 under the service's umask (077)."""
    import os

    async def life(h: Harness) -> None:
        await h.ask(h.activity("How many vacation days do I get?"))

    old = os.umask(0o077)
    try:
        _run(assistant, tmp_path, life)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / ".deptbot").iterdir() if p.name.startswith("teams-state")]
    assert files and all(p.stat().st_mode & 0o077 == 0 for p in files)
