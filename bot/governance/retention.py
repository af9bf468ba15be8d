"""Retention: delete what is older than policy says, in small batches, and say so.

The policy is the ``[retention]`` settings: days per kind of data, 0 = forever. Each
store that holds such data implements ``Purgeable``; this module owns only the schedule,
the mapping from policy kinds to the stores' own record kinds, and the audit row that
records every run (so "what was deleted, when, under which policy" is itself in the
tamper-evident log). A store that does not hold a kind either returns 0 or raises
ValueError; both mean "not mine".

Audit rows are purged by ``SqliteAuditLog.purge_older_than``: oldest first, each batch
writing a signed checkpoint of the last deleted row so ``deptbot audit verify`` resumes
from it (see that method).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.core.ports import AuditEntry, AuditLog

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.governance.chain import Checkpoint

log = logging.getLogger(__name__)

# Policy kind (``retention.<kind>_days``) → the record kinds stores know it by.
KINDS: Mapping[str, tuple[str, ...]] = {
    "text": ("text", "history", "replies"),  # audit questions; Teams thread history and answer cards
    "feedback": ("feedback",),
    "cache": ("cache",),
    "usage": ("usage",),
    "audit": ("audit",),  # last: the rows above are keyed to audit rows
}
DAY = 24 * 3600


@runtime_checkable
class Purgeable(Protocol):
    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Delete ``kind`` records older than ``cutoff``, ``batch`` per transaction;
        returns how many. 0 or ValueError for a kind the store does not hold."""
        ...


@runtime_checkable
class Countable(Protocol):
    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        """How many ``purge_older_than`` would delete now (``--dry-run``)."""
        ...


@dataclass
class Outcome:
    kind: str
    days: int
    cutoff: datetime
    purged: int = 0
    uncounted: list[str] = field(default_factory=list)  # dry run: stores that cannot count
    failed: list[str] = field(default_factory=list)  # "Store: ErrorClass"


def policy_from(section: Any) -> dict[str, int]:
    """``{kind: days}`` from the ``[retention]`` settings (model or mapping)."""
    get = section.get if isinstance(section, Mapping) else lambda k: getattr(section, k)
    return {kind: int(get(f"{kind}_days") or 0) for kind in KINDS}


