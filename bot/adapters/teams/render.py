"""Outbound Teams activities: the core's ``Answer`` and short texts → message activities.

Nothing here does I/O or imports botbuilder: activities are the plain dicts we send on the
wire, so a move to the Microsoft 365 Agents SDK (same wire format) reuses this module
unchanged.

``render_answer``: text with [n] markers, the AI entity with citation claims and
``feedbackLoopEnabled`` in chats; an Adaptive Card with 👍/👎 in channels. Short texts for
commands (help, status, refresh, private-answer notes). Text from documents or a model is
neutralized: no live mentions, no clickable links.

Teams' limits for citations (MicrosoftDocs/msteams-docs, bot-messages-ai-generated-content.md):
at most 20 per message (more is a 400), ``name`` ≤ 80 characters, ``abstract`` ≤ 160, at most
three ``keywords`` of ≤ 28 characters. Lengths are counted in UTF-16 code units, as a
JavaScript client counts them. An answer citing more than 20 sources (``capped``) keeps
numbered markers only for sources 1–20, so every ``[n]`` a reader sees opens its source; the
sentences citing only later sources keep their text, and those sources are listed by title
under "More sources". Channel cards follow the same rule, so both renderings agree.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from bot.adapters import render as shared
from bot.adapters.teams.inbound import AT_TAG_RE, CHANNEL, COMMANDS, FEEDBACK_KEY, PERSONAL_COMMANDS

# the conversation kinds ``render_answer(kind=)`` takes, re-exported for its callers
from bot.adapters.teams.inbound import GROUP as GROUP
from bot.adapters.teams.inbound import PERSONAL as PERSONAL
from bot.core.ports import IndexReport, IndexStatus
from bot.core.types import Answer, Citation, Status

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
TABLE_CARD_VERSION = "1.5"  # the Table element came with Adaptive Cards 1.5, the most Teams renders
MAX_CITATIONS = 20  # Teams shows at most 20 citation claims per message (more: 400)
NAME_CHARS = 80  # citation.appearance.name
ABSTRACT_CHARS = 160  # citation.appearance.abstract
MAX_KEYWORDS, KEYWORD_CHARS = 3, 28  # citation.appearance.keywords
MARKER_RE = re.compile(r"\[(\d{1,3})\]")

_MD_LINK_RE = re.compile(r"!?\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_URL_RE = re.compile(r"\b(?:https?|ftp|file|mailto|javascript|data|vbscript|tel|msteams):[^\s<>`]*", re.I)
_WWW_RE = re.compile(r"(?<![\w./`])www\.[^\s<>`]+", re.I)


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


def units(text: str) -> int:
    """Length in UTF-16 code units: how Teams' (JavaScript) limits count characters."""
    return len(text.encode("utf-16-le")) // 2


def plain(text: str, limit: int) -> str:
    """One line of plain text, at most ``limit`` UTF-16 units, for hover cards and fact values."""
    flat = " ".join(AT_TAG_RE.sub(lambda m: m.group(1), text).replace("<", "‹").replace(">", "›").split())
    if units(flat) <= limit:
        return flat
    cut, used = [], 1  # room for the ellipsis
    for ch in flat:
        used += units(ch)
        if used > limit:
            break
        cut.append(ch)
    return "".join(cut).rstrip() + "…"


def _code(url: str) -> str:
    return "`" + url.replace("`", "") + "`"


def citation_title(c: Citation) -> str:
    return f"{c.title} › {c.anchor}" if c.anchor else c.title


def citation_detail(c: Citation, department_title: str | None) -> str:
    bits = [citation_title(c)]
    if department_title:
        bits.append(department_title)
    if c.modified is not None:
        bits.append(c.dated)  # "updated 2025-03-01" or "indexed 2026-11-30"
    return " · ".join(bits)


