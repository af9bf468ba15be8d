"""Slack payloads → neutral values. Pure functions: no I/O, no Slack client, easy to test.

Slack's own formatting in incoming text (``<@U1>``, ``<#C1|name>``, ``<https://x|label>``,
``&amp;``) is turned into plain words before it reaches the core, and events the bot must
not answer (bots, itself, edits, deletions, joins) are filtered here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.types import ChannelReaders, Classification, Message, Turn

HISTORY_TURNS = 10  # earlier messages of a thread passed to the core
HISTORY_CHARS = 1500  # per earlier message
ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}
ANSWER_EVENT = "deptbot_answer"  # message metadata event type on everything the bot posts
_ANGLE = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True)
class Incoming:
    """An event the bot should answer: who, where, and the plain question."""

    user: str
    channel: str
    ts: str
    thread: str  # thread to reply in (the message itself when it started none)
    text: str  # plain text, bot mention removed
    is_dm: bool
    in_thread: bool  # the message was itself a reply inside a thread
    mentions_bot: bool
    # Slack's id of the event that delivered it (the envelope's, not the message's): every
    # reply carries it in its message metadata, so a replica taking the event over from one
    # that died can find the reply already posted. "" when unknown (nothing to look up).
    event_id: str = ""

    @property
    def in_channel(self) -> bool:
        return not self.is_dm


def plain_text(text: str, *, bot_user_id: str | None = None) -> str:
    """Slack mrkdwn from a person → plain text; the bot's own mention is dropped."""

    def repl(m: re.Match[str]) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "" if bot_user_id and target[1:] == bot_user_id else "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            name = label or target[1:].split("^")[0]
            return name if name.startswith("@") else "@" + name
        if target.startswith("mailto:"):
            return label or target[7:]
        if label and label != target:
            return f"{label} ({target})"
        return target

    out = _ANGLE.sub(repl, text or "")
    out = html.unescape(out)
    return re.sub(r"[ \t]+", " ", out).strip()


