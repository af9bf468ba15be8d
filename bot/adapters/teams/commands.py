"""Chat commands in Teams: ``help``, ``status [dept]``, ``refresh <dept>`` and usage hints.

``inbound.parse_command`` decides what the text is; this module answers the commands and
leaves questions to ``turns``. It only words what the core decides: the core checks who may
refresh (and audits the decision), and an unknown department name raises the core's
``UsageError``, which ``turns`` shows as its ``user_message``.

What a person may *see* is filtered here, because these replies are read in shared chats:
help lists only the departments and templates this person may use, status only the
departments they may ask or administer (failed file names only to admins), and a refresh
denial in a channel goes 1:1 through ``private`` like any other denial.

``kb admin`` gives an admin (only) a one-time admin console sign-in link, in their 1:1
chat only (``bot.admin.auth``).

``kb my-data`` and ``kb forget-me`` are a person's own privacy requests
(``bot.governance.privacy.SelfService``), answered only in their 1:1 chat (Teams has no
ephemeral replies): the export as JSON in code blocks, erasure only after the person sends
back the one-time code the first ``kb forget-me`` gave (recorded under a pseudonym).
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Mapping
from typing import Any

from botbuilder.core import TurnContext

from bot.adapters import render as wording
from bot.adapters.runtime import Runtime
from bot.adapters.teams import inbound, render
from bot.adapters.teams.outbound import say, update
from bot.adapters.teams.private import PrivateChats
from bot.admin.auth import CONSOLE_OFF, link_message
from bot.admin.auth import links_for as admin_links
from bot.core.pipeline import Assistant
from bot.errors import AccessDenied
from bot.governance.privacy import SelfService, export_chunks, self_service

PROGRESS_EVERY_S = 3.0
PRIVACY_WORDS = ("my-data", "forget-me")
EXPORT_CHARS, EXPORT_MESSAGES = 12_000, 4  # well under Teams' 80 KB (UTF-16) per message


class Commands:
    """Answers the command forms of ``inbound.Command``; questions are not its business."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        private: PrivateChats,
        runtime: Runtime | None = None,
        privacy: SelfService | None = None,  # default: the one ``bot.wiring`` registered
    ) -> None:
        self._assistant = assistant
        self._private = private
        self._runtime = runtime or Runtime()
        self._privacy = privacy

    def use_runtime(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def handle(
        self, ctx: TurnContext, body: Mapping[str, Any], command: inbound.Command, email: str | None
    ) -> bool:
        """Answer ``command`` if it is one; False when it is a question for the Assistant."""
        words = inbound.strip_mentions(body).split()
        if len(words) >= 2 and words[0].lower().lstrip("/") == "kb" and words[1].lower() in PRIVACY_WORDS:
            await self._privacy_request(ctx, body, words[1].lower(), words[2:], email)
        elif len(words) == 2 and words[0].lower().lstrip("/") == "kb" and words[1].lower() == "admin":
            await self._admin_link(ctx, body, email)
        elif command.kind == "help":
            await say(ctx, self._help(email))
        elif command.kind == "usage":
            await say(ctx, command.text)
        elif command.kind == "status":
            shared = inbound.conversation_kind(body) != inbound.PERSONAL
            await self._status(ctx, command.department, email, shared=shared)
        elif command.kind == "refresh":
            await self._refresh(ctx, body, command.department or "", email)
        else:
            return False
        return True

    def _help(self, email: str | None) -> str:
        depts = self._assistant.departments_for(email) if email else []
        templates = self._assistant.templates_for(email) if email else []
        return render.help_text(
            [(d.name, d.title) for d in depts],
            [(d.name, t, d.templates[t].description) for d, t in templates],
        )

    async def _status(
        self, ctx: TurnContext, department: str | None, email: str | None, *, shared: bool = False
    ) -> None:
        """Only departments this person may ask or administers; failed file names and admin
        notices to admins only, and only in their personal chat: in a channel or group chat
        (``shared``) everyone would read them, and Teams has no ephemeral replies."""
        a = self._assistant
        admin_of = {d.name for d in a.company if email and a.is_admin(email, d.name)}
        visible = {d.name for d in a.departments_for(email)} if email else set()
        visible |= admin_of
        if department:
            a.company.department(department)  # unknown name → UsageError listing valid ones
            if department not in visible:
                await say(ctx, "You can't see that department's knowledge status.")
                return
        names = [department] if department else sorted(visible)
        if not names:
            await say(ctx, "There is no knowledge you can see yet.")
            return
        statuses = [s for n in names for s in await self._runtime.quick(a.status, n)]
        titles = {d.name: wording.status_title(d) for d in a.company}
        text = render.status_text(statuses, titles, details_for=set() if shared else admin_of)
        notices = [] if shared else wording.notice_lines(a.notices_for(email, department))  # admins only
        if notices:
            text += "\n\n**Admin notices**\n" + "\n".join("- " + render.neutralize(n) for n in notices)
        await say(ctx, text)

    async def _refresh(
        self, ctx: TurnContext, body: Mapping[str, Any], department: str, email: str | None
    ) -> None:
        """Admins see a start line, updated with progress; everyone else only the outcome."""
        title = self._assistant.company.department(department).title  # UsageError for unknown names
        user = email or inbound.user_key(body)
        loop = asyncio.get_running_loop()
        posted: dict[str, Any] = {"id": None, "at": 0.0}
        if email and self._assistant.is_admin(email, department):
            sent = await say(ctx, f"Refreshing {render.neutralize(title)} knowledge…")
            posted.update(id=sent, at=time.monotonic())

        def progress(done: int, total: int, current: str) -> None:  # called from the worker thread
            now = time.monotonic()
            if posted["id"] and now - posted["at"] >= PROGRESS_EVERY_S:
                posted["at"] = now
                text = wording.progress_line(render.neutralize(title), done, total)
                asyncio.run_coroutine_threadsafe(update(ctx, posted["id"], text), loop)

        try:
            report = await self._runtime.background(
                self._assistant.refresh, department, user=user, progress=progress
            )
        except AccessDenied as exc:
            denial = render.neutralize(exc.user_message)
            if inbound.conversation_kind(body) == inbound.PERSONAL:
                await say(ctx, denial)
            else:
                question = inbound.strip_mentions(body)
                await self._private.deny(ctx, body, [render.private_preface(question), denial], "")
            return
        await say(ctx, render.refresh_text(render.neutralize(title), report))

    async def _admin_link(self, ctx: TurnContext, body: Mapping[str, Any], email: str | None) -> None:
        """``kb admin``: a one-time admin console sign-in link, only in the person's 1:1 chat
        (anyone reading a shared chat could use it: Teams has no ephemeral replies)."""
        links = admin_links(self._assistant)
        if links is None:
            await say(ctx, CONSOLE_OFF)
        elif inbound.conversation_kind(body) != inbound.PERSONAL:
            await say(ctx, "For your security, send `kb admin` in a 1:1 chat with me.")
        else:
            issued = await self._runtime.quick(links.issue, email, via="teams")
            if not issued.url:
                await say(ctx, issued.reason)
            else:
                await say(ctx, f"[Open the admin console]({issued.url}). {link_message(issued)}")

    # ── privacy self-service ─────────────────────────────────────────────────────────

    async def _privacy_request(
        self, ctx: TurnContext, body: Mapping[str, Any], action: str, rest: list[str], email: str | None
    ) -> None:
        service = self._privacy or self_service(self._assistant)
        if service is None:
            await say(ctx, wording.PRIVACY_ELSEWHERE)
        elif inbound.conversation_kind(body) != inbound.PERSONAL:
            await say(ctx, f"For your privacy, send `kb {action}` in a 1:1 chat with me.")
        elif not email:
            await say(ctx, wording.privacy_no_email())
        elif action == "my-data":
            await self._export(ctx, service, email)
        elif not rest:
            code = service.start_erase(email)
            await say(ctx, wording.erase_warning("kb", code))
        else:
            receipt = await self._runtime.report(service.confirm_erase, email, rest[0], platform="teams")
            if receipt is None:
                await say(ctx, wording.erase_code_invalid("kb"))
            else:
                await say(ctx, "\n\n".join(render.neutralize(line) for line in receipt.lines()))

    async def _export(self, ctx: TurnContext, service: SelfService, email: str) -> None:
        export = await self._runtime.report(service.export, email, platform="teams")
        summary = render.neutralize(export.summary()[0])
        chunks = export_chunks(export, EXPORT_CHARS)
        if len(chunks) > EXPORT_MESSAGES:
            await say(
                ctx,
                f"{summary} That is too much for chat messages: ask your deptbot administrator "
                "for `deptbot privacy export`.",
            )
            return
        await say(ctx, f"**Your data** (only in this 1:1 chat). {summary}")
        for chunk in chunks:
            await say(ctx, "```\n" + html.escape(chunk, quote=False).replace("```", "`\u200b``") + "\n```")
