"""Delivering an operations message (alert or digest) to a department's admins.

Where it goes, in order:

1. the department's ``alerts:`` destination — ``alerts.slack`` (a channel id, posted with
   ``chat.postMessage``) and/or ``alerts.teams`` (a conversation id, a proactive message);
2. otherwise each admin directly: on Slack ``users.lookupByEmail`` → ``conversations.open``
   → ``chat.postMessage`` (when the app lacks ``im:write``, ``chat.postMessage`` to the
   user id, which Slack delivers to the app's Messages tab); on Teams through the personal
   conversation reference the Teams adapter stored when the admin last talked to the bot
   (found from the admin's e-mail the same way a privacy request finds it: the Teams user
   linked to the e-mail, or answered under its audited requests — in PostgreSQL when
   ``DEPTBOT_DATABASE_URL`` is set, so any replica reaches admins who talked to another);
3. nothing reached anyone → an admin notice (``/kb status``, ``deptbot check``), so the
   message is never lost silently.

Messages are plain sentences built by ``bot.ops.alerts``/``digest``: counts, shares and
what to do, never question or document text. Slack payloads are checked against Slack's
published limits (``bot.adapters.slack.limits``) before sending.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.adapters.slack import limits
from bot.config import Department
from bot.core.ports import AdminNotices

if TYPE_CHECKING:
    from bot.admin.auditread import ConsoleRecords
    from bot.store.teams_state import TeamsStore

log = logging.getLogger(__name__)

SLACK_DEFAULT_API = "https://slack.com/api/"


class Channel(Protocol):
    """One platform's way to reach a conversation or a person."""

    def to_conversation(self, conversation: str, text: str) -> bool: ...

    def to_person(self, email: str, text: str) -> bool: ...


def slack_escape(text: str) -> str:
    """Slack mrkdwn control characters (docs: "Escaping text")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(channel: str, text: str) -> dict[str, Any]:
    """A ``chat.postMessage`` payload: the text as sections (≤ 3,000 characters each, at most
    50 blocks) and the first line as the notification fallback."""
    body = slack_escape(text)
    chunks: list[str] = []
    current = ""
    for line in body.split("\n"):
        while len(line) > limits.TEXT:
            chunks.append(line[: limits.TEXT])
            line = line[limits.TEXT :]
        if current and len(current) + 1 + len(line) > limits.TEXT:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current.strip():
        chunks.append(current)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks if c.strip()]
    fallback = next((ln for ln in body.split("\n") if ln.strip()), "deptbot")[: limits.TEXT]
    blocks = blocks[: limits.MESSAGE_BLOCKS]
    return {"channel": channel, "text": fallback, "blocks": blocks, "unfurl_links": False}


class SlackChannel:
    """Slack Web API through slack_sdk's ``WebClient`` (sync: runs in scheduler threads)."""

    def __init__(self, *, token: str, api_url: str = SLACK_DEFAULT_API, timeout: int = 15) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        self._client = WebClient(token=token, base_url=api_url.rstrip("/") + "/", timeout=timeout)
        self._client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackChannel | None:
        token = env.get("SLACK_BOT_TOKEN", "").strip()
        if not token.startswith("xoxb-"):
            return None
        return cls(token=token, api_url=env.get("SLACK_API_URL", "").strip() or SLACK_DEFAULT_API)

    def _post(self, channel: str, text: str) -> bool:
        from slack_sdk.errors import SlackApiError

        payload = slack_payload(channel, text)
        found = limits.problems("chat.postMessage", payload)
        if found:  # our own bug: never send what Slack would refuse
            log.error("operations message breaks Slack limits: %s", "; ".join(found))
            return False
        try:
            self._client.chat_postMessage(**payload)
            return True
        except SlackApiError as exc:
            log.warning("Slack refused an operations message (%s)", exc.response.get("error"))
            return False
        except Exception as exc:
            log.warning("could not reach Slack for an operations message (%s)", type(exc).__name__)
            return False

    def to_conversation(self, conversation: str, text: str) -> bool:
        return self._post(conversation, text)

    def to_person(self, email: str, text: str) -> bool:
        from slack_sdk.errors import SlackApiError

        try:
            user = self._client.users_lookupByEmail(email=email)["user"]["id"]
        except SlackApiError as exc:
            log.info("no Slack user for an admin (%s)", exc.response.get("error"))
            return False
        except Exception as exc:
            log.warning("could not reach Slack to find an admin (%s)", type(exc).__name__)
            return False
        channel = str(user)
        try:
            channel = str(self._client.conversations_open(users=user)["channel"]["id"])
        except SlackApiError as exc:  # without im:write Slack still delivers to the user id
            log.info("conversations.open refused (%s); posting to the user id", exc.response.get("error"))
        except Exception as exc:
            log.warning("could not open a Slack DM (%s)", type(exc).__name__)
            return False
        return self._post(channel, text)


