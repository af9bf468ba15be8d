"""Pure translation between Teams activities (the Bot Framework JSON) and the core's types.

Nothing here does I/O or imports botbuilder: activities are the plain dicts that arrive on
the wire and the dicts we send back, so a move to the Microsoft 365 Agents SDK (same wire
format) reuses this module unchanged.

Inbound: ``conversation_kind``, ``strip_mentions``, ``parse_command``, ``to_message``,
``feedback_from_invoke``, ``feedback_from_card``. Outbound: ``render_answer`` (text with
[n] markers, the AI entity with citation claims and ``feedbackLoopEnabled`` in chats; an
Adaptive Card in channels) and short texts for commands. Text from documents or a model
is neutralized: no live mentions, no clickable links.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from bot.core.ports import IndexReport, IndexStatus
from bot.core.types import Answer, Citation, Message, Status, Turn

PERSONAL, GROUP, CHANNEL = "personal", "groupChat", "channel"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
MAX_CITATIONS = 20  # Teams shows at most 20 citation claims per message
NAME_CHARS = 80
ABSTRACT_CHARS = 160  # Teams' limit for citation.appearance.abstract
FEEDBACK_KEY = "deptbot"  # marks our own Action.Submit payloads

_AT_RE = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_MD_LINK_RE = re.compile(r"!?\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_URL_RE = re.compile(r"\b(?:https?|ftp|file|mailto|javascript|data|vbscript|tel|msteams):[^\s<>`]*", re.I)
_WWW_RE = re.compile(r"(?<![\w./`])www\.[^\s<>`]+", re.I)


# ── inbound ─────────────────────────────────────────────────────────────────────────────


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
    text = _AT_RE.sub(lambda m: " " if m.group(1).strip().lower() in bot_names else m.group(1), text)
    text = html.unescape(text).replace("\u00a0", " ")
    return " ".join(text.split())


@dataclass(frozen=True)
class Command:
    """What the person asked for: kind is help | ask | task | status | refresh | usage."""

    kind: str
    text: str = ""
    department: str | None = None
    template: str | None = None


USAGE = {
    "ask": "Try: ask [department] your question",
    "task": "Try: task TEMPLATE your input (see help for templates)",
    "kb": "Try: kb status [department] or kb refresh DEPARTMENT",
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
) -> Message:
    """The neutral Message for an ``ask``/``task`` command. Chats others read are "in channel"."""
    kind = conversation_kind(activity)
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
        in_channel=kind in (CHANNEL, GROUP),
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


# ── outbound ────────────────────────────────────────────────────────────────────────────


def neutralize(text: str, *, for_card: bool = False) -> str:
    """Make text from documents or a model inert: no mentions, HTML or clickable links.

    Markdown links keep their label and show the target as code; bare URLs become code
    spans. ``[n]`` citation markers are left alone. In message text, ``&``, ``<`` and ``>``
    are HTML-escaped (so ``<at>`` or ``<a href>`` render literally); Adaptive Card text
    blocks do not interpret HTML, so there only angle brackets are replaced.
    """
    text = _MD_LINK_RE.sub(
        lambda m: f"{m.group(1)} ({_code(m.group(2))})" if m.group(2) else m.group(1), text
    )
    parts = re.split(r"(`[^`\n]*`)", text)  # leave existing code spans (and ours) as they are
    for i in range(0, len(parts), 2):
        part = _URL_RE.sub(lambda m: _code(m.group(0)), parts[i])
        parts[i] = _WWW_RE.sub(lambda m: _code(m.group(0)), part)
    text = "".join(parts)
    if for_card:
        return text.replace("<", "‹").replace(">", "›")
    return html.escape(text, quote=False)


def plain(text: str, limit: int) -> str:
    """One line of plain text for citation hover cards and fact values."""
    flat = " ".join(_AT_RE.sub(lambda m: m.group(1), text).replace("<", "‹").replace(">", "›").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _code(url: str) -> str:
    return "`" + url.replace("`", "") + "`"


def _channel_data(activity: Mapping[str, Any]) -> Mapping[str, Any]:
    data = activity.get("channelData")
    return data if isinstance(data, Mapping) else {}


def _base_conversation(activity: Mapping[str, Any]) -> str | None:
    conv_id = (activity.get("conversation") or {}).get("id")
    return str(conv_id).split(";", 1)[0] if conv_id else None


def citation_title(c: Citation) -> str:
    return f"{c.title} › {c.anchor}" if c.anchor else c.title


def citation_detail(c: Citation, department_title: str | None) -> str:
    bits = [citation_title(c)]
    if department_title:
        bits.append(department_title)
    if c.modified is not None:
        bits.append(f"updated {c.modified:%Y-%m-%d}")
    return " · ".join(bits)


def ai_entity(citations: Sequence[Citation]) -> dict[str, Any]:
    """Teams' AI message entity: the "AI generated" label plus one claim per [n]."""
    entity: dict[str, Any] = {
        "type": "https://schema.org/Message",
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
        "additionalType": ["AIGeneratedContent"],
    }
    claims = []
    for c in citations[:MAX_CITATIONS]:
        claims.append(
            {
                "@type": "Claim",
                "position": c.n,
                "appearance": {
                    "@type": "DigitalDocument",
                    "name": plain(citation_title(c), NAME_CHARS),
                    "abstract": plain(c.snippet or c.path, ABSTRACT_CHARS),
                    "keywords": [plain(c.department, 30), plain(str(PurePosixPath(c.path).name), 30)],
                },
            }
        )
    if claims:
        entity["citation"] = claims
    return entity