def capped(answer: Answer) -> tuple[str, tuple[Citation, ...], tuple[Citation, ...]]:
    """(text, numbered sources, more sources): at most ``MAX_CITATIONS`` numbered sources.

    The core numbers citations 1..k by first use. Beyond Teams' 20, the markers of later
    sources are taken out of the text (the sentences stay) and those sources are returned
    separately, to be listed by title without numbers: every ``[n]`` left has its source.
    """
    ordered = sorted(answer.citations, key=lambda c: c.n)
    shown, more = tuple(ordered[:MAX_CITATIONS]), tuple(ordered[MAX_CITATIONS:])
    if not more:
        return answer.text, shown, more
    keep = {c.n for c in shown}
    text = MARKER_RE.sub(lambda m: m.group(0) if int(m.group(1)) in keep else "", answer.text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip(), shown, more


def listed_title(c: Citation, *, for_card: bool = False) -> str:
    """A source's title for a list in the text: a "[3]" in a title would read as a citation."""
    return neutralize(MARKER_RE.sub(r"(\1)", plain(citation_title(c), NAME_CHARS)), for_card=for_card)


def more_sources(more: Sequence[Citation], *, for_card: bool = False) -> str:
    """The sources beyond the numbered ones, by title (no [n]: there is no claim to open)."""
    return "More sources: " + "; ".join(listed_title(c, for_card=for_card) for c in more)


def keywords(c: Citation) -> list[str]:
    """Department and file name, each within Teams' keyword limit; no blanks, no repeats."""
    found: list[str] = []
    for raw in (c.department, PurePosixPath(c.path).name):
        word = plain(raw, KEYWORD_CHARS)
        if word and word not in found:
            found.append(word)
    return found[:MAX_KEYWORDS]


def ai_entity(citations: Sequence[Citation], *, ai_generated: bool = True) -> dict[str, Any]:
    """Teams' message entity: one claim per [n] (≤ 20: see ``capped``), plus the "AI generated"
    label only when a model wrote the text (``render.model_written``): a quote is not AI."""
    entity: dict[str, Any] = {
        "type": "https://schema.org/Message",
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
    }
    if ai_generated:
        entity["additionalType"] = ["AIGeneratedContent"]
    claims = []
    for c in citations[:MAX_CITATIONS]:
        appearance: dict[str, Any] = {
            "@type": "DigitalDocument",
            "name": plain(citation_title(c), NAME_CHARS),
            "abstract": plain(c.snippet or c.path, ABSTRACT_CHARS),
        }
        words = keywords(c)
        if words:
            appearance["keywords"] = words
        if c.url.startswith("https://"):  # Teams opens only https citation links
            appearance["url"] = c.url
        claims.append({"@type": "Claim", "position": c.n, "appearance": appearance})
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
        return card_activity(answer_card(answer), summary=plain(capped(answer)[0], 120))
    text, shown, more = capped(answer)
    tables = [p for p in shared.parts(text) if isinstance(p, shared.Table)]
    # Teams' message Markdown has no tables: they go in an Adaptive Card under the text,
    # and the text says where each one was.
    body = neutralize(_with_table_pointers(text)) if tables else neutralize(text)
    if answer.status == Status.SOURCES_ONLY and shown:
        body += "\n\n" + "\n\n".join(f"[{c.n}] {listed_title(c)}" for c in shown)
    if more:
        body += "\n\n" + more_sources(more)
    if answer.notice and answer.notice not in answer.text:
        body += "\n\n" + neutralize(answer.notice)
    label = shared.provenance(answer) if not shared.model_written(answer) else ""
    if label:
        body += f"\n\n{neutralize(label)}"
    body += f"\n\n_{neutralize(footer(answer))}_"
    activity = text_activity(body)
    if tables:
        card = {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": TABLE_CARD_VERSION,
            "body": [table_element(t) for t in tables],
        }
        activity["attachments"] = [{"contentType": CARD_TYPE, "content": card}]
    activity["channelData"] = {"feedbackLoopEnabled": True}
    if answer.status in (Status.ANSWERED, Status.SOURCES_ONLY):
        activity["entities"] = [ai_entity(shown, ai_generated=shared.model_written(answer))]
    return activity


def _with_table_pointers(text: str) -> str:
    found = shared.parts(text)
    count = sum(isinstance(p, shared.Table) for p in found)
    out: list[str] = []
    n = 0
    for part in found:
        if isinstance(part, shared.Table):
            n += 1
            out.append("_(The table is below.)_" if count == 1 else f"_(Table {n} is below.)_")
        else:
            out.append(part.text)
    return "\n\n".join(out)


def table_element(table: shared.Table) -> dict[str, Any]:
    """An Adaptive Card ``Table`` (schema 1.5): the header as its first row, one TableRow per
    row, every cell a wrapping TextBlock made inert like any card text."""

    def cell(text: str, *, bold: bool = False) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "TextBlock",
            "text": neutralize(" ".join(text.split()), for_card=True) or "–",
            "wrap": True,
        }
        if bold:
            block["weight"] = "Bolder"
        return {"type": "TableCell", "items": [block]}

    rows = [{"type": "TableRow", "cells": [cell(h, bold=True) for h in table.header]}]
    rows += [{"type": "TableRow", "cells": [cell(c) for c in r]} for r in table.rows]
    return {
        "type": "Table",
        "columns": [{"width": 1} for _ in table.header],
        "rows": rows,
        "firstRowAsHeader": True,
        "showGridLines": True,
    }


