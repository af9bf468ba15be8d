"""One Teams turn: read the activity, call the Assistant, post what ``render`` builds.

The core is synchronous, so every Assistant call runs in a worker thread
(``asyncio.to_thread``). People never see exception text: a ``DeptbotError`` shows its
``user_message``; anything else is logged with an id and the person gets one friendly line
carrying that id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from botbuilder.core import CloudAdapterBase, InvokeResponse, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    Entity,
)

from bot.adapters import render as wording
from bot.adapters.teams import inbound, render
from bot.adapters.teams.auth import TeamsSettings
from bot.adapters.teams.identity import MemberEmails
from bot.core.pipeline import Assistant, new_request_id
from bot.core.types import Answer, Message, Status
from bot.errors import AccessDenied, DeptbotError
from bot.store.conversations import ConversationStore

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 3.0


class _RawEntity(Entity):
    """An Entity that keeps every JSON field when serialized (the AI entity needs "@type", "citation")."""

    _attribute_map = {  # noqa: RUF012 - msrest reads this class attribute
        "type": {"key": "type", "type": "str"},
        "additional_properties": {"key": "", "type": "{object}"},
    }


def to_activity(data: Mapping[str, Any]) -> Activity:
    """A botbuilder Activity from one of ``render``'s dicts, entities kept whole."""
    fields = dict(data)
    entities = fields.pop("entities", None) or []
    activity = Activity().deserialize(fields)
    if entities:
        activity.entities = [
            _RawEntity(type=e["type"], additional_properties={k: v for k, v in e.items() if k != "type"})
            for e in entities
        ]
    return activity


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
    ) -> None:
        self._assistant = assistant
        self._teams = teams
        self._adapter = adapter
        self._store = store
        self._members = members

    async def on_turn(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
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
            await self._say(ctx, render.neutralize(exc.user_message))
        except Exception:
            rid = new_request_id()
            log.exception("teams turn failed (request %s)", rid)
            await self._say(ctx, wording.sorry(rid))

    # ── activities ──────────────────────────────────────────────────────────────────

    async def _on_message(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        if inbound.conversation_kind(body) == inbound.PERSONAL:
            self._remember_personal(body)
        vote = inbound.feedback_from_card(body)
        if vote is not None:
            await self._card_feedback(ctx, body, *vote)
            return
        text = inbound.strip_mentions(body)
        if not text and body.get("value") is not None:
            return  # some other card submit: nothing to answer
        await ctx.send_activity(Activity(type=ActivityTypes.typing))
        email = await self._email(ctx, body)
        company = self._assistant.company
        command = inbound.parse_command(
            text,
            company.departments.keys(),
            {d.name: d.templates.keys() for d in company},
        )
        if command.kind == "help":
            await self._say(ctx, self._help(email))
        elif command.kind == "usage":
            await self._say(ctx, command.text)
        elif command.kind == "status":
            await self._status(ctx, command.department, email)
        elif command.kind == "refresh":
            await self._refresh(ctx, body, command.department or "", email)
        else:
            history_key = inbound.history_key(body)
            message = inbound.to_message(
                body, command, email=email, history=self._store.history.get(history_key)
            )
            answer = await asyncio.to_thread(self._assistant.ask, message)
            await self._deliver(ctx, body, message, answer)

    async def _on_conversation_update(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        bot_id = (body.get("recipient") or {}).get("id")
        added = [m.get("id") for m in body.get("membersAdded") or [] if isinstance(m, Mapping)]
        if bot_id and bot_id in added:
            if inbound.conversation_kind(body) == inbound.PERSONAL:
                self._remember_personal(body)
            await ctx.send_activity(
                to_activity(render.card_activity(render.welcome_card(), summary="Hi, I'm deptbot"))
            )

    async def _on_invoke(self, ctx: TurnContext, body: Mapping[str, Any]) -> None:
        """Teams' 👍/👎 (``message/submitAction``): store it, answer 200 with an empty body."""
        try:
            if body.get("name") == "message/submitAction":
                feedback = inbound.feedback_from_invoke(body)
                rid = self._store.replies.request_id(body.get("replyToId"))
                if feedback is not None and rid is not None:
                    email = await self._email(ctx, body)
                    value, reason = feedback
                    await asyncio.to_thread(
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
        await ctx.send_activity(
            Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200))
        )

    # ── commands ────────────────────────────────────────────────────────────────────

    def _help(self, email: str | None) -> str:
        depts = self._assistant.departments_for(email) if email else []
        templates = self._assistant.templates_for(email) if email else []
        return render.help_text(
            [(d.name, d.title) for d in depts],
            [(d.name, t, d.templates[t].description) for d, t in templates],
        )

    async def _status(self, ctx: TurnContext, department: str | None, email: str | None) -> None:
        """Only departments this person may ask or administers; failed file names to admins only."""
        a = self._assistant
        admin_of = {d.name for d in a.company if email and a.is_admin(email, d.name)}
        visible = {d.name for d in a.departments_for(email)} if email else set()
        visible |= admin_of
        if department:
            a.company.department(department)  # unknown name → UsageError listing valid ones
            if department not in visible:
                await self._say(ctx, "You can't see that department's knowledge status.")
                return
        names = [department] if department else sorted(visible)
        if not names:
            await self._say(ctx, "There is no knowledge you can see yet.")
            return
        statuses = [s for n in names for s in await asyncio.to_thread(a.status, n)]
        titles = {d.name: d.title for d in a.company}
        await self._say(ctx, render.status_text(statuses, titles, details_for=admin_of))

    async def _refresh(
        self, ctx: TurnContext, body: Mapping[str, Any], department: str, email: str | None
    ) -> None:
        title = self._assistant.company.department(department).title  # UsageError for unknown names
        user = email or inbound.user_key(body)
        loop = asyncio.get_running_loop()
        posted: dict[str, Any] = {"id": None, "at": 0.0}
        if email and self._assistant.is_admin(email, department):
            sent = await self._say(ctx, f"Refreshing {render.neutralize(title)} knowledge…")
            posted.update(id=sent, at=time.monotonic())

        def progress(done: int, total: int, current: str) -> None:  # called from the worker thread
            now = time.monotonic()
            if posted["id"] and now - posted["at"] >= PROGRESS_EVERY_S:
                posted["at"] = now
                text = wording.progress_line(render.neutralize(title), done, total)
                asyncio.run_coroutine_threadsafe(self._update(ctx, posted["id"], text), loop)

        try:
            report = await asyncio.to_thread(
                self._assistant.refresh, department, user=user, progress=progress
            )
        except AccessDenied as exc:
            denial = render.neutralize(exc.user_message)
            if inbound.conversation_kind(body) == inbound.PERSONAL:
                await self._say(ctx, denial)
            else:
                question = inbound.strip_mentions(body)
                await self._deny_privately(ctx, body, [render.private_preface(question), denial], "")
            return
        await self._say(ctx, render.refresh_text(render.neutralize(title), report))

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
            await self._deny_privately(ctx, body, texts, answer.request_id)
            return
        if message.in_channel and not answer.channel_safe:
            sent = await self._send_private(
                ctx, body, self._private_answer(answer, message.text), answer.request_id
            )
            name = str((body.get("from") or {}).get("name") or "")
            note = (
                render.private_note(name, answer.department_title)
                if sent
                else render.private_failed_note(name)
            )
            await self._say(ctx, note)
            return
        response = await ctx.send_activity(to_activity(render.render_answer(answer, kind=kind)))
        if response is not None and response.id:  # cards keep the answer so a vote can update them
            self._store.replies.remember(
                response.id, answer.request_id, answer if kind == inbound.CHANNEL else None
            )
        if answer.ok:
            self._store.history.add(
                inbound.history_key(body), message.text, answer.text, label=answer.classification
            )

    async def _deny_privately(
        self, ctx: TurnContext, body: Mapping[str, Any], texts: list[str], request_id: str
    ) -> None:
        """A denial in a channel or group chat goes 1:1; the chat gets one neutral line."""
        activities = [to_activity(render.text_activity(t)) for t in texts]
        sent = await self._send_private(ctx, body, activities, request_id)
        name = str((body.get("from") or {}).get("name") or "")
        await self._say(ctx, render.replied_privately_note(name) if sent else render.unreachable_note(name))

    @staticmethod
    def _private_answer(answer: Answer, question: str) -> list[Activity]:
        return [
            to_activity(render.text_activity(render.private_preface(question))),
            to_activity(render.render_answer(answer, kind=inbound.PERSONAL)),
        ]

    async def _send_private(
        self, ctx: TurnContext, body: Mapping[str, Any], activities: list[Activity], request_id: str
    ) -> bool:
        """1:1 with the asker through the stored reference (created on first use)."""
        try:
            reference = self._store.references.get(self._personal_key(body))
            if reference is None:
                reference = await self._create_personal(ctx, body)
            sent: list[str] = []

            async def send(turn: TurnContext) -> None:
                ref = TurnContext.get_conversation_reference(turn.activity)
                ref.activity_id = None  # a new message in the chat, not a reply to the continuation event
                for activity in activities:
                    TurnContext.apply_conversation_reference(activity, ref)
                    responses = await turn.adapter.send_activities(turn, [activity])
                    sent.extend(r.id for r in responses if r is not None and r.id)

            await self._adapter.continue_conversation(
                ConversationReference().deserialize(reference), send, bot_app_id=self._teams.app_id
            )
            if sent and request_id:
                self._store.replies.remember(sent[-1], request_id)
            return True
        except Exception:
            log.warning(
                "could not message %s privately (request %s)",
                inbound.user_key(body),
                request_id,
                exc_info=True,
            )
            return False

    async def _create_personal(self, ctx: TurnContext, body: Mapping[str, Any]) -> dict[str, Any]:
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
        self._store.references.put(self._personal_key(body), reference)
        return reference

    def _remember_personal(self, body: Mapping[str, Any]) -> None:
        reference = {k: body.get(k) for k in ("from", "recipient", "conversation", "channelId", "serviceUrl")}
        reference["user"], reference["bot"] = reference.pop("from"), reference.pop("recipient")
        self._store.references.put(self._personal_key(body), reference)

    @staticmethod
    def _personal_key(body: Mapping[str, Any]) -> tuple[str, str, str]:
        return ("teams", inbound.tenant_id(body) or "", inbound.user_key(body))

    async def _card_feedback(self, ctx: TurnContext, body: Mapping[str, Any], rid: str, value: str) -> None:
        message_id = body.get("replyToId")
        known = self._store.replies.request_id(message_id)
        if known is not None and known != rid:
            log.warning("card feedback for %s names request %s; ignored", message_id, rid)
            return
        email = await self._email(ctx, body)
        await asyncio.to_thread(
            self._assistant.feedback, rid, user=email or inbound.user_key(body), value=value
        )
        answer = self._store.replies.payload(message_id)
        if isinstance(answer, Answer) and message_id:
            card = render.card_activity(render.answer_card(answer, voted=value))
            update = to_activity(card)
            update.id = message_id
            try:
                await ctx.update_activity(update)
            except Exception:
                log.warning("could not update the answer card %s", message_id, exc_info=True)

    # ── helpers ─────────────────────────────────────────────────────────────────────

    async def _email(self, ctx: TurnContext, body: Mapping[str, Any]) -> str | None:
        sender = body.get("from") or {}
        user_id = str(sender.get("id") or "")

        async def lookup() -> str | None:
            try:
                member = await TeamsInfo.get_member(ctx, user_id)
            except Exception:
                log.warning("member lookup failed for %s", user_id, exc_info=True)
                return None
            return member.email or member.user_principal_name

        email = await self._members.email(inbound.tenant_id(body), user_id, lookup) if user_id else None
        if email is None and self._teams.anonymous and body.get("channelId") == "emulator":
            email = user_id.lower() if "@" in user_id else None  # local Emulator only
        return email

    async def _say(self, ctx: TurnContext, text: str) -> str | None:
        response = await ctx.send_activity(to_activity(render.text_activity(text)))
        return response.id if response is not None else None

    async def _update(self, ctx: TurnContext, message_id: str, text: str) -> None:
        update = to_activity(render.text_activity(text))
        update.id = message_id
        try:
            await ctx.update_activity(update)
        except Exception:
            log.warning("progress update failed", exc_info=True)
