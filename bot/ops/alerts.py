"""Alert conditions for department admins, each told at most once per department per day.

Conditions (names are what ``AlertLog`` keeps):

* ``eval-regression`` — after a refresh, the department's evals got worse than the run
  before: it stopped clearing its thresholds, or a score fell by ``REGRESSION_DROP`` or more;
* ``refresh-failed`` — a refresh (scheduled, ``/kb refresh`` or the watcher's) raised;
* ``dont-know-rate`` — the share of "I don't know" in the last 24 hours rose by
  ``ops.rate_jump`` or more over the trailing ``ops.baseline_days`` (only with at least
  ``ops.min_questions`` questions in the last 24 hours, so 1 of 2 never alerts);
* ``thumbs-down`` — the 👎 share of votes, the same way (``ops.min_votes`` votes);
* ``score-drift`` — retrieval scores' PSI, last day vs the baseline, above
  ``ops.psi_threshold`` (``bot.ops.psi``; ``ops.psi_min_samples`` answers on each side);
* ``budget-cost`` / ``budget-tokens`` — today's department spend crossed
  ``ops.budget_share`` of a ``[budgets]`` daily department limit.

Every text says what happened, how much, since when and what to do, in counts and shares
only — no question text, no document text — because it may be posted to a channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.config import Department
from bot.ops.psi import psi_of_shares
from bot.ops.signals import AuditSignals
from bot.settings_schema import Budgets, OpsSettings
from bot.store.alerts import AlertLog
from bot.store.evalruns import SCORES, EvalRun, dropped

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)


class Deliverer(Protocol):
    def deliver(self, dept: Department, text: str, *, kind: str) -> bool: ...


class Spending(Protocol):
    def spent(self, *, day: date, department: str | None = None) -> tuple[int, float]: ...


@dataclass(frozen=True)
class Alert:
    department: str
    condition: str
    text: str


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def regressions(previous: EvalRun, current: EvalRun) -> list[str]:
    """What got worse from ``previous`` to ``current`` ("fact hit 90% → 60%"), [] if nothing."""
    labels = dict(SCORES)
    out = [f"{labels[f]} {pct(before)} → {pct(after)}" for f, before, after in dropped(previous, current)]
    if previous.passed and not current.passed:
        out.append("now below its thresholds (" + "; ".join(current.below) + ")")
    return out


def _day(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


class Alerts:
    """Checks the conditions for a department and sends each one at most once a day."""

    def __init__(
        self,
        *,
        signals: AuditSignals,
        usage: Spending | None,
        log_: AlertLog,
        delivery: Deliverer,
        ops: OpsSettings,
        budgets: Budgets,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._signals = signals
        self._usage = usage
        self._log = log_
        self._delivery = delivery
        self._ops = ops
        self._budgets = budgets
        self._clock = clock

    # ── sending ──

    def send(self, dept: Department, alert: Alert) -> bool:
        """Post ``alert`` unless this condition was already told today (any process)."""
        day = _day(self._clock())
        if not self._log.claim(dept.name, alert.condition, day):
            return False
        try:
            reached = self._delivery.deliver(dept, alert.text, kind=alert.condition)
        except Exception:
            log.exception("posting the %s alert for %s failed", alert.condition, dept.name)
            reached = False
        if not reached:  # a notice was recorded; try posting again at the next check
            self._log.give_back(dept.name, alert.condition, day)
        else:
            log.info("alert %s sent for %s", alert.condition, dept.name)
        return reached

    # ── event conditions ──

    def refresh_failed(self, dept: Department, *, trigger: str, error: str) -> bool:
        now = self._clock()
        text = (
            f"⚠️ {dept.title}: the knowledge refresh failed ({trigger}, {now:%Y-%m-%d %H:%M} UTC; {error}).\n"
            "People are still answered from the last good index, which may now be out of date.\n"
            "What to do: run `deptbot check` and `deptbot index "
            f"{dept.name}` on the server to see the problem, or use /kb refresh {dept.name} after fixing it."
        )
        return self.send(dept, Alert(dept.name, "refresh-failed", text))

    def eval_regressed(self, dept: Department, previous: EvalRun, current: EvalRun) -> bool:
        worse = regressions(previous, current)
        if not worse:
            return False
        failing = len(current.failed_cases)
        cases = f" Failing cases: {failing} of {current.cases}." if failing else ""
        text = (
            f"⚠️ {dept.title}: answer quality fell after the {current.trigger} at "
            f"{current.time:%Y-%m-%d %H:%M} UTC — {'; '.join(worse)} "
            f"(previous run {previous.time:%Y-%m-%d %H:%M} UTC).{cases}\n"
            "What to do: open the Evals page in the admin console (/kb admin) to see which cases fail, "
            f"check the documents changed since the previous run, or run `deptbot eval --qa {dept.name}`."
        )
        return self.send(dept, Alert(dept.name, "eval-regression", text))

    # ── periodic conditions ──

    def check(self, dept: Department) -> list[Alert]:
        """The periodic conditions that hold now (sending is separate: ``check_and_send``)."""
        now = self._clock()
        recent_start = now - WINDOW
        base_start = recent_start - timedelta(days=self._ops.baseline_days)
        found: list[Alert] = []
        if not self._signals.available:
            return self._budget(dept, now)
        since = f"{recent_start:%Y-%m-%d %H:%M} UTC"
        baseline = f"the previous {self._ops.baseline_days} days"

        recent, base = (
            self._signals.outcomes(dept.name, recent_start, now),
            self._signals.outcomes(dept.name, base_start, recent_start),
        )
        r, b = recent.dont_know_rate, base.dont_know_rate
        asked = recent.answered + recent.dont_know
        enough = asked >= self._ops.min_questions
        if r is not None and b is not None and enough and r - b >= self._ops.rate_jump:
            found.append(
                Alert(
                    dept.name,
                    "dont-know-rate",
                    f'⚠️ {dept.title}: "I don\'t know" answers rose to {pct(r)} in the last 24 hours '
                    f"({recent.dont_know} of {asked} questions since {since}), "
                    f"from {pct(b)} over {baseline}.\n"
                    "What to do: open the Knowledge gaps page in the admin console (/kb admin) to see what "
                    "people ask that the documents do not answer, and add or update those pages; if a "
                    "folder was moved or removed, check the last refresh.",
                )
            )

        votes_now, votes_base = (
            self._signals.votes(dept.name, recent_start, now),
            self._signals.votes(dept.name, base_start, recent_start),
        )
        r, b = votes_now.down_share, votes_base.down_share
        enough = votes_now.total >= self._ops.min_votes
        if r is not None and b is not None and enough and r - b >= self._ops.rate_jump:
            found.append(
                Alert(
                    dept.name,
                    "thumbs-down",
                    f"⚠️ {dept.title}: 👎 rose to {pct(r)} of votes in the last 24 hours ({votes_now.down} of "
                    f"{votes_now.total} since {since}), from {pct(b)} over {baseline}.\n"
                    "What to do: read the 👎 reasons on the Feedback page of the admin console (/kb admin) "
                    "and correct or add the documents the answers came from.",
                )
            )

        bins_now = self._signals.score_bins(dept.name, recent_start, now)
        bins_base = self._signals.score_bins(dept.name, base_start, recent_start)
        n_now, n_base = sum(bins_now), sum(bins_base)
        least = self._ops.psi_min_samples
        if n_now >= least and n_base >= least:
            value = psi_of_shares([c / n_base for c in bins_base], [c / n_now for c in bins_now])
            if value > self._ops.psi_threshold:
                found.append(
                    Alert(
                        dept.name,
                        "score-drift",
                        f"⚠️ {dept.title}: retrieval scores shifted — population stability index "
                        f"{value:.2f} (above {self._ops.psi_threshold:.2f}) for {n_now} answers "
                        f"since {since} against {n_base} over {baseline}.\n"
                        "What to do: check whether documents were removed, moved or re-indexed with another "
                        "embedder, or whether people started asking about something new (Knowledge gaps "
                        "page, /kb admin).",
                    )
                )

        found.extend(self._budget(dept, now))
        return found

    def _budget(self, dept: Department, now: datetime) -> list[Alert]:
        if self._usage is None:
            return []
        tokens, cost = self._usage.spent(day=now.astimezone(UTC).date(), department=dept.name)
        share = self._ops.budget_share
        out: list[Alert] = []
        checks = (
            ("budget-cost", cost, self._budgets.department_daily_cost, lambda v: f"${v:,.2f}"),
            (
                "budget-tokens",
                float(tokens),
                float(self._budgets.department_daily_tokens),
                lambda v: f"{v:,.0f} tokens",
            ),
        )
        for condition, used, limit, fmt in checks:
            if limit > 0 and used >= share * limit:
                out.append(
                    Alert(
                        dept.name,
                        condition,
                        f"⚠️ {dept.title}: today's AI spend is {fmt(used)} of its {fmt(limit)} daily budget "
                        f"({used / limit:.0%}, since 00:00 UTC). At 100 % new questions get the "
                        "extractive answer or a budget refusal until 00:00 UTC.\n"
                        "What to do: check `deptbot usage --department "
                        f"{dept.name}` for who and what is spending, or raise [budgets] department_daily_"
                        f"{'cost' if condition == 'budget-cost' else 'tokens'} if the use is expected.",
                    )
                )
        return out

    def check_and_send(self, dept: Department) -> list[str]:
        """Check and send; the conditions actually sent now."""
        sent: list[str] = []
        for alert in self.check(dept):
            if self.send(dept, alert):
                sent.append(alert.condition)
        return sent
