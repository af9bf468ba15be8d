"""Plain-text wording shared by the chat adapters (Slack, Teams): one sentence, one place.

Only words and numbers live here; each adapter escapes the result for its own markup.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace

from bot.core.access import CHANNEL_REASONS
from bot.core.ports import IndexReport, IndexStatus, Notice
from bot.core.types import Answer, Citation

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
    return f"updated {c.modified:%b} {c.modified.day}, {c.modified:%Y}" if c.modified else ""


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
    """"Share in channel" was checked again at click time and refused; ``reason`` is the
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
    return line


def progress_line(title: str, done: int, total: int) -> str:
    return f"Refreshing {title} knowledge… {done}/{total} files"


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
        "Mention me in a channel or message me directly; I answer in the thread with sources.",
    ]


def notice_lines(notices: Sequence[Notice]) -> list[str]:
    """Admin notices as short lines ("Nov 30 14:02 · hr: 2 files not indexed: …")."""
    return [f"{n.time:%b} {n.time.day} {n.time:%H:%M} UTC · {n.text}" for n in notices]