class Retention:
    """One run deletes every expired kind from every store, then writes one audit row."""

    def __init__(
        self,
        *,
        stores: Sequence[object],
        policy: Mapping[str, int],
        audit: AuditLog | None = None,
        batch: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stores = [s for s in stores if isinstance(s, Purgeable)]
        self.policy = {k: int(policy.get(k, 0)) for k in KINDS}
        self.audit = audit
        self.batch = batch
        self.clock = clock

    def run(self, *, dry_run: bool = False) -> list[Outcome]:
        now = self.clock()
        out: list[Outcome] = []
        for kind, names in KINDS.items():
            days = self.policy[kind]
            if days <= 0:
                continue
            result = Outcome(kind, days, now - timedelta(days=days))
            for store in self.stores:
                for name in names:
                    self._one(store, name, result, dry_run=dry_run)
            out.append(result)
        if out and not dry_run and self.audit is not None:
            self._record(now, out)
        return out

    def _one(self, store: object, name: str, result: Outcome, *, dry_run: bool) -> None:
        who = type(store).__name__
        try:
            if dry_run:
                if isinstance(store, Countable):
                    result.purged += store.count_older_than(name, result.cutoff)
                elif who not in result.uncounted:
                    result.uncounted.append(who)
                return
            assert isinstance(store, Purgeable)
            result.purged += store.purge_older_than(name, result.cutoff, batch=self.batch)
        except ValueError:
            return  # not a kind this store holds
        except Exception as exc:  # one store failing never stops the others
            log.error("retention: purging %s from %s failed (%s)", name, who, type(exc).__name__)
            result.failed.append(f"{who}: {type(exc).__name__}")

    def _record(self, now: datetime, out: list[Outcome]) -> None:
        counts = {o.kind: o.purged for o in out}
        failed = sorted({f for o in out for f in o.failed})
        entry = AuditEntry(
            request_id=f"retention-{uuid.uuid4().hex[:12]}",
            time=now,
            user="deptbot",
            platform="system",
            decision="system",
            rule="retention "
            + json.dumps({o.kind: o.days for o in out}, sort_keys=True),  # the policy (days)
            status="retention",
            route_reason=json.dumps(counts, sort_keys=True),  # what was deleted, per kind
            error="; ".join(failed)[:500],
        )
        try:
            self.audit.record(entry)  # type: ignore[union-attr]
        except Exception as exc:
            log.error("retention: could not record the run in the audit log (%s)", type(exc).__name__)


def describe(out: Sequence[Outcome], *, dry_run: bool) -> list[str]:
    """One line per kind, for ``deptbot retention run``."""
    if not out:
        return ["Retention is off: every retention.*_days setting is 0 (keep forever)."]
    verb = "would delete" if dry_run else "deleted"
    lines = []
    for o in out:
        when = f"{o.cutoff:%Y-%m-%d %H:%M} UTC"
        line = f"{o.kind:<9} older than {o.days} days (before {when}): {verb} {o.purged:,}"
        if o.uncounted:
            line += f" (not counted: {', '.join(o.uncounted)})"
        if o.failed:
            line += f" — FAILED: {', '.join(o.failed)}"
        lines.append(line)
    return lines


# ── the daily schedule (``deptbot serve``) ───────────────────────────────────────────

Claim = Callable[[str, float], bool]
"""``(job, slot_seconds) → True`` for the first caller in the current slot, in any process
sharing the store (``bot.ops.locks.LeaseLocks.claim_slot``)."""

RETENTION_JOB = "daily:retention"
CHECKPOINT_JOB = "daily:audit-checkpoint"
COPY_WATCH_JOB = "daily:old-copies"  # bot.store.pg_copy.OldCopyWatch


def daily_jobs(
    *,
    retention: Retention | None,
    checkpoint: Callable[[], Checkpoint] | None,
    every: float = DAY,
    claim: Claim | None = None,
    old_copies: Callable[[], object] | None = None,
) -> dict[str, Callable[[], bool]]:
    """Scheduler job id → the job; each returns whether it ran. ``old_copies``: the
    watch over copies ``deptbot db copy`` left (``bot.store.pg_copy.OldCopyWatch.run``),
    its own daily job.

    Every process of a deployment schedules these (each ``deptbot serve``, each replica),
    but a purge and a chain-head checkpoint are facts about the shared records: run by
    every replica they would write one retention audit row and one ``log`` checkpoint per
    replica per day, and race each other's purge batches. So each run first claims its
    ``every``-long slot (UTC days by default) through ``claim`` — the scheduler's job slots
    (``bot.ops.locks``: ``<state>/ops.sqlite3``, or PostgreSQL with
    ``DEPTBOT_DATABASE_URL``) — and only the first process in a slot runs it. Without
    ``claim`` (a lone process) every occurrence runs."""
    jobs: dict[str, Callable[[], bool]] = {}
    if retention is not None:
        jobs["deptbot-retention"] = _once(retention.run, RETENTION_JOB, every, claim, "retention")
    if checkpoint is not None:
        _checkpoint_log.setLevel(logging.INFO)  # shown without -v: it is meant to be shipped

        def log_head() -> None:
            _checkpoint_log.info("%s", checkpoint().line())

        jobs["deptbot-audit-checkpoint"] = _once(log_head, CHECKPOINT_JOB, every, claim, "audit checkpoint")
    if old_copies is not None:
        jobs["deptbot-old-copies"] = _once(old_copies, COPY_WATCH_JOB, every, claim, "old copy watch")
    return jobs


def start_daily(
    *,
    retention: Retention | None,
    checkpoint: Callable[[], Checkpoint] | None,
    first_delay: float = 60.0,
    every: float = DAY,
    claim: Claim | None = None,
    old_copies: Callable[[], object] | None = None,
) -> BackgroundScheduler | None:
    """Run retention and/or log the audit chain head every ``every`` seconds, the first
    time ``first_delay`` seconds after start (not during start-up indexing), each once per
    slot across processes when ``claim`` is given (``daily_jobs``). None when there is
    nothing to do; call ``shutdown()`` on what it returns."""
    jobs = daily_jobs(
        retention=retention, checkpoint=checkpoint, every=every, claim=claim, old_copies=old_copies
    )
    if not jobs:
        return None
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(daemon=True)
    first = datetime.now(UTC) + timedelta(seconds=first_delay)
    for job_id, fn in jobs.items():
        scheduler.add_job(
            fn,
            "interval",
            seconds=every,
            next_run_time=first,
            max_instances=1,
            coalesce=True,
            id=job_id,
        )
    scheduler.start()
    return scheduler


_checkpoint_log = logging.getLogger("bot.governance.checkpoint")


def _once(
    fn: Callable[[], object], job: str, every: float, claim: Claim | None, what: str
) -> Callable[[], bool]:
    """``fn`` run at most once per slot (``claim``), never raising: a failure is logged by
    its type only and the job is tried again at the next occurrence; the server keeps
    serving."""

    def run() -> bool:
        try:
            if claim is not None and not claim(job, every):
                log.info("%s already ran in another process for this period", what)
                return False
            fn()
            return True
        except Exception as exc:
            log.error("%s job failed (%s)", what, type(exc).__name__)
            release = getattr(claim, "release", None)
            if release is not None:  # the day is given back: the next occurrence tries again
                try:
                    release(job)
                except Exception as again:
                    log.error("%s: could not give its slot back (%s)", what, type(again).__name__)
            return False

    return run
