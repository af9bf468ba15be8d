"""Slash commands: ``/ask``, ``/task``, ``/kb`` — acknowledged at once, answered via ``response_url``.

Replies are ephemeral. In a channel or group DM the conversation's members are fetched
(``members.ChannelMembers``) so the core can tell whether everyone there may read the
answer: only then does it get a "Share in channel" button (checked again at click time);
otherwise one line says why it stays with the asker. ``/kb refresh`` is for that
department's admins; the core checks and records the decision, this module only words it.

``/kb admin`` answers an admin (only) with a one-time sign-in link to the admin console
(``bot.admin.auth``), ephemerally.

``/kb my-data`` and ``/kb forget-me`` are a person's own privacy requests
(``bot.governance.privacy.SelfService``): the export comes back ephemerally (only they see
it), as the JSON in code blocks within Slack's limits; erasure needs a second command with
the one-time code the first one gave, and is recorded in the audit log under a pseudonym.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import render
from bot.adapters.runtime import Runtime, busy_line
from bot.adapters.slack import blocks as bk
from bot.adapters.slack import translate
from bot.adapters.slack.members import ChannelMembers, Home
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.shared import Shareable, SharedAnswers
from bot.admin.auth import CONSOLE_OFF, link_message
from bot.admin.auth import links_for as admin_links
from bot.core.pipeline import Assistant
from bot.core.types import Message
from bot.errors import DeptbotError
from bot.governance.privacy import SelfService, export_chunks, self_service

log = logging.getLogger(__name__)

Respond = Callable[..., Awaitable[Any]]
PROGRESS_EVERY = 10.0  # seconds between progress messages (response_url allows 5 posts)
PRIVACY_WORDS = ("my-data", "forget-me")
EXPORT_BLOCKS = 12  # code blocks of one export message (Slack shows ~40,000 characters of a message)


class SlashCommands:
    def __init__(
        self,
        *,
        assistant: Assistant,
        people: SlackPeople,
        shared: SharedAnswers,
        members: ChannelMembers,  # one per adapter: membership events must clear the same cache
        runtime: Runtime,  # one per server: the in-flight cap is shared
        privacy: SelfService | None = None,  # default: the one ``bot.wiring`` registered
    ) -> None:
        self._assistant = assistant
        self._people = people
        self._shared = shared
        self._members = members
        self._runtime = runtime
        self._privacy = privacy

    @property
    def _names(self) -> list[str]:
        return [d.name for d in self._assistant.company]

    async def ack(self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any]) -> None:
        """Within 3 s, before any work: a refresh says it started, everything else acks empty."""
        cmd = translate.parse_command(command.get("command", ""), command.get("text", ""), self._names)
        if (
            cmd.action == "refresh"
            and cmd.department
            and cmd.department in self._assistant.company.departments
        ):
            title = self._assistant.company.department(cmd.department).title
            await ack(text=f"Refreshing {bk.escape(title)} knowledge…", response_type="ephemeral")
        else:
            await ack()

    async def on_command(
        self,
        ack: Callable[..., Awaitable[Any]],
        command: dict[str, Any],
        respond: Respond,
        client: AsyncWebClient,
        context: Any = None,
    ) -> None:
        """Ack first (bolt answers Slack the moment ``ack`` is called), then do the work.

        Bolt runs listeners as background tasks (``process_before_response=False``), so the
        HTTP response does not wait for the answer. Lazy listeners would deep-copy the
        request, pooled client session included, which that session does not allow.
        """
        await self.ack(ack, command)
        await self.run(command, respond, client, Home.of(context))

    async def run(
        self, command: dict[str, Any], respond: Respond, client: AsyncWebClient, home: Home | None = None
    ) -> None:
        """The work after the ack; every failure becomes one friendly line."""
        try:
            await self._run(command, respond, client, home or Home())
        except DeptbotError as exc:
            await _say(respond, bk.escape(exc.user_message), icon=":warning:")
        except Exception:
            rid = render.new_request_id()
            log.exception("slash command failed (request %s)", rid)
            await _say(respond, bk.escape(render.sorry(rid)), icon=":warning:")

    async def _run(
        self, command: dict[str, Any], respond: Respond, client: AsyncWebClient, home: Home
    ) -> None:
        cmd = translate.parse_command(command.get("command", ""), command.get("text", ""), self._names)
        email = await self._people.email(str(command.get("user_id", "")), client)
        words = translate.plain_text(str(command.get("text", ""))).split()
        if command.get("command") == "/kb" and words and words[0].lower() in PRIVACY_WORDS:
            await self._privacy_request(words[0].lower(), words[1:], email, respond)
        elif command.get("command") == "/kb" and [w.lower() for w in words] == ["admin"]:
            await self._admin_link(email, respond)
        elif cmd.action == "help":
            names = [d.name for d in self._assistant.departments_for(email)] if email else []
            await _say(respond, "\n".join(render.help_lines(names)))
        elif cmd.action in ("ask", "task"):
            await self._ask(cmd, command, email, respond, client, home)
        elif cmd.action == "status":
            await self._status(cmd, email, respond)
        elif cmd.action == "refresh":
            await self._refresh(cmd, email, respond)
        else:
            await _say(respond, "I don't know that command. Try `/ask help`.")

    async def _ask(
        self,
        cmd: translate.Command,
        payload: dict[str, Any],
        email: str | None,
        respond: Respond,
        client: AsyncWebClient,
        home: Home,
    ) -> None:
        if cmd.action == "task":
            problem = self._template_problem(cmd, email)
            if problem:
                await _say(respond, problem)
                return
        channel = str(payload.get("channel_id") or "")
        user_id = str(payload.get("user_id", ""))
        in_channel = bool(channel) and not translate.command_is_dm(payload)
        readers = await self._members.readers(channel, client, home) if in_channel else None
        message = Message(
            user_id=user_id,
            text=cmd.text,
            platform="slack",
            email=email,
            channel=channel or None,
            department=cmd.department,
            template=cmd.template,
            in_channel=in_channel,  # so the answer knows whether it may be shared there
            channel_readers=readers,
        )

        async def queued(ahead: int) -> None:
            await _say(respond, bk.escape(busy_line(ahead)), icon=":hourglass_flowing_sand:")

        async with self._runtime.admit(on_queued=queued):
            answer = await self._runtime.answer(self._assistant.ask, message)
        kept = in_channel and answer.ok  # denials and errors are never shared
        shareable = kept and answer.channel_safe
        note = render.channel_restricted_note(answer) if kept and not shareable else ""
        blocks = bk.answer_blocks(answer, note=note, share=shareable)
        if kept:  # click-time re-check needs the Answer, with or without a button
            self._shared.put(
                # room for the "Shared by" line the share puts in front (≤ 50 blocks in all)
                Shareable(
                    answer, channel, user_id, bk.answer_blocks(answer, reserve=1), bk.fallback_text(answer)
                )
            )
        await respond(
            text=bk.fallback_text(answer, note=note),
            blocks=blocks,
            response_type="ephemeral",
            unfurl_links=False,
            unfurl_media=False,
        )

    def _template_problem(self, cmd: translate.Command, email: str | None) -> str:
        """Unknown or ambiguous template → the list this person may run (no core call needed)."""
        mine = self._assistant.templates_for(email) if email else []
        listing = (
            "\n".join(
                f"• `/task {bk.escape(d.name)} {bk.escape(t)} …` — {bk.escape(d.templates[t].description)}"
                for d, t in mine
            )
            or "You can't run any templates yet."
        )
        if not cmd.template:
            return "*Templates you can run*\n" + listing
        owners = [
            d.name
            for d in self._assistant.company
            if cmd.template in d.templates and (cmd.department in (None, d.name))
        ]
        if not owners:
            return f"There is no template `{bk.escape(cmd.template)}`. *Templates you can run*\n" + listing
        if len(owners) > 1:
            names = ", ".join(owners)
            tpl = bk.escape(cmd.template)
            return f"`{tpl}` exists in {names}; use `/task DEPT {tpl} …`."
        if not cmd.text.strip():
            return f"Give the template an input: `/task {bk.escape(cmd.template)} …`."
        return ""

    async def _status(self, cmd: translate.Command, email: str | None, respond: Respond) -> None:
        a = self._assistant
        visible = {d.name for d in a.departments_for(email)} if email else set()
        visible |= {d.name for d in a.company if email and a.is_admin(email, d.name)}
        if cmd.department:
            a.company.department(cmd.department)  # unknown name → UsageError listing valid ones
            if cmd.department not in visible:
                await _say(respond, "You can't see that department's knowledge status.", icon=":no_entry:")
                return
            names = [cmd.department]
        else:
            names = sorted(visible)
        if not names:
            await _say(respond, "There is no knowledge you can see yet.")
            return
        statuses = [s for n in names for s in await self._runtime.quick(a.status, n)]
        titled = [(s, render.status_title(a.company.department(s.department))) for s in statuses]
        lines = [render.status_line(s, title) for s, title in titled]
        text = "*Knowledge status*\n" + "\n".join("• " + bk.escape(line) for line in lines)
        notices = render.notice_lines(a.notices_for(email, cmd.department))  # admins only
        if notices:
            text += "\n*Admin notices*\n" + "\n".join("• " + bk.escape(line) for line in notices)
        await _say(respond, text)

    async def _refresh(self, cmd: translate.Command, email: str | None, respond: Respond) -> None:
        if not cmd.department:
            await _say(respond, "Which department? `/kb refresh DEPT` — one of: " + ", ".join(self._names))
            return
        title = self._assistant.company.department(cmd.department).title
        loop = asyncio.get_running_loop()
        last = [time.monotonic()]

        def progress(done: int, total: int, current: str) -> None:  # called on the worker thread
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY and done < total:
                last[0] = now
                line = bk.escape(render.progress_line(title, done, total))
                asyncio.run_coroutine_threadsafe(_say(respond, line), loop)

        try:
            report = await self._runtime.background(
                self._assistant.refresh, cmd.department, user=email or "", progress=progress
            )
        except DeptbotError as exc:  # AccessDenied (recorded by the core) or a knowledge error
            icon = ":no_entry:" if type(exc).__name__ == "AccessDenied" else ":warning:"
            await _say(respond, bk.escape(exc.user_message), icon=icon)
            return
        await _say(respond, bk.escape(render.report_line(report, title)), icon=":white_check_mark:")

    async def _admin_link(self, email: str | None, respond: Respond) -> None:
        """``/kb admin``: a one-time admin console sign-in link, ephemeral (only they see it)."""
        links = admin_links(self._assistant)
        issued = await self._runtime.quick(links.issue, email, via="slack") if links else None
        if issued is None or not issued.url:
            await _say(respond, bk.escape(issued.reason if issued else CONSOLE_OFF), icon=":no_entry:")
            return
        text = f"<{bk.escape(issued.url)}|Open the admin console> — {bk.escape(link_message(issued))}"
        await _say(respond, text, icon=":key:")

    # ── privacy self-service ─────────────────────────────────────────────────────────

    async def _privacy_request(
        self, action: str, rest: list[str], email: str | None, respond: Respond
    ) -> None:
        service = self._privacy or self_service(self._assistant)
        if service is None:
            await _say(respond, render.PRIVACY_ELSEWHERE)
            return
        if not email:
            await _say(respond, render.privacy_no_email("Slack"), icon=":warning:")
            return
        if action == "my-data":
            await self._export(service, email, respond)
        elif not rest:
            code = service.start_erase(email)
            await _say(respond, render.erase_warning("/kb", code), icon=":warning:")
        else:
            receipt = await self._runtime.report(service.confirm_erase, email, rest[0], platform="slack")
            if receipt is None:
                await _say(respond, render.erase_code_invalid("/kb"))
                return
            await _say(respond, bk.escape("\n".join(receipt.lines())), icon=":white_check_mark:")

    async def _export(self, service: SelfService, email: str, respond: Respond) -> None:
        export = await self._runtime.report(service.export, email, platform="slack")
        summary = bk.escape(export.summary()[0])
        chunks = _escaped_chunks(export_chunks(export, 2600))
        if len(chunks) > EXPORT_BLOCKS:
            await _say(
                respond,
                f"{summary} That is too much for a Slack message: ask your deptbot administrator for "
                "`deptbot privacy export`.",
            )
            return
        blocks = [bk.section(f"*Your data* — only you can see this. {summary}")]
        blocks += [bk.section(f"```{c}```") for c in chunks]
        await respond(
            text=f"Your data: {summary}",
            blocks=blocks,
            response_type="ephemeral",
            unfurl_links=False,
            unfurl_media=False,
        )


def _escaped_chunks(chunks: list[str]) -> list[str]:
    """Each piece escaped for mrkdwn and kept under a section's 3,000 characters (with the
    code fence); a piece that grows past it when escaped is split again."""
    out: list[str] = []
    for chunk in chunks:
        escaped = bk.escape(chunk).replace("```", "`\u200b``")
        while escaped:
            piece = bk.clip(escaped, 2990)
            out.append(piece)
            escaped = escaped[len(piece) :]
    return out


async def _say(respond: Respond, text: str, *, icon: str = "") -> None:
    """An ephemeral one-liner via response_url; ``text`` is already safe mrkdwn."""
    await respond(
        text=text, blocks=bk.line_blocks(text, icon=icon), response_type="ephemeral", unfurl_links=False
    )
