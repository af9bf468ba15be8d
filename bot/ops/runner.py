"""The scheduled jobs of ``deptbot serve``: refresh per department, evals after every
refresh, periodic alert checks and the weekly digest.

Why one class: every job touches the same three promises, and keeping them in one place is
how they are kept —

* **never overlapping per department**: a refresh and the evals after it, wherever they were
  started (schedule, ``/kb refresh``, the admin console, the knowledge watcher, ``deptbot
  index``), hold the lease ``dept:<name>`` (``bot.ops.locks``) for their whole run — every
  refresh takes it in ``KnowledgeBase.refresh`` (``RefreshGuard``), the schedule's refresh
  and the evals here; a refresh that finds it taken is refused ("already refreshing");
* **once across processes**: a scheduled occurrence is claimed (``claim_slot``) before it
  runs, so when several processes share the state folder only the first runs it;
* **off the event loop**: jobs run on apscheduler's scheduler over two daemon worker
  threads (``bot.ops.pool``); the observer hooks the core calls after a refresh only queue
  a job and return. ``stop`` is bounded: queued jobs are dropped, running ones get
  ``STOP_GRACE_SECONDS``, and what is abandoned is logged (an eval never holds up exit).

Evals after a refresh are recorded in the eval history (``bot.store.evalruns``; trigger
"schedule" after a scheduled refresh, "refresh" after any other) and compared with the run
before; a regression or a failed refresh is an alert (``bot.ops.alerts``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.config import Company, Department
from bot.ops.alerts import Alerts
from bot.ops.digest import Digest, week_label
from bot.ops.locks import LeaseLocks, department_lease
from bot.ops.pool import Abandoned, DaemonExecutor, DaemonPool
from bot.ops.schedule import describe_refresh, trigger_for
from bot.settings_schema import OpsSettings
from bot.store.alerts import AlertLog
from bot.store.evalruns import EvalRun, EvalRunStore

if TYPE_CHECKING:
    from bot.core.ports import AdminNotices, Indexer
    from bot.core.types import Answer, Message
    from bot.observability import Observer

log = logging.getLogger(__name__)

ALERT_CHECK_MINUTES = 15
WORKERS = 2  # refreshes and evals are heavy; two at a time leave the machine to the answers
STOP_GRACE_SECONDS = 5.0  # how long stop() waits for running jobs before abandoning them

Evaluate = Callable[[Department, str], EvalRun]  # (department, trigger) → the run, not yet recorded


class Operations:
    """Schedules and runs the operations jobs; also an ``Observer`` of refreshes."""

    def __init__(
        self,
        *,
        company: Callable[[], Company],
        refresher: Indexer,
        observers: list[Observer],
        evaluate: Evaluate,
        runs: EvalRunStore,
        locks: LeaseLocks,
        alerts: Alerts,
        alert_log: AlertLog,
        digest: Digest | None,
        deliver: Callable[[Department, str, str], bool],
        ops: OpsSettings,
        notices: AdminNotices | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._company = company
        self._refresher = refresher
        self._observers = observers
        self._evaluate = evaluate
        self._runs = runs
        self._locks = locks
        self._alerts = alerts
        self._alert_log = alert_log
        self._digest = digest
        self._deliver = deliver
        self._ops = ops
        self._notices = notices
        self._clock = clock
        self._scheduler: Any = None
        self._pool: DaemonPool | None = None
        self._specs: dict[str, int | str] = {}  # department → its refresh value as scheduled

    # ── lifecycle ──

    def start(self) -> Operations:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._pool = DaemonPool(WORKERS)
        scheduler = BackgroundScheduler(
            daemon=True,
            timezone=UTC,
            executors={"default": DaemonExecutor(self._pool)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
        )
        self._scheduler = scheduler
        self.sync(self._company())
        scheduler.add_job(self.check_alerts, "interval", minutes=ALERT_CHECK_MINUTES, id="ops:alerts")
        if self._ops.digest_enabled and self._digest is not None:
            scheduler.add_job(self.send_digests, trigger_for(self._ops.digest), id="ops:digest")
        scheduler.start()
        if self not in self._observers:
            self._observers.append(self)
        return self

    def stop(self, *, grace: float = STOP_GRACE_SECONDS) -> Abandoned:
        """Stop scheduling, drop queued jobs, wait up to ``grace`` seconds for running ones
        and log what was left undone; returns it. Never waits longer than ``grace``."""
        if self in self._observers:
            self._observers.remove(self)
        undispatched: list[str] = []
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            # follow-ups the scheduler has not handed to the pool yet are dropped too; read
            # them while paused (a stopped apscheduler 3 lists only jobs added before start)
            scheduler.pause()
            undispatched = [j.id for j in scheduler.get_jobs() if j.id.startswith("after:")]
            scheduler.shutdown(wait=False)  # closes the pool: queued jobs are dropped
        pool, self._pool = self._pool, None
        if pool is None:
            return Abandoned()
        left = pool.join(grace)
        left.cancelled.extend(j for j in undispatched if j not in left.cancelled and j not in left.running)
        if left.cancelled or left.running:
            log.warning(
                "operations stopped: %d queued job(s) cancelled (%s), %d still running after "
                "%.0f s abandoned (%s); a department lease they held lapses by itself",
                len(left.cancelled),
                ", ".join(left.cancelled) or "none",
                len(left.running),
                grace,
                ", ".join(left.running) or "none",
            )
        return left

    def jobs(self) -> dict[str, str]:
        """Job id → its trigger, for tests and ``deptbot check``-like views."""
        if self._scheduler is None:
            return {}
        return {job.id: str(job.trigger) for job in self._scheduler.get_jobs()}

    # ── the schedule follows the configuration ──

    def sync(self, company: Company) -> None:
        """Add, reschedule and remove refresh jobs to match ``company`` (the config watcher
        calls this after every reload)."""
        wanted = {d.name: d.refresh for d in company if d.refresh is not None and d.enabled}
        scheduler = self._scheduler
        for name in list(self._specs):
            if name not in wanted:
                if scheduler is not None and scheduler.get_job(f"refresh:{name}") is not None:
                    scheduler.remove_job(f"refresh:{name}")
                del self._specs[name]
                log.info("refresh schedule removed for %s", name)
        for name, value in wanted.items():
            assert value is not None
            if self._specs.get(name) == value:
                continue
            if scheduler is not None:
                scheduler.add_job(
                    self.scheduled_refresh,
                    trigger_for(value),
                    args=[name],
                    id=f"refresh:{name}",
                    replace_existing=True,
                )
            log.info("%s refreshes %s", name, describe_refresh(value))
            self._specs[name] = value

    @property
    def scheduled(self) -> dict[str, int | str]:
        return dict(self._specs)

    # ── jobs ──

    def _slot_seconds(self, value: int | str) -> float:
        return 60.0 * value if isinstance(value, int) else 60.0

    def scheduled_refresh(self, name: str) -> bool:
        """The scheduled job: refresh ``name`` then run its evals. False when another
        process already ran this occurrence, or the department is busy."""
        value = self._specs.get(name)
        if value is None:
            return False
        if not self._locks.claim_slot(f"refresh:{name}", self._slot_seconds(value)):
            log.info("scheduled refresh of %s already ran in another process", name)
            return False
        return self.refresh(name, trigger="schedule")

    def refresh(self, name: str, *, trigger: str) -> bool:
        """Refresh and evaluate under the department's lease (no overlap anywhere)."""
        dept = self._company().departments.get(name)
        if dept is None:
            return False
        with self._locks.held(department_lease(name), self._ops.lease_seconds) as lease:
            if lease is None:
                log.info("%s is busy (refresh or evals running elsewhere); skipping this refresh", name)
                return False
            from bot.observability import ObservedIndexer

            others = [o for o in self._observers if o is not self]  # /metrics still counts it
            try:
                ObservedIndexer(self._refresher, others).refresh(dept)
            except Exception as exc:
                log.exception("scheduled refresh of %s failed", name)
                self._alerts.refresh_failed(dept, trigger="scheduled refresh", error=type(exc).__name__)
                return False
            self._run_evals(dept, trigger)
        return True

    def evals_after_refresh(self, name: str, requested: datetime) -> bool:
        """Evals after a refresh started elsewhere (``/kb refresh``, the watcher): waits for
        the department's lease, and does nothing when a run newer than the refresh exists
        (another process, or a queued duplicate, already measured it)."""
        dept = self._company().departments.get(name)
        if dept is None or dept.evals is None:
            return False
        wait = 2.0 * self._ops.lease_seconds
        with self._locks.held(department_lease(name), self._ops.lease_seconds, wait=wait) as lease:
            if lease is None:
                log.warning("evals of %s after a refresh skipped: the department stayed busy", name)
                return False
            last = self._runs.recent(name, 1)
            if last and last[0].time >= requested:
                return False
            return self._run_evals(dept, "refresh")

    def _run_evals(self, dept: Department, trigger: str) -> bool:
        if dept.evals is None:
            return False
        previous = self._runs.recent(dept.name, 1)
        try:
            run = self._evaluate(dept, trigger)
        except Exception as exc:  # a usage problem (no eval user) or a failure: tell the admins
            log.warning("evals of %s failed (%s)", dept.name, type(exc).__name__)
            if self._notices is not None:
                self._notices.notify(
                    dept.name,
                    "evals-failed",
                    f"the evals after a refresh could not run ({type(exc).__name__}); "
                    f"run `deptbot eval --qa {dept.name}` to see why",
                )
            return False
        self._runs.record(run)
        if previous:
            self._alerts.eval_regressed(dept, previous[0], run)
        return True

    def check_alerts(self) -> list[tuple[str, str]]:
        """The periodic alert conditions for every department (one process per slot)."""
        if not self._locks.claim_slot("ops:alerts", ALERT_CHECK_MINUTES * 60.0):
            return []
        sent: list[tuple[str, str]] = []
        for dept in self._company():
            if not dept.enabled:
                continue
            try:
                sent += [(dept.name, c) for c in self._alerts.check_and_send(dept)]
            except Exception:
                log.exception("alert check for %s failed", dept.name)
        return sent

    def send_digests(self) -> list[str]:
        """The weekly digest of each department, once per ISO week (any process)."""
        if self._digest is None:
            return []
        now = self._clock()
        week = week_label(now)
        sent: list[str] = []
        for dept in self._company():
            if not dept.enabled or not self._alert_log.claim(dept.name, "digest", week):
                continue
            try:
                text = self._digest.text(dept, now)
                reached = self._deliver(dept, text, "digest")
            except Exception:
                log.exception("weekly digest for %s failed", dept.name)
                reached = False
            if reached:
                sent.append(dept.name)
            else:
                self._alert_log.give_back(dept.name, "digest", week)
        return sent

    # ── Observer: refreshes started elsewhere ──

    def answered(self, message: Message, answer: Answer | None) -> None:
        return None

    def feedback(self, value: str) -> None:
        return None

    def refreshed(self, department: str, seconds: float, ok: bool) -> None:
        """Queue the follow-up (evals, or a failure alert) and return at once: this runs in
        the thread that refreshed, which may be serving a person."""
        if self._scheduler is None:
            return
        if ok:
            dept = self._company().departments.get(department)
            if dept is None or dept.evals is None:
                return
            fn: Callable[..., Any] = self.evals_after_refresh
            args: Sequence[Any] = (department, self._clock() - timedelta(seconds=seconds))
        else:
            fn, args = self._refresh_failed, (department,)
        try:
            job = f"after:{department}:{uuid.uuid4().hex[:8]}"
            self._scheduler.add_job(fn, "date", args=list(args), id=job)
        except Exception:  # shutting down: the next refresh runs them
            log.warning("could not queue the follow-up of %s's refresh", department, exc_info=True)

    def _refresh_failed(self, name: str) -> None:
        dept = self._company().departments.get(name)
        if dept is not None:
            self._alerts.refresh_failed(dept, trigger="refresh", error="see the server log")
