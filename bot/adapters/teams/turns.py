"""One Teams turn: read the activity, call the Assistant, post what ``render`` builds.

The core is synchronous, so every Assistant call runs in a worker thread of the server's
``runtime.Runtime`` (answers on answer threads, within the in-flight cap shared with Slack;
beyond it the person is told the question is queued). People never see exception text: a
``DeptbotError`` shows its ``user_message``; anything else is logged with an id and the
person gets one friendly line carrying that id.

The conversation state (``ConversationStore``: history, reply index, references, person
links) is synchronous too, and on PostgreSQL every call is a network round trip; made on
the event loop, one slow database would stall every conversation this process serves. So
each call goes through ``runtime.quick`` and is awaited where it stood, keeping its order.

This module dispatches by activity type and owns the question → answer path, feedback votes
and the welcome card. Commands (help, status, refresh) are answered by ``commands``; whatever
must reach the asker alone goes through ``private``; ``outbound`` turns ``render``'s dicts
into botbuilder activities.

Members and rosters are read through the turn's connector client (the calls botbuilder's
``TeamsInfo`` makes), not through ``TeamsInfo`` itself: its helpers first parse
``TeamsChannelData(**activity.channel_data)``, a TypeError for an activity without
``channelData`` (the Emulator, some proactive and system activities).

Who is asking (``_email``): the sender's e-mail from the Bot Connector's member record
(``roster.member_email``: the mailbox, else a plain-address UPN), cached by ``identity``.
The Bot Framework Emulator has no directory; in its mode (``DEPTBOT_TEAMS_ANONYMOUS``, no
app id, loopback only) the user is ``DEPTBOT_TEAMS_EMULATOR_EMAIL`` and nothing else: no
request is authenticated there, so nothing it carries (``from.id``, or a member record from
the serviceUrl it names) may say who is asking, or who reads a group chat or channel
(readers are "unavailable": answers go 1:1). Without the variable the person is unknown, and
the core answers "I don't know who you are".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from botbuilder.core import CloudAdapterBase, InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes
from botframework.connector.aio import ConnectorClient

from bot.adapters import render as wording
from bot.adapters.runtime import Runtime, busy_line
from bot.adapters.teams import inbound, render, roster
from bot.adapters.teams.auth import TeamsSettings
from bot.adapters.teams.commands import Commands
from bot.adapters.teams.identity import MemberEmails
from bot.adapters.teams.outbound import say, to_activity
from bot.adapters.teams.private import PrivateChats
from bot.adapters.teams.roster import Rosters
from bot.core.pipeline import Assistant, new_request_id
from bot.core.types import Answer, ChannelReaders, Message, Status
from bot.errors import DeptbotError
from bot.store.conversations import ConversationStore

log = logging.getLogger(__name__)

EMULATOR_USER = "emulator-user"
"""Who sent an activity in the Emulator mode, as far as keys go (history, links, votes): one
fixed id, so an address in ``from.id`` can never be taken for the person (the core reads a
user id with an ``@`` as an e-mail)."""


class TeamsBot:
    """Turn logic; the botbuilder adapter calls ``on_turn`` with the context and the raw JSON."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        teams: TeamsSettings,
        adapter: CloudAdapterBase,
        store: ConversationStore,
        members: MemberEmails,
        rosters: Rosters | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self._assistant = assistant
        self._teams = teams
        self._adapter = adapter
        self._store = store
        self._members = members
        self._rosters = rosters or Rosters()
        self._runtime = runtime or Runtime()
        self._private = PrivateChats(teams=teams, adapter=adapter, store=store, runtime=self._runtime)
        self._commands = Commands(assistant=assistant, private=self._private, runtime=self._runtime)

    def use_runtime(self, runtime: Runtime) -> None:
        """Share the server's runtime (``bot.adapters.http.build_app`` calls it after mounting)."""
        self._runtime = runtime
        self._private.use_runtime(runtime)
        self._commands.use_runtime(runtime)

    async def on_turn(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        if self._teams.anonymous:  # Emulator mode: the sender's ids are whatever the request says
            sender = body.get("from")
            name = str(sender.get("name") or "") if isinstance(sender, Mapping) else ""
            body = {**body, "from": {"id": EMULATOR_USER, "name": name}}
        kind = body.get("type")
        if kind == ActivityTypes.invoke:
            await self._on_invoke(ctx, body)
            return
        try:
            if kind == ActivityTypes.message:
                await self._on_message(ctx, body)
            elif kind == ActivityTypes.conversation_update:
                await self._on_conversation_update(ctx, body)
        except DeptbotError as exc:
            await say(ctx, render.neutralize(exc.user_message))
        except Exception:
            rid = new_request_id()
            log.exception("teams turn failed (request %s)", rid)
            await say(ctx, wording.sorry(rid))

    # ── activities ──────────────────────────────────────────────────────────────────

    async def _on_message(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        if inbound.conversation_kind(body) == inbound.PERSONAL:
            await self._private.remember(body)
        vote = inbound.feedback_from_card(body)
        if vote is not None:
            await self._card_feedback(ctx, body, *vote)
            return
        text = inbound.strip_mentions(body)
        if not text and body.get("value") is not None:
            return  # some other card submit: nothing to answer
        await ctx.send_activity(Activity(type=ActivityTypes.typing))
        email = await self._email(ctx, body)
        # an erase finds their rows by it
        await self._runtime.quick(self._store.link_person, inbound.user_key(body), email)
        company = self._assistant.company
        command = inbound.parse_command(
            text,
            company.departments.keys(),
            {d.name: d.templates.keys() for d in company},
        )
        if await self._commands.handle(ctx, body, command, email):
            return
        history = await self._runtime.quick(self._store.history.get, inbound.history_key(body))
        readers = await self._readers(ctx, body)
        message = inbound.to_message(body, command, email=email, history=history, readers=readers)

        async def queued(ahead: int) -> None:
            await say(ctx, busy_line(ahead))

        async with self._runtime.admit(on_queued=queued):
            answer = await self._runtime.answer(self._assistant.ask, message)
        await self._deliver(ctx, body, message, answer)

    async def _on_conversation_update(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        # membership changes (and anything else Teams adds later): the next answer re-reads the roster
        self._rosters.invalidate(inbound.tenant_id(body), roster.named_conversations(body))
        bot_id = (body.get("recipient") or {}).get("id")
        added = [m.get("id") for m in body.get("membersAdded") or [] if isinstance(m, Mapping)]
        if bot_id and bot_id in added:
            if inbound.conversation_kind(body) == inbound.PERSONAL:
                await self._private.remember(body)
            await ctx.send_activity(
                to_activity(render.card_activity(render.welcome_card(), summary="Hi, I'm deptbot"))
            )

    async def _on_invoke(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        """Teams' 👍/👎 (``message/submitAction``): store it, answer 200 with ``{}``.

        "Return a status code 200 with an empty JSON object" (msteams-docs,
        bot-messages-ai-generated-content.md), whatever the feedback said; other invokes
        get 200 with no body.
        """
        feedback_invoke = body.get("name") == "message/submitAction"
        try:
            if feedback_invoke:
                feedback = inbound.feedback_from_invoke(body)
                rid = await self._runtime.quick(self._store.replies.request_id, _reply_key(body))
                if feedback is not None and rid is not None:
                    email = await self._email(ctx, body)
                    value, reason = feedback
                    await self._runtime.quick(
                        self._assistant.feedback,
                        rid,
                        user=email or inbound.user_key(body),
                        value=value,
                        reason=reason,
                    )
                else:
                    log.info("feedback for unknown message %r ignored", body.get("replyToId"))
        except Exception:
            log.exception("feedback invoke failed")
        response = InvokeResponse(status=200, body={} if feedback_invoke else None)
        await ctx.send_activity(Activity(type=ActivityTypes.invoke_response, value=response))

    # ── answers ─────────────────────────────────────────────────────────────────────

    async def _deliver(
        self, ctx: TurnContext, body: Mapping[str, Any], message: Message, answer: Answer
    ) -> None:
        """Post the answer where it was asked, unless it is not safe for everyone there.

        A denial is the asker's business (Slack shows it ephemerally): in channels and group
        chats it goes 1:1 like a restricted answer, and the chat gets only a neutral line.
        """
        kind = inbound.conversation_kind(body)
        if message.in_channel and answer.status == Status.DENIED:
            texts = [render.private_preface(message.text), render.neutralize(answer.text)]
            await self._private.deny(ctx, body, texts, answer.request_id)
            return
        if message.in_channel and not answer.channel_safe:
            await self._private.answer(ctx, body, answer, message.text)
            return
        response = await ctx.send_activity(to_activity(render.render_answer(answer, kind=kind)))
        key = inbound.reply_key(_conversation(body), response.id if response is not None else None)
        if key:  # cards keep the answer so a vote can update them
            await self._runtime.quick(
                self._store.replies.remember,
                key,
                answer.request_id,
                answer if kind == inbound.CHANNEL else None,
            )
        if answer.ok:
            await self._runtime.quick(
                self._store.history.add_answer, inbound.history_key(body), message.text, answer
            )

    async def _card_feedback(self, ctx: TurnContext, body: Mapping[str, Any], rid: str, value: str) -> None:
        """A vote counts only on a reply the bot posted in this conversation, for the request
        that reply answered (the card's request id alone proves nothing: footers show it)."""
        message_id = body.get("replyToId")
        key = _reply_key(body)
        known = await self._runtime.quick(self._store.replies.request_id, key)
        if known is None or known != rid:
            log.info("card feedback for message %r naming request %s ignored", message_id, rid)
            return
        email = await self._email(ctx, body)
        await self._runtime.quick(
            self._assistant.feedback, rid, user=email or inbound.user_key(body), value=value
        )
        answer = await self._runtime.quick(self._store.replies.payload, key)
        if isinstance(answer, Answer) and message_id:
            card = render.card_activity(render.answer_card(answer, voted=value))
            update = to_activity(card)
            update.id = message_id
            try:
                await ctx.update_activity(update)
            except Exception:
                log.warning("could not update the answer card %s", message_id, exc_info=True)

    # ── helpers ─────────────────────────────────────────────────────────────────────

    async def _readers(self, ctx: TurnContext, body: Mapping[str, Any]) -> ChannelReaders | None:
        """Who reads the channel or group chat (None in a personal chat); see ``roster``."""
        if inbound.conversation_kind(body) == inbound.PERSONAL:
            return None
        where = roster.scope(body)
        if where is None or self._teams.anonymous:  # Emulator mode: no roster is trusted
            return ChannelReaders.unavailable()

        async def page(token: str | None, size: int) -> roster.Page:
            # GET /v3/conversations/{team or chat id}/pagedmembers, as TeamsInfo.get_paged_*_members
            found = await self._connector(ctx).conversations.get_teams_conversation_paged_members(
                where.conversation, size, token
            )
            members = [m.serialize() for m in found.members or [] if m is not None]
            return members, found.continuation_token or None

        bot_id = str((body.get("recipient") or {}).get("id") or "")
        return await self._rosters.readers(where, page, bot_id=bot_id)

    async def _email(self, ctx: TurnContext, body: Mapping[str, Any]) -> str | None:
        sender = body.get("from") or {}
        user_id = str(sender.get("id") or "")
        if self._teams.anonymous:  # Emulator mode: never an identity the request carries
            return self._teams.emulator_email or None
        conversation = str((body.get("conversation") or {}).get("id") or "")

        async def lookup() -> str | None:
            try:  # GET /v3/conversations/{id}/members/{userId}, as TeamsInfo.get_member
                member = await self._connector(ctx).conversations.get_conversation_member(
                    conversation, user_id
                )
            except Exception as exc:
                log.warning("member lookup failed for %s: %s", user_id, _reason(exc))
                log.debug("member lookup failure", exc_info=True)
                return None
            record = dict(member.serialize(), **(member.additional_properties or {}))
            return roster.member_email(record)  # the same rule as for channel readers

        if not user_id or not conversation:
            return None
        return await self._members.email(inbound.tenant_id(body), user_id, lookup)

    def _connector(self, ctx: TurnContext) -> ConnectorClient:
        """The turn's connector client: botbuilder built it for the authenticated serviceUrl."""
        connector = ctx.turn_state.get(self._adapter.BOT_CONNECTOR_CLIENT_KEY)
        if connector is None:
            raise RuntimeError("this turn has no connector client")
        return connector


def _conversation(body: Mapping[str, Any]) -> str:
    return str((body.get("conversation") or {}).get("id") or "")


def _reply_key(body: Mapping[str, Any]) -> str | None:
    """The reply→request key of the message a vote (``replyToId``) is about, in this conversation."""
    reply_to = body.get("replyToId")
    return inbound.reply_key(_conversation(body), reply_to if isinstance(reply_to, str) else None)


def _reason(exc: Exception) -> str:
    """A one-line reason for the log (no traceback: a 404 for a departed member is routine)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__
