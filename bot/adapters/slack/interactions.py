"""Button clicks, the 👎 reason modal, "Share in channel", and the App Home tab.

"Share in channel" is decided again at click time: the members are fetched afresh (not
from the cache) and the core's ``channel_verdict`` must say yes for the answer the asker
saw; otherwise the asker is told why, ephemerally, and nothing is posted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import render
from bot.adapters.runtime import Runtime
from bot.adapters.slack import blocks as bk
from bot.adapters.slack.members import ChannelMembers, Home
from bot.adapters.slack.people import SlackPeople
from bot.adapters.slack.shared import SharedAnswers
from bot.core.pipeline import Assistant

log = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[Any]]
Respond = Callable[..., Awaitable[Any]]
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class Interactions:
    def __init__(
        self,
        *,
        assistant: Assistant,
        people: SlackPeople,
        shared: SharedAnswers,
        members: ChannelMembers,  # one per adapter: membership events must clear the same cache
        runtime: Runtime,  # one per server: the in-flight cap is shared
    ) -> None:
        self._assistant = assistant
        self._people = people
        self._shared = shared
        self._members = members
        self._runtime = runtime

    async def _who(self, body: dict[str, Any], client: AsyncWebClient) -> str:
        user_id = str((body.get("user") or {}).get("id", ""))
        email = await self._people.email(user_id, client) if user_id else None
        return email or f"slack:{user_id}"

    async def on_feedback(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, respond: Respond
    ) -> None:
        """👍 stores "up"; 👎 stores "down" at once and opens a modal for an optional reason."""
        await ack()
        request_id = str(action.get("value", ""))[:64]
        value = "up" if action.get("action_id") == bk.ACTION_UP else "down"
        try:
            user = await self._who(body, client)
            await self._runtime.quick(self._assistant.feedback, request_id, user=user, value=value)
            if value == "down" and body.get("trigger_id"):
                await client.views_open(trigger_id=body["trigger_id"], view=bk.feedback_modal(request_id))
            else:
                await respond(
                    text="Thanks for the feedback.", response_type="ephemeral", replace_original=False
                )
        except Exception:
            rid = render.new_request_id()
            log.exception("feedback failed (request %s)", rid)
            await respond(
                text=bk.escape(render.sorry(rid)), response_type="ephemeral", replace_original=False
            )

    async def on_feedback_reason(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        request_id = str(view.get("private_metadata", ""))[:64]
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get("reason") or {}).get("text") or {}).get("value") or "")
        try:
            user = await self._who(body, client)
            await self._runtime.quick(
                self._assistant.feedback, request_id, user=user, value="down", reason=reason
            )
        except Exception:
            log.exception("storing the feedback reason failed")

    async def on_share(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: AsyncWebClient,
        context: Any = None,
    ) -> None:
        """Re-post the asker's answer for everyone in the channel, if they all may read it now."""
        await ack()
        item = self._shared.take(str(action.get("value", ""))[:64])
        if item is None:
            await _tell(respond, "That answer has expired; please ask again.")
            return
        user_id = str((body.get("user") or {}).get("id", ""))
        if user_id != item.user:
            self._shared.restore(item)
            await _tell(respond, "Only the person who asked can share this answer.")
            return
        try:
            readers = await self._members.readers(item.channel, client, Home.of(context), fresh=True)
            verdict = await self._runtime.quick(
                self._assistant.channel_verdict, item.answer, channel=item.channel, readers=readers
            )
        except Exception:
            self._shared.restore(item)
            rid = render.new_request_id()
            log.exception("share check failed (request %s)", rid)
            await _tell(respond, bk.escape(render.sorry(rid)))
            return
        if not verdict.allowed:
            self._shared.restore(item)
            reason = verdict.rule.removeprefix("channel:")
            log.info("share of %s refused: %s", item.answer.request_id, verdict.rule)
            await _tell(respond, bk.escape(render.share_refused(item.answer, reason)), icon=":lock:")
            return
        by = [bk.context(f"Shared by <@{user_id}>")] if _USER_ID.match(user_id) else []
        await respond(
            text=item.text,
            blocks=by + item.blocks,
            response_type="in_channel",
            replace_original=False,
            unfurl_links=False,
            unfurl_media=False,
        )

    async def on_home(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        a = self._assistant
        user_id = str(event["user"])
        email = await self._people.email(user_id, client)
        depts = a.departments_for(email) if email else []
        templates = a.templates_for(email) if email else []
        admin_of = [d.name for d in a.company if email and a.is_admin(email, d.name)]
        status_lines: list[str] = []
        for name in admin_of:
            for s in await self._runtime.quick(a.status, name):
                title = render.status_title(a.company.department(s.department))
                status_lines.append(render.status_line(s, title))
        usage = ""
        usage_today = getattr(a, "usage_today", None)
        if email and callable(usage_today):
            try:
                usage = render.usage_line(await self._runtime.quick(usage_today, email))
            except Exception:
                log.exception("usage_today failed")
        view = bk.home_view(
            departments=[(d.name, d.title, d.description) for d in depts],
            templates=[(d.name, t, d.templates[t].description) for d, t in templates],
            status_lines=status_lines,
            usage=usage,
        )
        await client.views_publish(user_id=user_id, view=view)


async def _tell(respond: Respond, text: str, *, icon: str = "") -> None:
    """One ephemeral line to the person who clicked; the original message stays as it was."""
    await respond(
        text=text, blocks=bk.line_blocks(text, icon=icon), response_type="ephemeral", replace_original=False
    )
