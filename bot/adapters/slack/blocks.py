"""``Answer`` → Block Kit. Pure functions: every string from a model or a document is escaped.

Escaping ``&``, ``<`` and ``>`` is what makes ``<!channel>``, ``<@U…>`` and ``<https://x|y>``
inert in Slack: they become visible text, never a notification or a disguised link.
Markdown is converted to mrkdwn after escaping (its syntax uses none of those three
characters), and Slack's limits are respected (``limits``): 3,000 characters per section
text, 10 context elements, 50 blocks per message; text is cut only between escapes, and no
text object is ever empty or blank (Slack rejects the message with ``invalid_blocks``). An
answer with no words in it — a model reply of "[9]" once invalid markers are gone, or only
spaces — is shown as "no usable answer" with its sources, never as an empty section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.adapters import render
from bot.adapters.slack import limits
from bot.core.types import Answer, Citation, Status

Block = dict[str, Any]

MAX_BLOCKS = limits.MESSAGE_BLOCKS
MAX_SECTION = limits.TEXT
MAX_CONTEXT = 2000  # per context element (Slack allows more; stay well clear)
FALLBACK_CHARS = 3000
ELLIPSIS = "…"
# The core says the same ("no usable answer") when it turns such a reply into sources only.
NO_WORDS = "The model returned no usable answer."
NO_WORDS_SOURCES = NO_WORDS + " Here are the most relevant sources."
NO_WORDS_NONE = NO_WORDS + " Please try again, or ask in other words."
_MARKER = re.compile(r"\[\d+\]")

ACTION_UP = "feedback_up"
ACTION_DOWN = "feedback_down"
ACTION_SHARE = "share_answer"
FEEDBACK_VIEW = "feedback_reason"


def escape(text: str) -> str:
    """Slack's three control characters, escaped (the only escaping Slack needs)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(escaped: str, limit: int, *, more: str = "") -> str:
    """``escaped`` cut to at most ``limit`` characters, never inside an escape like ``&amp;``
    (every ``&`` in escaped text starts one); ``more`` (e.g. "…") marks a cut."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - len(more)]
    amp = cut.rfind("&", len(cut) - 5)  # the longest escape, "&amp;", is 5 characters
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + more


def has_words(text: str) -> bool:
    """A letter or digit outside ``[n]`` markers: something a person can read."""
    return re.search(r"\w", _MARKER.sub(" ", text)) is not None


_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_FENCE = re.compile(r"^```")


def mrkdwn(markdown: str) -> str:
    """Markdown from a model or document → safe mrkdwn (escaped first, then converted).

    Links keep their URL visible ("label (url)"): document text must not hide a link
    behind friendly words.
    """
    out: list[str] = []
    in_code = False
    for line in escape(markdown).split("\n"):
        if _FENCE.match(line.strip()):
            in_code = not in_code
            out.append("```")
            continue
        if in_code:
            out.append(line)
            continue
        if line.startswith("&gt; "):
            line = ">" + line[4:]  # blockquote is harmless; keep it
        heading = _HEADING.match(line)
        if heading:
            out.append(f"*{heading.group(1).strip('*')}*")
            continue
        line = _BULLET.sub(lambda m: m.group(1) + "• ", line)
        line = _LINK.sub(
            lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})", line
        )
        line = _ITALIC.sub(lambda m: f"_{m.group(1)}_", line)
        line = _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", line)
        out.append(line)
    if in_code:
        out.append("```")
    return "\n".join(out)


def split_text(text: str, limit: int = MAX_SECTION) -> list[str]:
    """Split at paragraph, line, then word boundaries so each piece fits ``limit``."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 3:
            cut = window.rfind("\n")
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut < limit // 3:
            cut = len(clip(window, limit))  # never cut an escape like "&amp;" in half
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces  # [] for blank text: no empty section


def section(text: str) -> Block:
    """One section; ``text`` must have something visible (ValueError otherwise: Slack
    rejects a blank section with ``invalid_blocks``, so it is a bug to build one)."""
    if not text.strip():
        raise ValueError("a Slack section needs visible text")
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION, more=ELLIPSIS)}}


def sections(text: str) -> list[Block]:
    """``text`` (already mrkdwn) as as many sections as it needs; [] when blank."""
    return [section(p) for p in split_text(text)]


def context(*texts: str) -> Block:
    """A context block of the non-blank ``texts`` (at most 10); callers pass at least one."""
    elements = [{"type": "mrkdwn", "text": clip(t, MAX_CONTEXT, more=ELLIPSIS)} for t in texts if t.strip()]
    if not elements:
        raise ValueError("a Slack context block needs visible text")
    return {"type": "context", "elements": elements[:10]}


