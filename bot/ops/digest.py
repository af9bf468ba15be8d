"""The weekly digest per department: how the last seven days went, in one short message to
the department's admin channel (or its admins).

What it holds: questions asked, the share answered, 👍 share with counts, knowledge gaps as
counts ("I don't know" answers and 👎 votes, pointing at the console's gaps page), AI cost
against the department's daily budget times seven, and the eval trend. Never question text
or document titles: a digest may be read in a channel by people who cannot read every
document, and a topic word can say who asked what.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.config import Department
from bot.ops.alerts import pct
from bot.ops.signals import AuditSignals
from bot.settings_schema import Budgets
from bot.store.evalruns import EvalRun

WEEK = timedelta(days=7)
SCORES = (("source_hit", "source hit"), ("fact_hit", "fact hit"), ("refusal", "refusal"))


class UsageReport(Protocol):
    def report(
        self, *, user: str | None = None, department: str | None = None, since: Any = None
    ) -> list[dict[str, Any]]: ...


def week_label(now: datetime) -> str:
    """ISO week ("2026-W02"): the period one digest covers, for its once-only claim."""
    year, week, _ = now.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def eval_trend(runs: Sequence[EvalRun]) -> str:
    """One line from the newest runs (newest first): last result and how it moved."""
    if not runs:
        return "no eval runs yet (add an evals: block to the department file to get them)"
    last = runs[0]
    verdict = "passed" if last.passed else "below its thresholds (" + "; ".join(last.below) + ")"
    scores = ", ".join(
        f"{label} {pct(getattr(last, attr))}" for attr, label in SCORES if getattr(last, attr) is not None
    )
    line = f"last run {last.time:%Y-%m-%d} ({last.trigger}) {verdict}" + (f": {scores}" if scores else "")
    if len(runs) > 1:
        oldest = runs[-1]
        moves = [
            f"{label} {pct(getattr(oldest, attr))} → {pct(getattr(last, attr))}"
            for attr, label in SCORES
            if getattr(oldest, attr) is not None
            and getattr(last, attr) is not None
            and getattr(oldest, attr) != getattr(last, attr)
        ]
        line += f"; over {len(runs)} runs: " + ("; ".join(moves) if moves else "steady")
    return line


@dataclass
class Digest:
    signals: AuditSignals
    usage: UsageReport | None
    budgets: Budgets
    runs: Callable[[str], Sequence[EvalRun]]  # department → runs of the week, newest first

    def text(self, dept: Department, now: datetime) -> str:
        start = now - WEEK
        out = self.signals.outcomes(dept.name, start, now)
        votes = self.signals.votes(dept.name, start, now)
        lines = [f"📊 {dept.title}: weekly digest, {start:%Y-%m-%d} – {now:%Y-%m-%d} (UTC)"]
        if not self.signals.available:
            lines.append("• Questions, satisfaction and gaps: see the admin console (/kb admin)")
            lines.append("• " + self._cost(dept, start))
            lines.append("• Evals: " + eval_trend(self.runs(dept.name)))
            return "\n".join(lines)
        lines.append(
            f"• Questions: {out.questions}; answered {pct(out.answered_share)} ({out.answered}), "
            f'"I don\'t know" {out.dont_know}, denied {out.denied}, errors {out.error}'
        )
        lines.append(
            f"• Satisfaction: 👍 {pct(votes.up_share)} ({votes.up} 👍, {votes.down} 👎)"
            if votes.total
            else "• Satisfaction: no votes this week"
        )
        lines.append(
            f'• Knowledge gaps: {out.dont_know} questions answered "I don\'t know" and {votes.down} 👎 — '
            "see the Knowledge gaps page in the admin console (/kb admin) for what to write"
        )
        lines.append("• " + self._cost(dept, start))
        lines.append("• Evals: " + eval_trend(self.runs(dept.name)))
        return "\n".join(lines)

    def _cost(self, dept: Department, start: datetime) -> str:
        if self.usage is None:
            return "AI cost: not recorded"
        rows = self.usage.report(department=dept.name, since=start)
        cost = sum(float(r.get("cost") or 0.0) for r in rows)
        tokens = sum(int(r.get("input_tokens") or 0) + int(r.get("output_tokens") or 0) for r in rows)
        limit = self.budgets.department_daily_cost * 7
        budget = " (no cost budget)"
        if limit > 0:
            budget = f" of a ${limit:,.2f} weekly budget ({cost / limit:.0%})"
        return f"AI cost: ${cost:,.2f}{budget}, {tokens:,} tokens"