def incoming(event: Mapping[str, Any], *, bot_user_id: str | None) -> Incoming | None:
    """The question in an ``app_mention`` or ``message`` event, or None when it is not one.

    Ignored: other bots and the bot itself, edits, deletions, joins and every other
    subtype, hidden messages, and events without a user or channel. Group DMs (``mpim``)
    are conversations like channels, not DMs.
    """
    if event.get("type") not in ("app_mention", "message"):
        return None
    if event.get("subtype") not in ANSWERABLE_SUBTYPES or event.get("hidden"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if event.get("bot_id") or event.get("bot_profile") or not user or user == bot_user_id:
        return None
    if not isinstance(user, str) or not isinstance(channel, str) or not isinstance(ts, str):
        return None
    raw = event.get("text") if isinstance(event.get("text"), str) else ""
    thread = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
    is_dm = _is_dm(event.get("channel_type"), channel)
    return Incoming(
        user=user,
        channel=channel,
        ts=ts,
        thread=thread or ts,
        text=plain_text(str(raw), bot_user_id=bot_user_id),
        is_dm=is_dm,
        in_thread=bool(thread) and thread != ts,
        mentions_bot=bool(bot_user_id) and f"<@{bot_user_id}" in str(raw),
    )


def _is_dm(channel_type: object, channel: str) -> bool:
    """A one-to-one DM with the bot (no member check needed). ``message`` events say which
    kind of conversation they come from (``channel_type``: channel, group, im, mpim, or the
    legacy 1:1 ``app_home``) and that decides; only without it (``app_mention``) does a
    ``D…`` id count. A group DM (``mpim``) is never a DM: every member must be allowed."""
    if isinstance(channel_type, str) and channel_type:
        return channel_type in ("im", "app_home")
    return channel.startswith("D")


def should_answer_message(inc: Incoming, *, thread_known: bool) -> bool:
    """``message`` events: every DM; in channels only follow-ups in a thread we answered.

    A channel message that mentions the bot also arrives as ``app_mention``; that event
    answers it, so the ``message`` copy is skipped (exactly one reply).
    """
    if inc.is_dm:
        return True
    return inc.in_thread and thread_known and not inc.mentions_bot


def answer_metadata(label: Classification, request_id: str = "", event_id: str = "") -> dict[str, Any]:
    """Slack message metadata for what the bot posts: the label travels with the message,
    and the id of the event it answers (``answers_event``). Only our own ids: message
    metadata is readable by every app and member of the workspace, so nothing personal."""
    payload = {"label": label.label, **({"request_id": request_id} if request_id else {})}
    if event_id:
        payload["event_id"] = event_id
    return {"event_type": ANSWER_EVENT, "event_payload": payload}


def for_event(metadata: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    """``metadata`` (from ``answer_metadata``) naming ``event_id`` as the event it answers."""
    payload = metadata.get("event_payload")
    if not event_id or not isinstance(payload, Mapping):
        return dict(metadata)
    return {**metadata, "event_payload": {**payload, "event_id": event_id}}


def from_us(message: Mapping[str, Any], *, bot_user_id: str | None, bot_id: str | None = None) -> bool:
    """Posted by this bot. Our bot token's posts carry our bot user as ``user``; a bot message
    without a ``user`` (incoming webhooks, legacy integrations, some other apps) is ours only
    when its ``bot_id`` is our own (``auth.test``). Anything unknown is not ours (fail closed:
    another poster must not pass for us, whether to skip a reply or to lend its label)."""
    if not message.get("bot_id"):
        return False
    user = message.get("user")
    if user:
        return bool(bot_user_id) and user == bot_user_id
    return bool(bot_id) and message.get("bot_id") == bot_id


def answers_event(
    messages: Iterable[Mapping[str, Any]],
    event_id: str,
    *,
    bot_user_id: str | None,
    bot_id: str | None = None,
) -> bool:
    """True when one of ``messages`` (``conversations.replies`` with ``include_all_metadata``)
    is this bot's reply to ``event_id``: posted by the bot (``from_us``: another app could
    copy our event type, not our ids) and naming the event in its metadata."""
    for m in messages:
        if not from_us(m, bot_user_id=bot_user_id, bot_id=bot_id):
            continue
        meta = m.get("metadata")
        if not isinstance(meta, Mapping) or meta.get("event_type") != ANSWER_EVENT:
            continue
        payload = meta.get("event_payload")
        if isinstance(payload, Mapping) and payload.get("event_id") == event_id:
            return True
    return False


def posted_label(message: Mapping[str, Any]) -> Classification | None:
    """The label ``answer_metadata`` put on one of our messages, or None when unreadable."""
    meta = message.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("event_type") != ANSWER_EVENT:
        return None
    payload = meta.get("event_payload")
    label = payload.get("label") if isinstance(payload, Mapping) else None
    try:
        return Classification.parse(label) if isinstance(label, str) else None
    except KeyError:
        return None


def history(
    messages: Iterable[Mapping[str, Any]],
    *,
    bot_user_id: str | None,
    before_ts: str,
    limit: int = HISTORY_TURNS,
    unlabelled: Classification = Classification.RESTRICTED,
    bot_id: str | None = None,
) -> tuple[Turn, ...]:
    """Earlier turns of a thread (``conversations.replies``), oldest first, bounded.

    The bot's own messages carry the label they were posted with (message metadata); one
    without a readable label (posted before labels existed, a streamed placeholder never
    finished, metadata stripped) counts as ``unlabelled``: restricted, in every channel
    (fail closed — a channel's department label says nothing about what one answer cited).
    """
    turns: list[Turn] = []
    for m in sorted(messages, key=lambda m: _ts(str(m.get("ts", "")))):
        ts = str(m.get("ts", ""))
        if not ts or _ts(ts) >= _ts(before_ts):
            continue
        mine = from_us(m, bot_user_id=bot_user_id, bot_id=bot_id)
        if m.get("bot_id") and not mine:
            continue
        text = plain_text(str(m.get("text") or ""), bot_user_id=bot_user_id)
        if text:
            if mine:
                label = posted_label(m)  # not ``or``: PUBLIC is 0
                if label is None:
                    label = unlabelled
                turns.append(Turn(role="assistant", text=text[:HISTORY_CHARS], label=label))
            else:
                turns.append(Turn(role="user", text=text[:HISTORY_CHARS]))
    return tuple(turns[-limit:])


def _ts(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return 0.0


def to_message(
    inc: Incoming,
    *,
    email: str | None,
    turns: tuple[Turn, ...] = (),
    readers: ChannelReaders | None = None,
) -> Message:
    """``readers``: who can read the conversation (``members.ChannelMembers``); in a channel
    None means unknown, and the core then keeps the answer with the asker."""
    return Message(
        user_id=inc.user,
        text=inc.text,
        platform="slack",
        email=email,
        channel=inc.channel,
        thread=inc.thread,
        history=turns,
        in_channel=inc.in_channel,
        channel_readers=readers if inc.in_channel else None,
    )


# ── slash commands ────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Command:
    """A parsed slash command; ``action`` is help | ask | task | status | refresh | unknown."""

    action: str
    department: str | None = None
    template: str | None = None
    text: str = ""


def command_is_dm(payload: Mapping[str, Any]) -> bool:
    channel = str(payload.get("channel_id") or "")
    return payload.get("channel_name") == "directmessage" or channel.startswith("D")


def parse_command(command: str, text: str, departments: Sequence[str]) -> Command:
    """``/ask [dept] question``, ``/task [dept] TEMPLATE input``, ``/kb status|refresh [DEPT]``."""
    text = plain_text(text)
    words = text.split()
    first = words[0].lower() if words else ""
    names = {d.lower() for d in departments}
    if command == "/ask":
        if first in ("", "help", "?", "-h", "--help") and len(words) <= 1:
            return Command("help")
        if first in names and len(words) > 1:
            return Command("ask", department=first, text=text.split(None, 1)[1])
        return Command("ask", text=text)
    if command == "/task":
        if not words or first in ("help", "list"):
            return Command("task")
        if first in names and len(words) > 1:
            rest = text.split(None, 2)
            return Command(
                "task", department=first, template=rest[1].lower(), text=rest[2] if len(rest) > 2 else ""
            )
        rest = text.split(None, 1)
        return Command("task", template=first, text=rest[1] if len(rest) > 1 else "")
    if command == "/kb":
        dept = words[1].lower() if len(words) > 1 else None
        if first in ("", "status"):
            return Command("status", department=dept)
        if first == "refresh":
            return Command("refresh", department=dept)
        return Command("help")
    return Command("unknown", text=text)