def source_line(c: Citation, answer: Answer) -> str:
    parts = [escape(p) for p in render.source_parts(c, render.department_label(answer, c))]
    url = c.url or (c.path if c.path.startswith(("https://", "http://")) else "")
    if url and "|" not in url and ">" not in url:
        parts[0] = f"<{escape(url)}|{parts[0]}>"
    return f"[{c.n}] " + " · ".join(parts)


def sources_block(answer: Answer) -> Block | None:
    if not answer.citations:
        return None
    lines = [source_line(c, answer) for c in answer.citations]
    chunks: list[str] = ["*Sources*"]
    for line in lines:
        if len(chunks[-1]) + 1 + len(line) > MAX_CONTEXT:
            chunks.append(clip(line, MAX_CONTEXT, more=ELLIPSIS))
        else:
            chunks[-1] += "\n" + line
    return context(*chunks)


def footer(answer: Answer) -> str:
    parts = [escape(answer.department_title or answer.department or "deptbot")]
    if answer.status in (Status.ANSWERED, Status.SOURCES_ONLY):
        n = len(answer.citations)
        parts.append(f"{n} source{'s' if n != 1 else ''}")
        parts.append(f"confidence {answer.confidence:.2f}")
    if answer.generator:
        parts.append(escape(answer.model or answer.generator))
    parts.append(f"request {escape(answer.request_id)}")
    return " · ".join(parts)


def feedback_actions(request_id: str, *, share: bool = False) -> Block:
    elements: list[Block] = [
        _button("👍", ACTION_UP, request_id, "Helpful"),
        _button("👎", ACTION_DOWN, request_id, "Not helpful"),
    ]
    if share:
        elements.append(_button("Share in channel", ACTION_SHARE, request_id))
    return {"type": "actions", "block_id": f"feedback:{request_id}", "elements": elements}


def _button(text: str, action_id: str, value: str, label: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if label:
        button["accessibility_label"] = label
    return button


# Slack's table block (docs.slack.dev, reference/block-kit/blocks/table-block): at most 100
# rows of at most 20 cells, cells of type ``raw_text`` or ``rich_text`` with at least one
# character, and one table per message (a second is refused with ``only_one_table_allowed``).
# Cells are ``rich_text`` (as in Slack's own SDK example, slackapi/node-slack-sdk#2426):
# SDK maintainers reported ``raw_text`` cells failing server-side when the block shipped.
# A table beyond those limits, or a second one, is shown as aligned text in a code block.
TABLE_ROWS = limits.TABLE_ROWS
TABLE_CELLS = limits.TABLE_CELLS
TABLE_CHARS = 10_000  # all cells together: a guard, so a huge table cannot crowd out the rest
EMPTY_CELL = "–"


def table_cell(text: str, *, bold: bool = False) -> Block:
    """A cell of plain text (a rich_text ``text`` element is never read as a mention or a
    link; ‹ › stand in for < > all the same, as in every other quoted text)."""
    flat = " ".join(text.split()).replace("<", "‹").replace(">", "›") or EMPTY_CELL
    element: Block = {"type": "text", "text": flat}
    if bold:
        element["style"] = {"bold": True}
    return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [element]}]}


def cell_text(cell: Block) -> str:
    """The words of a cell ``table_cell`` built (for tests, limits and fallbacks)."""
    sections = cell.get("elements", [])
    return "".join(e.get("text", "") for section in sections for e in section.get("elements", []))


def table_block(table: render.Table) -> Block | None:
    """A native table, or None when it would break one of Slack's table limits."""
    width = len(table.header)
    if not 1 <= width <= TABLE_CELLS or len(table.rows) + 1 > TABLE_ROWS:
        return None
    rows = [[table_cell(c, bold=True) for c in table.header]]
    rows += [[table_cell(c) for c in r] for r in table.rows]
    if sum(len(cell_text(cell)) for row in rows for cell in row) > TABLE_CHARS:
        return None
    return {"type": "table", "column_settings": [{"is_wrapped": True}] * width, "rows": rows}


def preformatted(table: render.Table) -> Block:
    """A table as aligned text in a code block, within one section's 3,000 characters."""
    from bot.adapters.console import text_table

    grid = escape(text_table(table, 100))
    return section(clip(f"```\n{grid}", MAX_SECTION - 4, more=ELLIPSIS) + "\n```")