def footer(answer: Answer) -> str:
    bits = [answer.department_title or "", f"request {answer.request_id}"]
    if answer.cache_hit:
        bits.insert(1, "from cache")
    return " · ".join(b for b in bits if b)


def render_answer(answer: Answer, *, kind: str) -> dict[str, Any]:
    """The reply activity: a card in channels, AI-labelled markdown with citations elsewhere."""
    if answer.status in (Status.DENIED, Status.ERROR):
        return text_activity(neutralize(answer.text))
    if kind == CHANNEL:
        return card_activity(answer_card(answer), summary=plain(answer.text, 120))
    body = neutralize(answer.text)
    if answer.status == Status.SOURCES_ONLY and answer.citations:
        body += "\n\n" + "\n\n".join(f"[{c.n}] {neutralize(citation_title(c))}" for c in answer.citations)
    if answer.notice and answer.notice not in answer.text:
        body += "\n\n" + neutralize(answer.notice)
    body += f"\n\n_{neutralize(footer(answer))}_"
    activity = text_activity(body)
    activity["channelData"] = {"feedbackLoopEnabled": True}
    if answer.status in (Status.ANSWERED, Status.SOURCES_ONLY):
        activity["entities"] = [ai_entity(answer.citations)]
    return activity


def answer_card(answer: Answer, *, voted: str | None = None) -> dict[str, Any]:
    """Channels: answer, a Sources fact list and 👍/👎 buttons carrying the request id."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": neutralize(answer.text, for_card=True), "wrap": True},
    ]
    if answer.citations:
        body.append({"type": "TextBlock", "text": "Sources", "weight": "Bolder", "spacing": "Medium"})
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": f"[{c.n}]", "value": plain(citation_detail(c, answer.department_title), 200)}
                    for c in answer.citations[:MAX_CITATIONS]
                ],
            }
        )
    if answer.notice and answer.notice not in answer.text:
        body.append({"type": "TextBlock", "text": neutralize(answer.notice, for_card=True), "wrap": True})
    body.append(
        {
            "type": "TextBlock",
            "text": plain(footer(answer), 200),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
    }
    if voted:
        body.append(
            {
                "type": "TextBlock",
                "text": f"Thanks for your feedback ({'👍' if voted == 'up' else '👎'}).",
                "isSubtle": True,
                "size": "Small",
            }
        )
    else:
        card["actions"] = [
            {
                "type": "Action.Submit",
                "title": "👍",
                "data": {FEEDBACK_KEY: "feedback", "value": "up", "request_id": answer.request_id},
            },
            {
                "type": "Action.Submit",
                "title": "👎",
                "data": {FEEDBACK_KEY: "feedback", "value": "down", "request_id": answer.request_id},
            },
        ]
    return card


def text_activity(text: str) -> dict[str, Any]:
    return {"type": "message", "text": text, "textFormat": "markdown"}


def card_activity(card: Mapping[str, Any], *, summary: str = "") -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "content": dict(card)}],
    }
    if summary:
        activity["summary"] = summary
    return activity


COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", "What I can do, and the departments you can ask"),
    ("ask", "ask [department] your question — or just type the question"),
    ("task", "task TEMPLATE your input — run a department template"),
    ("kb status", "kb status [department] — knowledge freshness"),
    ("kb refresh", "kb refresh DEPARTMENT — re-index (department admins)"),
)


def welcome_card() -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": [
            {"type": "TextBlock", "text": "Hi, I'm deptbot", "weight": "Bolder", "size": "Medium"},
            {
                "type": "TextBlock",
                "wrap": True,
                "text": "I answer questions from your departments' own documents, with numbered "
                "sources, and only from documents you are allowed to see. In channels, mention me.",
            },
            {"type": "FactSet", "facts": [{"title": t, "value": d} for t, d in COMMANDS]},
        ],
    }


def help_text(departments: Sequence[tuple[str, str]], templates: Sequence[tuple[str, str, str]]) -> str:
    """Commands plus what *this* person can ask: (name, title) and (dept, template, description)."""
    lines = ["**deptbot** answers from department documents, with sources.", ""]
    lines += [f"- `{t}` — {d}" for t, d in COMMANDS]
    lines.append("")
    if departments:
        lines.append(
            "You can ask: " + ", ".join(f"{neutralize(title)} (`{name}`)" for name, title in departments)
        )
    else:
        lines.append("You can't ask any department yet; ask a department admin for access.")
    if templates:
        lines.append("")
        lines.append("Templates: " + "; ".join(f"`{d} {t}` — {neutralize(desc)}" for d, t, desc in templates))
    return "\n".join(lines)


def status_text(statuses: Sequence[IndexStatus], titles: Mapping[str, str]) -> str:
    lines = []
    for s in statuses:
        title = titles.get(s.department, s.department)
        if s.version is None:
            lines.append(f"- **{title}**: not indexed yet")
            continue
        built = f"built {s.built_at:%Y-%m-%d %H:%M} UTC" if s.built_at else "built"
        state = "changes pending" if s.stale else "up to date"
        line = f"- **{title}**: {s.documents} documents, {s.chunks} chunks, {built}, {state}"
        if s.failed:
            line += (
                f"; {len(s.failed)} failed ("
                + ", ".join(_failed(f.path, f.reason) for f in s.failed[:5])
                + ")"
            )
        lines.append(line)
    return "\n".join(lines) or "No departments are configured."


def progress_text(title: str, done: int, total: int) -> str:
    return f"Refreshing {title} knowledge… {done}/{total} files"


def refresh_text(title: str, report: IndexReport) -> str:
    text = (
        f"{title} knowledge refreshed in {report.seconds:.0f} s: {report.added} added, "
        f"{report.changed} changed, {report.removed} removed, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        shown = ", ".join(_failed(f.path, f.reason) for f in report.failed[:10])
        more = f", and {len(report.failed) - 10} more" if len(report.failed) > 10 else ""
        text += f" ({shown}{more})"
    return text + "."


def _failed(path: str, reason: str) -> str:
    return f"{neutralize(PurePosixPath(path).name)}: {neutralize(reason)}"


def private_note(name: str, department_title: str | None) -> str:
    who = plain(name, 60) or "Hi"
    dept = department_title or "department"
    return (
        f"{neutralize(who)}, this answer uses {neutralize(dept)} documents not everyone here can see, "
        "so I sent it to you in a private chat."
    )


def private_preface(question: str) -> str:
    return f"You asked in a channel: “{neutralize(plain(question, 200))}”"


def private_failed_note(name: str) -> str:
    return (
        f"{neutralize(plain(name, 60) or 'Hi')}, this answer uses documents not everyone here can see, "
        "and I couldn't reach you privately. Open a chat with me and ask there."
    )


def error_line(request_id: str) -> str:
    return f"Sorry, I couldn't answer that just now (request {request_id}). Try again in a minute."
