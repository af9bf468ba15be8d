"""Plain-text wording shared by the chat adapters (Slack, Teams): one sentence, one place.

Only words and numbers live here; each adapter escapes the result for its own markup.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.config import Department
from bot.core.access import CHANNEL_REASONS
from bot.core.ports import IndexReport, IndexStatus, Notice
from bot.core.types import Answer, Citation, Status

SORRY = "Sorry, I couldn't answer that just now (request {rid}). Try again in a minute."


def new_request_id() -> str:
    """Adapter-side id for failures that happen before the core assigned one."""
    return secrets.token_hex(6)


def sorry(rid: str) -> str:
    """The one friendly line a person sees for an unexpected failure (never exception text)."""
    return SORRY.format(rid=rid)


def where(c: Citation) -> str:
    """Title plus heading or page: "Time off policy › Annual vacation", "Calendar, p. 2"."""
    anchor = c.anchor.strip()
    if not anchor:
        return c.title
    if anchor.lower().startswith("page "):
        return f"{c.title}, p. {anchor[5:].strip()}"
    return f"{c.title} › {anchor}"


def updated(c: Citation) -> str:
    """ "updated Sep 14, 2026", or "indexed Nov 30, 2026" when the document has no date of
    its own (``Citation.date_kind``): a clone's mtime is never shown as an update."""
    return f"{c.date_kind} {c.modified:%b} {c.modified.day}, {c.modified:%Y}" if c.modified else ""


def source_parts(c: Citation, department_title: str) -> list[str]:
    """["Time off policy › Annual vacation", "Human Resources", "updated Sep 14, 2026"]."""
    return [p for p in (where(c), department_title, updated(c)) if p]


def department_label(answer: Answer, c: Citation) -> str:
    if c.department == answer.department and answer.department_title:
        return answer.department_title
    return c.department


def channel_restricted_note(answer: Answer) -> str:
    """The one line above an answer only its asker sees, saying why (``private_reason``)."""
    return f"Only visible to you — {private_reason(answer)}."


def share_refused(answer: Answer, reason: str) -> str:
    """ "Share in channel" was checked again at click time and refused; ``reason`` is the
    fresh verdict's ``CHANNEL_REASONS`` key."""
    why = private_reason(replace(answer, private_reason=reason))
    return f"Not shared: {why}. The answer is still visible only to you."


def private_reason(answer: Answer) -> str:
    """Why an answer asked in a shared conversation went to the asker alone, as one clause
    ("not everyone here may ask Engineering"): ``CHANNEL_REASONS[answer.private_reason]``."""
    dept = answer.department_title or answer.department or "this department"
    sentence = CHANNEL_REASONS.get(answer.private_reason) or CHANNEL_REASONS["restricted-sources"]
    return sentence.format(dept=dept)


def report_line(report: IndexReport, title: str) -> str:
    """UX.md: "HR knowledge refreshed in 41 s: 3 added, … 1 failed (old-handbook.pdf: not a valid PDF)"."""
    parts = [
        f"{report.added} added",
        f"{report.changed} changed",
        f"{report.removed} removed",
        f"{report.unchanged} unchanged",
        f"{len(report.failed)} failed",
    ]
    line = f"{title} knowledge refreshed in {report.seconds:.0f} s: " + ", ".join(parts)
    if report.failed:
        shown = report.failed[:10]
        names = "; ".join(f"{f.path.rsplit('/', 1)[-1]}: {f.reason}" for f in shown)
        more = f"; and {len(report.failed) - len(shown)} more" if len(report.failed) > len(shown) else ""
        line += f" ({names}{more})"
    if report.warnings:  # an audience naming a group that does not exist (admits nobody)
        n = len(report.warnings)
        named = "; ".join(f"{w.path.rsplit('/', 1)[-1]}: {w.reason}" for w in report.warnings[:3])
        more = f"; and {n - 3} more" if n > 3 else ""
        line += f". Warning: {named}{more}"
    return line


def progress_line(title: str, done: int, total: int) -> str:
    return f"Refreshing {title} knowledge… {done}/{total} files"


def status_title(dept: Department) -> str:
    """The department's title with its rollout state, so ``/kb status`` shows why people
    are turned away: "Finance (pilot)" or "Finance (disabled)"."""
    if not dept.enabled:
        return f"{dept.title} (disabled)"
    return f"{dept.title} (pilot)" if dept.pilot is not None else dept.title


def status_line(status: IndexStatus, title: str) -> str:
    if status.version is None:
        return f"{title}: not indexed yet"
    built = f", built {status.built_at:%Y-%m-%d %H:%M} UTC" if status.built_at else ""
    stale = " (files changed since; refresh pending)" if status.stale else ""
    failed = f", {len(status.failed)} failed file(s)" if status.failed else ""
    return f"{title}: {status.documents} documents, {status.chunks} chunks{built}{failed}{stale}"


def usage_line(usage: object) -> str:
    """Render whatever ``assistant.usage_today`` returns: a mapping of counters, or text."""
    if isinstance(usage, dict):
        return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in usage.items()) or "nothing yet"
    return str(usage)