def body_blocks(text: str) -> list[Block]:
    """The answer's text: prose as sections, the first table as a table block, others (and
    any table past Slack's limits) as code blocks."""
    blocks: list[Block] = []
    tabled = False
    for part in render.parts(text):
        if isinstance(part, render.Prose):
            blocks += sections(mrkdwn(part.text))
            continue
        native = None if tabled else table_block(part)
        if native is not None:
            blocks.append(native)
            tabled = True
        else:
            blocks.append(preformatted(part))
    return blocks


def answer_text(answer: Answer) -> str:
    """What the answer says, in words: its text, or — when the text has no words in it
    (blank, or only ``[n]`` markers) — one sentence saying so."""
    if has_words(answer.text):
        return answer.text
    if answer.status == Status.DENIED:
        return answer.text if answer.text.strip() else "You can't ask that here."
    if answer.status == Status.ERROR:
        return answer.text if answer.text.strip() else render.sorry(answer.request_id)
    return NO_WORDS_SOURCES if answer.citations else NO_WORDS_NONE


def answer_blocks(answer: Answer, *, note: str = "", share: bool = False, reserve: int = 0) -> list[Block]:
    """The whole reply: answer sections, notes, sources, footer, feedback (≤ 50 blocks,
    less ``reserve`` a caller will put in front, e.g. "Shared by")."""
    text = answer_text(answer)
    if answer.status in (Status.DENIED, Status.ERROR):
        icon = ":no_entry:" if answer.status == Status.DENIED else ":warning:"
        return [section(f"{icon} {mrkdwn(text)}"), context(f"request {escape(answer.request_id)}")]
    head: list[Block] = []
    if note.strip():
        head.append(context(f":lock: {escape(note)}"))
    tail: list[Block] = []
    if has_words(answer.text) and answer.low_confidence and answer.status == Status.ANSWERED:
        tail.append(context(":grey_question: Low confidence — check the sources before relying on this."))
    if answer.notice.strip() and answer.notice not in text:
        tail.append(context(escape(answer.notice)))
    sources = sources_block(answer)
    if sources:
        tail.append(sources)
    tail.append(context(footer(answer), escape(render.provenance(answer))))
    tail.append(feedback_actions(answer.request_id, share=share))
    room = MAX_BLOCKS - reserve - len(head) - len(tail)
    body = body_blocks(text)
    if len(body) > room:
        cut = context("… the answer was too long for one Slack message; see the sources.")
        body = [*body[: room - 1], cut]
    return head + body + tail


def fallback_text(answer: Answer, *, note: str = "") -> str:
    """Notification/accessibility text: escaped, short, never blank, never cut in an escape."""
    text = (note.strip() + "\n" if note.strip() else "") + answer_text(answer)
    return clip(escape(text), FALLBACK_CHARS, more=ELLIPSIS)


def line_blocks(text: str, *, icon: str = "", rid: str = "") -> list[Block]:
    """A one-line reply (help, errors, progress); ``text`` is already safe mrkdwn."""
    blocks = [section(f"{icon} {text}".strip())]
    if rid:
        blocks.append(context(f"request {escape(rid)}"))
    return blocks


def feedback_modal(request_id: str) -> Block:
    return {
        "type": "modal",
        "callback_id": FEEDBACK_VIEW,
        "private_metadata": request_id,
        "title": {"type": "plain_text", "text": "Feedback"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            section("Thanks — what was wrong with the answer? (optional)"),
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "text",
                    "multiline": True,
                    "max_length": 1000,
                },
            },
        ],
    }


def home_view(
    *,
    departments: Sequence[tuple[str, str, str]],
    templates: Sequence[tuple[str, str, str]],
    status_lines: Sequence[str] = (),
    usage: str = "",
) -> Block:
    """App Home: (name, title, description) departments; (dept, template, description)."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "deptbot"}},
        section("Ask in a DM, mention me in a channel, or use `/ask`, `/task` and `/kb`."),
        {"type": "divider"},
        section("*Departments you can ask*"),
    ]
    dept_lines = [f"• *{escape(t)}* (`{escape(n)}`) — {escape(d)}" for n, t, d in departments]
    blocks += sections("\n".join(dept_lines) or "None yet — ask an admin.")[:10]
    blocks.append(section("*Templates you can run*"))
    tpl_lines = [f"• `/task {escape(d)} {escape(t)} …` — {escape(desc)}" for d, t, desc in templates]
    blocks += sections("\n".join(tpl_lines) or "None.")[:10]
    if usage.strip():
        blocks += [section("*Your usage today*"), context(escape(usage))]
    status = sections("\n".join(escape(s) for s in status_lines))[:10]
    if status:
        blocks += [section("*Knowledge status* (departments you administer)"), *status]
    return {"type": "home", "blocks": blocks[: limits.VIEW_BLOCKS]}
