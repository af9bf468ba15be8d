"""Inbound Teams activities (the Bot Framework JSON) → the core's ``Message`` and commands.

Nothing here does I/O or imports botbuilder: activities are the plain dicts that arrive on
the wire, so a move to the Microsoft 365 Agents SDK (same wire format) reuses this module
unchanged.

Where a message came from (``conversation_kind``, ``tenant_id``, ``user_key``, ``channel_id``,
``thread_id``, ``history_key``), what it says (``strip_mentions``, ``parse_command`` over the
``COMMANDS`` the bot understands), the neutral ``to_message``, and 👍/👎 from Teams' own
feedback (``feedback_from_invoke``) or our Adaptive Card (``feedback_from_card``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.types import ChannelReaders, Message, Turn

PERSONAL, GROUP, CHANNEL = "personal", "groupChat", "channel"
FEEDBACK_KEY = "deptbot"  # marks our own Action.Submit payloads

AT_TAG_RE = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)


def conversation_kind(activity: Mapping[str, Any]) -> str:
    """ "personal", "groupChat" or "channel" (Teams' conversationType; personal if absent)."""
    conv = activity.get("conversation") or {}
    kind = conv.get("conversationType")
    if kind in (PERSONAL, GROUP, CHANNEL):
        return str(kind)
    if _channel_data(activity).get("channel"):
        return CHANNEL
    return GROUP if conv.get("isGroup") else PERSONAL


def tenant_id(activity: Mapping[str, Any]) -> str | None:
    conv = activity.get("conversation") or {}
    tenant = conv.get("tenantId") or (_channel_data(activity).get("tenant") or {}).get("id")
    return str(tenant).lower() if tenant else None


def user_key(activity: Mapping[str, Any]) -> str:
    """Stable id of the sender: the Entra object id when Teams gives one, else the channel id."""
    sender = activity.get("from") or {}
    return str(sender.get("aadObjectId") or sender.get("id") or "")


def channel_id(activity: Mapping[str, Any]) -> str | None:
    """The Teams channel ("19:…@thread.tacv2") for channel posts, the chat id for group chats."""
    kind = conversation_kind(activity)
    if kind == CHANNEL:
        chan = (_channel_data(activity).get("channel") or {}).get("id")
        return str(chan) if chan else _base_conversation(activity)
    if kind == GROUP:
        return _base_conversation(activity)
    return None


def thread_id(activity: Mapping[str, Any]) -> str | None:
    """The root message of a channel thread (a new post is its own root)."""
    if conversation_kind(activity) != CHANNEL:
        return None
    conv_id = str((activity.get("conversation") or {}).get("id") or "")
    _, _, root = conv_id.partition(";messageid=")
    return root or activity.get("replyToId") or activity.get("id")


def history_key(activity: Mapping[str, Any]) -> tuple[str, str]:
    """Follow-up history is per conversation (and thread) *and* per person."""
    return (str((activity.get("conversation") or {}).get("id") or ""), user_key(activity))


def reply_key(conversation_id: str | None, message_id: str | None) -> str | None:
    """The reply→request map's key for a message the bot posted: the conversation (without
    a channel thread's ``;messageid=``) *and* the message id. A vote finds its request only
    in the conversation where that reply was posted: message ids are not unique across
    conversations, and a request id shown in a footer must not open a vote anywhere else."""
    conversation = str(conversation_id or "").split(";", 1)[0]
    if not conversation or not message_id:
        return None
    return f"{conversation}|{message_id}"


def strip_mentions(activity: Mapping[str, Any]) -> str:
    """The text without the bot's @mention; other mentions become their plain names."""
    text = str(activity.get("text") or "")
    recipient = activity.get("recipient") or {}
    bot_id = recipient.get("id")
    bot_names = {str(recipient.get("name") or "").strip().lower()} - {""}
    for entity in activity.get("entities") or []:
        if not isinstance(entity, Mapping) or str(entity.get("type", "")).lower() != "mention":
            continue
        mentioned = entity.get("mentioned")
        if not isinstance(mentioned, Mapping) or not bot_id or mentioned.get("id") != bot_id:
            continue
        if isinstance(entity.get("text"), str) and entity["text"]:
            text = text.replace(entity["text"], " ")
        if mentioned.get("name"):
            bot_names.add(str(mentioned["name"]).strip().lower())
    # the bot's own tag even when the entity text differs (spacing, escaping); others keep their name
    text = AT_TAG_RE.sub(lambda m: " " if m.group(1).strip().lower() in bot_names else m.group(1), text)
    text = html.unescape(text).replace("\u00a0", " ")
    return " ".join(text.split())


@dataclass(frozen=True)
class Command:
    """What the person asked for: kind is help | ask | task | status | refresh | usage."""

    kind: str
    text: str = ""
    department: str | None = None
    template: str | None = None


# what the bot understands: help text, the welcome card and the app manifest list these
COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", "What I can do, and the departments you can ask"),
    ("ask", "ask [department] your question — or just type the question"),
    ("task", "task TEMPLATE your input — run a department template"),
    ("kb status", "kb status [department] — knowledge freshness"),
    ("kb refresh", "kb refresh DEPARTMENT — re-index (department admins)"),
)