class TeamsChannel:
    """Proactive Teams messages through botbuilder's ``CloudAdapter.continue_conversation``
    (the Teams adapter's outbound path), authenticated like the Teams endpoint.

    Where the references live: ``open_state`` opens the Teams state (``open_teams_state``:
    PostgreSQL with ``DEPTBOT_DATABASE_URL``, where every replica's references are, else
    ``teams-state.sqlite3``), and ``records`` reads the audit (``records_for``: the same
    backend). Built from ``state_dir``/``audit_path`` alone, both are the state folder's
    SQLite files.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        state_dir: Path | None = None,
        audit_path: Path | None = None,
        service_url: str = "",
        auth: Any = None,
        open_state: Callable[[], TeamsStore | None] | None = None,
        records: ConsoleRecords | None = None,
    ) -> None:
        from bot.adapters.teams.auth import TeamsSettings

        self._teams = TeamsSettings.from_env(env)
        if open_state is None or records is None:
            if state_dir is None:
                raise ValueError("TeamsChannel needs a state folder or open_state and records")
            folder = Path(state_dir)
            if open_state is None:
                from bot.store.teams_state import TeamsState

                open_state = lambda: TeamsState.in_state_dir(folder)  # noqa: E731
            if records is None:
                from bot.admin.auditread import SqliteRecords

                records = SqliteRecords(folder, audit_file=Path(audit_path) if audit_path else None)
        self._open_state = open_state
        self._records = records
        self._service_url = service_url
        self._auth = auth

    @classmethod
    def from_settings(cls, settings: Any, *, auth: Any = None) -> TeamsChannel | None:
        """None when this server has no Teams conversation state (it never talked on Teams);
        with ``DEPTBOT_DATABASE_URL`` the shared state always exists (any replica may have)."""
        from bot.admin.auditread import records_for
        from bot.store.backend import database_for
        from bot.store.teams_state import TeamsState, open_teams_state

        try:
            shared = database_for(settings) is not None
            if not shared and not (settings.state_dir / TeamsState.FILE).exists():
                return None
            return cls(
                env=settings.env,
                service_url=settings.values.ops.teams_service_url,
                auth=auth,
                open_state=lambda: open_teams_state(settings, only_existing=True),
                records=records_for(settings),
            )
        except Exception as exc:  # Teams settings incomplete: the endpoint refuses to start too
            log.warning("Teams operations messages are off (%s)", type(exc).__name__)
            return None

    # ── references ──

    def _request_ids(self, email: str) -> list[str]:
        """The person's newest Teams requests in the audit (older installs linked no people)."""
        with self._records.audit() as reader:
            if reader is None:
                return []
            rows = reader.execute(
                'select request_id from requests where "user" = ? and platform = ?'
                " order by seq desc limit 200",
                [email.lower(), "teams"],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def _reference_for(self, email: str) -> dict[str, Any] | None:
        """The personal conversation reference of the Teams user who is ``email``: linked to
        the e-mail (``teams_people``), or answered under one of its audited requests."""
        from bot.store.teams_state import PersistentReferences

        state = self._open_state()
        if state is None:
            return None
        try:
            users = set(state.users_of(email, self._request_ids(email)))
            if not users:
                return None
            keys = [k for (k,) in state.read("SELECT key FROM teams_references ORDER BY at DESC", ())]
            refs = PersistentReferences(state)
            for key in keys:
                parts = json.loads(key)
                if isinstance(parts, list) and parts and parts[-1] in users:
                    found = refs.get(tuple(parts))
                    if found is not None:
                        return found
            return None
        finally:
            state.close()

    def _any_reference(self) -> dict[str, Any] | None:
        from bot.store.teams_state import PersistentReferences

        state = self._open_state()
        if state is None:
            return None
        try:
            for (key,) in state.read("SELECT key FROM teams_references ORDER BY at DESC LIMIT 20", ()):
                found = PersistentReferences(state).get(tuple(json.loads(key)))
                if found is not None:
                    return found
            return None
        finally:
            state.close()

    # ── sending ──

    def _send(self, reference: Mapping[str, Any], text: str) -> bool:
        from botbuilder.core import TurnContext
        from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
        from botbuilder.schema import ConversationReference

        from bot.adapters.teams import render
        from bot.adapters.teams.outbound import to_activity

        auth = self._auth or ConfigurationBotFrameworkAuthentication(self._teams.bot_framework_config())
        adapter = CloudAdapter(auth)
        sent: list[str] = []

        async def post(turn: TurnContext) -> None:
            ref = TurnContext.get_conversation_reference(turn.activity)
            ref.activity_id = None
            activity = to_activity(render.text_activity(text))
            TurnContext.apply_conversation_reference(activity, ref)
            responses = await turn.adapter.send_activities(turn, [activity])
            sent.extend(r.id for r in responses if r is not None and r.id)

        async def run() -> None:
            found = ConversationReference().deserialize(dict(reference))
            await adapter.continue_conversation(found, post, bot_app_id=self._teams.app_id or None)

        try:
            asyncio.run(run())
        except Exception as exc:
            log.warning("could not post a Teams operations message (%s)", type(exc).__name__)
            return False
        return bool(sent)

    def to_conversation(self, conversation: str, text: str) -> bool:
        try:
            known = self._any_reference()
        except Exception as exc:  # the state's database is down: ops.teams_service_url may do
            log.warning("could not read Teams conversation references (%s)", type(exc).__name__)
            known = None
        service_url = self._service_url or (known or {}).get("serviceUrl")
        if not service_url:
            log.warning("no Teams service URL known for an alerts conversation; set ops.teams_service_url")
            return False
        tenant = self._teams.app_tenant_id or ((known or {}).get("conversation") or {}).get("tenantId")
        own = f"28:{self._teams.app_id}" if self._teams.app_id else "deptbot"
        bot = (known or {}).get("bot") or {"id": own}
        reference = {
            "bot": bot,
            "conversation": {"id": conversation, "isGroup": True, "tenantId": tenant},
            "channelId": "msteams",
            "serviceUrl": service_url,
        }
        return self._send(reference, text)

    def to_person(self, email: str, text: str) -> bool:
        try:
            reference = self._reference_for(email)
        except Exception as exc:
            log.warning("could not read Teams conversation references (%s)", type(exc).__name__)
            return False
        return reference is not None and self._send(reference, text)


@dataclass
class Delivery:
    """Resolves a department's destination and posts; see the module docstring."""

    slack: Channel | None
    teams: Channel | None
    notices: AdminNotices | None
    admins_of: Callable[[Department], Sequence[str]]

    def deliver(self, dept: Department, text: str, *, kind: str) -> bool:
        """True when the message reached a channel or at least one admin (else a notice)."""
        target = dept.alerts
        reached = False
        if target is not None and (target.slack or target.teams):
            if target.slack and self.slack is not None:
                reached |= self.slack.to_conversation(target.slack, text)
            if target.teams and self.teams is not None:
                reached |= self.teams.to_conversation(target.teams, text)
        else:
            for email in self.admins_of(dept):
                for channel in (self.slack, self.teams):
                    if channel is not None and channel.to_person(email, text):
                        reached = True
                        break  # one copy per admin
        if not reached and self.notices is not None:
            first = text.split("\n", 1)[0]
            self.notices.notify(dept.name, f"ops-{kind}", f"{first} (could not be posted to the admins)")
        return reached