def help_lines(departments: Sequence[str], *, command: str = "/ask") -> list[str]:
    """How to use the bot; ``departments`` are the names this person may ask."""
    names = ", ".join(departments) or "none yet"
    return [
        f"`{command} question` — ask; I pick the department (in a department channel, that one).",
        f"`{command} DEPT question` — ask one department. You can ask: {names}.",
        "`/task TEMPLATE input` — run a department template (`/task` alone lists yours).",
        "`/kb status [DEPT]` — knowledge status; `/kb refresh DEPT` — refresh (department admins).",
        "`/kb my-data` — a private copy of what I store about you; `/kb forget-me` — erase it.",
        "`/kb admin` — a one-time sign-in link to the admin console (department admins only).",
        "Mention me in a channel or message me directly; I answer in the thread with sources.",
    ]


def notice_lines(notices: Sequence[Notice]) -> list[str]:
    """Admin notices as short lines ("Nov 30 14:02 · hr: 2 files not indexed: …")."""
    return [f"{n.time:%b} {n.time.day} {n.time:%H:%M} UTC · {n.text}" for n in notices]


# ── answer structure: prose and tables ──────────────────────────────────────────────
# Answers are Markdown: paragraphs, lists ("- item", "1. item") and pipe tables (header,
# ``|---|`` separator, rows). Each surface shows a table in its own native form (terminal
# grid, Slack table block, Teams Adaptive Card Table), so the text is split here, once.


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Prose:
    text: str  # Markdown: paragraphs and lists, never a table


_TABLE_LINE = re.compile(r"^\s*\|.*\|\s*$")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(?:\|\s*:?-{1,}:?\s*)*\|?\s*$")


def table_cells(line: str) -> list[str]:
    bare = line.strip()
    bare = bare[1:] if bare.startswith("|") else bare
    bare = bare[:-1] if bare.endswith("|") and not bare.endswith("\\|") else bare
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", bare)]


def parts(text: str) -> list[Prose | Table]:
    """``text`` as prose and tables in reading order; a table needs its separator line
    (a lone line between pipes is prose). Rows are padded or cut to the header's width."""
    lines = text.split("\n")
    out: list[Prose | Table] = []
    prose: list[str] = []
    i = 0

    def flush() -> None:
        body = "\n".join(prose).strip("\n")
        if body.strip():
            out.append(Prose(body))
        prose.clear()

    while i < len(lines):
        if (
            i + 1 < len(lines)
            and _TABLE_LINE.match(lines[i])
            and _SEPARATOR.match(lines[i + 1])
            and "-" in lines[i + 1]
        ):
            header = tuple(table_cells(lines[i]))
            rows: list[tuple[str, ...]] = []
            i += 2
            while i < len(lines) and _TABLE_LINE.match(lines[i]):
                if not _SEPARATOR.match(lines[i]):
                    cells = table_cells(lines[i])
                    rows.append(tuple((cells + [""] * len(header))[: len(header)]))
                i += 1
            flush()
            out.append(Table(header, tuple(rows)))
            continue
        prose.append(lines[i])
        i += 1
    flush()
    return out


# ── who wrote the answer ───────────────────────────────────────────────────────────
# Teams' "AI generated" label and Slack's AI wording are for text a model wrote. The
# extractive generator quotes documents; saying "AI generated" over a quote is not honest.

QUOTING_GENERATORS = frozenset({"extractive"})


def model_written(answer: Answer) -> bool:
    """True when a language model wrote the answer's words (not quotes, not sources only)."""
    return (
        answer.status == Status.ANSWERED
        and bool(answer.generator)
        and answer.generator not in QUOTING_GENERATORS
        and answer.generator != "none"
    )


def provenance(answer: Answer) -> str:
    """One line on who wrote the words: "" when no answer text was written at all."""
    if answer.status != Status.ANSWERED:
        return ""
    dept = answer.department_title or answer.department or "the department's"
    if model_written(answer):
        return f"AI-generated from {dept} documents — check the sources before relying on it."
    if answer.generator in QUOTING_GENERATORS:
        return f"Quoted from {dept} documents — no AI model wrote this."
    return ""


# ── privacy self-service wording (Slack ``/kb …`` and Teams ``kb …`` say the same) ────────

PRIVACY_ELSEWHERE = "Privacy requests are handled by your deptbot administrator here."


def privacy_no_email(where: str = "") -> str:
    """Without an e-mail deptbot cannot tell which records are the person's: it refuses."""
    missing = f"an e-mail address on your {where} profile" if where else "your e-mail address"
    return f"I can't find {missing}, so I can't tell which records are yours. Ask your deptbot administrator."


def erase_warning(command: str, code: str) -> str:
    """What ``forget-me`` will do, and the one-time code that confirms it."""
    return (
        "This erases what deptbot stored about you: your questions, feedback comments, cached "
        "answers and conversation history become unrecoverable, and the audit log keeps only a "
        f"pseudonym. It cannot be undone. To confirm, send `{command} forget-me {code}` within 10 minutes."
    )


def erase_code_invalid(command: str) -> str:
    return f"That code is not valid or has expired. Send `{command} forget-me` for a new one."