# a person's own privacy requests and the admin console link: answered only in a 1:1
# chat, so listed only there
PERSONAL_COMMANDS: tuple[tuple[str, str], ...] = (
    *COMMANDS,
    ("kb my-data", "kb my-data — a private copy of what deptbot stores about you"),
    ("kb forget-me", "kb forget-me — erase your questions and feedback (asks you to confirm)"),
    ("kb admin", "kb admin — a one-time sign-in link to the admin console (department admins)"),
)

USAGE = {
    "ask": "Try: ask [department] your question",
    "task": "Try: task TEMPLATE your input (see help for templates)",
    "kb": "Try: kb status [department], kb refresh DEPARTMENT, kb admin, kb my-data or kb forget-me",
}


def parse_command(
    text: str,
    departments: Collection[str],
    templates: Mapping[str, Collection[str]] | None = None,
) -> Command:
    """``help``, ``ask [dept] q``, ``task [dept] TEMPLATE input``, ``kb status|refresh``; else a question."""
    words = text.strip().split()
    if not words:
        return Command("help")
    head = words[0].lower().lstrip("/")
    rest = words[1:]
    depts = {d.lower() for d in departments}
    if head in ("help", "?") and not rest:
        return Command("help")
    if head == "ask":
        if rest and rest[0].lower() in depts and len(rest) > 1:
            return Command("ask", " ".join(rest[1:]), department=rest[0].lower())
        return Command("ask", " ".join(rest)) if rest else Command("usage", USAGE["ask"])
    if head == "task":
        if len(rest) >= 2 and rest[0].lower() in depts:
            tpl = (templates or {}).get(rest[0].lower(), ())
            if rest[1].lower() in tpl:
                return Command(
                    "task", " ".join(rest[2:]), department=rest[0].lower(), template=rest[1].lower()
                )
        if rest:
            return Command("task", " ".join(rest[1:]), template=rest[0].lower())
        return Command("usage", USAGE["task"])
    if head == "kb" and rest:
        sub = rest[0].lower()
        if sub == "status" and len(rest) <= 2:
            return Command("status", department=rest[1].lower() if len(rest) == 2 else None)
        if sub == "refresh" and len(rest) == 2:
            return Command("refresh", department=rest[1].lower())
        return Command("usage", USAGE["kb"])
    return Command("ask", " ".join(words))


def to_message(
    activity: Mapping[str, Any],
    command: Command,
    *,
    email: str | None,
    history: tuple[Turn, ...] = (),
    readers: ChannelReaders | None = None,
) -> Message:
    """The neutral Message for an ``ask``/``task`` command. Chats others read are "in channel",
    and ``readers`` (the ``roster``'s answer) says who reads them; None there means unknown."""
    kind = conversation_kind(activity)
    shared = kind in (CHANNEL, GROUP)
    return Message(
        user_id=user_key(activity),
        text=command.text,
        platform="teams",
        email=email,
        channel=channel_id(activity),
        thread=thread_id(activity),
        department=command.department,
        template=command.template,
        history=history,
        in_channel=shared,
        channel_readers=readers if shared else None,
    )


def feedback_from_invoke(activity: Mapping[str, Any]) -> tuple[str, str] | None:
    """("up"|"down", reason) from Teams' ``message/submitAction`` feedback invoke, else None."""
    value = activity.get("value")
    if not isinstance(value, Mapping) or value.get("actionName") != "feedback":
        return None
    action = value.get("actionValue")
    if not isinstance(action, Mapping):
        return None
    reaction = {"like": "up", "dislike": "down"}.get(str(action.get("reaction")))
    if reaction is None:
        return None
    raw = action.get("feedback")
    reason = ""
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        raw = parsed
    if isinstance(raw, Mapping):
        reason = str(raw.get("feedbackText") or "")
    elif isinstance(raw, str):
        reason = raw
    return reaction, reason.strip()


def feedback_from_card(activity: Mapping[str, Any]) -> tuple[str, str] | None:
    """(request id, "up"|"down") from our Adaptive Card's Action.Submit, else None."""
    value = activity.get("value")
    if not isinstance(value, Mapping) or value.get(FEEDBACK_KEY) != "feedback":
        return None
    rid, vote = value.get("request_id"), value.get("value")
    if isinstance(rid, str) and re.fullmatch(r"[0-9a-f]{6,32}", rid) and vote in ("up", "down"):
        return rid, str(vote)
    return None


def _channel_data(activity: Mapping[str, Any]) -> Mapping[str, Any]:
    data = activity.get("channelData")
    return data if isinstance(data, Mapping) else {}


def _base_conversation(activity: Mapping[str, Any]) -> str | None:
    conv_id = (activity.get("conversation") or {}).get("id")
    return str(conv_id).split(";", 1)[0] if conv_id else None
