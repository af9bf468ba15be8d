"""Private (1:1) delivery: what must not be posted where it was asked goes to the asker alone.

In a channel or group chat, two things are the asker's business only: an answer that is not
safe for everyone there (``Answer.channel_safe`` is false) and a denial (Slack would show it
ephemerally; Teams has no ephemeral messages). Both go to the asker's personal chat with the
bot, and the shared chat gets one neutral line that says so, or that the bot could not reach
them.

Reaching someone 1:1 is proactive messaging: ``continue_conversation`` on a stored
conversation reference. The reference is remembered whenever someone talks to the bot 1:1
(or installs it personally); failing that, the personal chat is created through the current
turn's connector client, which botbuilder built for a serviceUrl that was already
authenticated. This lives apart from ``turns`` because it is the only code that sends
outside the conversation the turn came from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from botbuilder.core import CloudAdapterBase, TurnContext
from botbuilder.schema import Activity, ChannelAccount, ConversationParameters, ConversationReference

from bot.adapters import render as wording
from bot.adapters.runtime import Runtime
from bot.adapters.teams import inbound, render
from bot.adapters.teams.auth import TeamsSettings
from bot.adapters.teams.outbound import say, to_activity
from bot.core.types import Answer
from bot.store.conversations import ConversationStore

log = logging.getLogger(__name__)


class PrivateChats:
    """Sends to an asker's personal chat and keeps the conversation references that make it possible."""

    def __init__(
        self,
        *,
        teams: TeamsSettings,
        adapter: CloudAdapterBase,
        store: ConversationStore,
        runtime: Runtime | None = None,
    ) -> None:
        self._teams = teams
        self._adapter = adapter
        self._store = store
        self._runtime = runtime or Runtime()

    def use_runtime(self, runtime: Runtime) -> None:
        """Share the server's runtime: store calls run on its quick threads (see ``turns``)."""
        self._runtime = runtime

    async def answer(self, ctx: TurnContext, body: Mapping[str, Any], answer: Answer, question: str) -> None:
        """An answer not safe for everyone there goes 1:1; the chat gets a note saying why in one
        line (or that it could not be sent), and the 1:1 copy says the same."""
        reason = wording.private_reason(answer)
        sent = await self.send(ctx, body, _answer_activities(answer, question, reason), answer.request_id)
        name = str((body.get("from") or {}).get("name") or "")
        note = render.private_note(name, reason) if sent else render.private_failed_note(name, reason)
        await say(ctx, note)

    async def deny(
        self, ctx: TurnContext, body: Mapping[str, Any], texts: list[str], request_id: str
    ) -> None:
        """A denial in a channel or group chat goes 1:1; the chat gets one neutral line."""
        activities = [to_activity(render.text_activity(t)) for t in texts]
        sent = await self.send(ctx, body, activities, request_id)
        name = str((body.get("from") or {}).get("name") or "")
        await say(ctx, render.replied_privately_note(name) if sent else render.unreachable_note(name))

    async def send(
        self, ctx: TurnContext, body: Mapping[str, Any], activities: list[Activity], request_id: str
    ) -> bool:
        """1:1 with the asker through the stored reference (created on first use)."""
        try:
            reference = await self._runtime.quick(self._store.references.get, _key(body))
            if reference is None:
                reference = await self._create(ctx, body)
            sent: list[str] = []
            chat: list[str] = []  # the 1:1 conversation the messages went to

            async def post(turn: TurnContext) -> None:
                ref = TurnContext.get_conversation_reference(turn.activity)
                ref.activity_id = None  # a new message in the chat, not a reply to the continuation event
                chat.append(str(ref.conversation.id if ref.conversation else ""))
                for activity in activities:
                    TurnContext.apply_conversation_reference(activity, ref)
                    responses = await turn.adapter.send_activities(turn, [activity])
                    sent.extend(r.id for r in responses if r is not None and r.id)

            await self._adapter.continue_conversation(
                ConversationReference().deserialize(reference), post, bot_app_id=self._teams.app_id
            )
            key = inbound.reply_key(chat[0] if chat else None, sent[-1] if sent else None)
            if key and request_id:
                await self._runtime.quick(self._store.replies.remember, key, request_id)
            return True
        except Exception:
            log.warning(
                "could not message %s privately (request %s)",
                inbound.user_key(body),
                request_id,
                exc_info=True,
            )
            return False

    async def remember(self, body: Mapping[str, Any]) -> None:
        """Keep the reference of a personal chat the asker is in now, for later 1:1 messages."""
        reference = {k: body.get(k) for k in ("from", "recipient", "conversation", "channelId", "serviceUrl")}
        reference["user"], reference["bot"] = reference.pop("from"), reference.pop("recipient")
        await self._runtime.quick(self._store.references.put, _key(body), reference)

    async def _create(self, ctx: TurnContext, body: Mapping[str, Any]) -> dict[str, Any]:
        """Open (or find) the 1:1 chat with the asker through the current, validated connector."""
        connector = ctx.turn_state.get(self._adapter.BOT_CONNECTOR_CLIENT_KEY)
        tenant = inbound.tenant_id(body)
        sender, bot = body.get("from") or {}, body.get("recipient") or {}
        params = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=bot.get("id"), name=bot.get("name")),
            members=[ChannelAccount(id=sender.get("id"), name=sender.get("name"))],
            tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}} if tenant else None,
        )
        created = await connector.conversations.create_conversation(params)
        reference = {
            "user": {
                "id": sender.get("id"),
                "name": sender.get("name"),
                "aadObjectId": sender.get("aadObjectId"),
            },
            "bot": {"id": bot.get("id"), "name": bot.get("name")},
            "conversation": {"id": created.id, "conversationType": inbound.PERSONAL, "tenantId": tenant},
            "channelId": body.get("channelId"),
            "serviceUrl": body.get("serviceUrl"),
        }
        await self._runtime.quick(self._store.references.put, _key(body), reference)
        return reference


def _answer_activities(answer: Answer, question: str, reason: str) -> list[Activity]:
    """The 1:1 copy of an answer: which question it is for and why it is here, then the answer."""
    return [
        to_activity(render.text_activity(render.private_preface(question, reason))),
        to_activity(render.render_answer(answer, kind=inbound.PERSONAL)),
    ]


def _key(body: Mapping[str, Any]) -> tuple[str, str, str]:
    return ("teams", inbound.tenant_id(body) or "", inbound.user_key(body))