def answer_card(answer: Answer, *, voted: str | None = None) -> dict[str, Any]:
    """Channels: answer, a Sources fact list and 👍/👎 buttons carrying the request id."""
    text, shown, more = capped(answer)
    body: list[dict[str, Any]] = []
    for part in shared.parts(text) or [shared.Prose(text)]:
        if isinstance(part, shared.Table):
            body.append(table_element(part))
        else:
            body.append({"type": "TextBlock", "text": neutralize(part.text, for_card=True), "wrap": True})
    if shown:
        body.append({"type": "TextBlock", "text": "Sources", "weight": "Bolder", "spacing": "Medium"})
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {
                        "title": f"[{c.n}]",
                        # FactSet values render Markdown: neutralize, so a title cannot be a link
                        "value": neutralize(
                            plain(citation_detail(c, answer.department_title), 200), for_card=True
                        ),
                    }
                    for c in shown
                ],
            }
        )
    if more:
        body.append({"type": "TextBlock", "text": more_sources(more, for_card=True), "wrap": True})
    if answer.notice and answer.notice not in answer.text:
        body.append({"type": "TextBlock", "text": neutralize(answer.notice, for_card=True), "wrap": True})
    label = shared.provenance(answer) if not shared.model_written(answer) else ""
    if label:
        body.append(
            {"type": "TextBlock", "text": neutralize(label, for_card=True), "wrap": True, "size": "Small"}
        )
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
        "version": TABLE_CARD_VERSION if any(b["type"] == "Table" for b in body) else CARD_VERSION,
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
    lines += [f"- `{t}` — {d}" for t, d in PERSONAL_COMMANDS]
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


def status_text(
    statuses: Sequence[IndexStatus], titles: Mapping[str, str], *, details_for: Collection[str] = ()
) -> str:
    """One line per department; failed file names only for ``details_for`` (its admins):
    a file in a restricted folder is not for everyone who may ask the department."""
    lines = []
    for s in statuses:
        title = titles.get(s.department, s.department)
        if s.version is None:
            lines.append(f"- **{title}**: not indexed yet")
            continue
        built = f"built {s.built_at:%Y-%m-%d %H:%M} UTC" if s.built_at else "built"
        state = "changes pending" if s.stale else "up to date"
        line = f"- **{title}**: {s.documents} documents, {s.chunks} chunks, {built}, {state}"
        if s.failed and s.department in details_for:
            line += (
                f"; {len(s.failed)} failed ("
                + ", ".join(_failed(f.path, f.reason) for f in s.failed[:5])
                + ")"
            )
        elif s.failed:
            line += f"; {len(s.failed)} failed"
        lines.append(line)
    return "\n".join(lines) or "No departments are configured."


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
    if report.warnings:  # an audience naming a group that does not exist (admits nobody)
        named = "; ".join(_failed(w.path, w.reason) for w in report.warnings[:3])
        more = f"; and {len(report.warnings) - 3} more" if len(report.warnings) > 3 else ""
        text += f". Warning: {named}{more}"
    return text + "."


def _failed(path: str, reason: str) -> str:
    return f"{neutralize(PurePosixPath(path).name)}: {neutralize(reason)}"


def _greeting(name: str) -> str:
    """The asker's display name (or "Hi"), made inert for the chat it is posted in."""
    return neutralize(plain(name, 60) or "Hi")


def private_note(name: str, reason: str) -> str:
    """What the chat sees when an answer went to the asker 1:1, and why (``wording.private_reason``)."""
    return f"{_greeting(name)}, I sent this answer to you in a private chat because {neutralize(reason)}."


def private_preface(question: str, reason: str = "") -> str:
    """First line of a 1:1 copy: which question it answers and, for answers, why it is here."""
    line = f"You asked in a channel: “{neutralize(plain(question, 200))}”"
    return f"{line}. I'm answering here because {neutralize(reason)}." if reason else line


def private_failed_note(name: str, reason: str) -> str:
    return (
        f"{_greeting(name)}, I can't answer here because {neutralize(reason)}, "
        "and I couldn't reach you privately. Open a chat with me and ask there."
    )


def replied_privately_note(name: str) -> str:
    """What a channel or group chat sees when a denial went to the asker 1:1."""
    return f"{_greeting(name)}, I've replied to you privately."


def unreachable_note(name: str) -> str:
    """A denial that could not be sent 1:1: the chat still never sees it."""
    return f"{_greeting(name)}, I couldn't reach you privately. Open a chat with me and ask there."
