"""Lease locks in the state folder (``<state>/ops.sqlite3``), so that with several
``deptbot serve`` processes sharing one state folder each scheduled job runs in one of them.

Why leases and not file locks: a job runs for minutes (a refresh, then evals), processes may
be on different hosts over a shared volume where ``flock`` semantics vary, and a process
that crashes mid-job must not block the job forever. A lease row names its holder and when
it expires; taking it is one ``BEGIN IMMEDIATE`` transaction (SQLite serialises writers, so
two processes cannot both see it free), the holder renews it while the job runs, releases
it at the end, and a crashed holder's lease simply lapses after ``seconds``.

Each acquisition gets its own token, so the lock also keeps two threads of one process
apart (jobs never overlap per department, whichever thread or process starts them). A
thread that already holds a lease and asks again (the schedule's refresh reaching
``KnowledgeBase.refresh``, which takes the same lease) is let through: ``held`` is
re-entrant per thread, never per process.

``RefreshGuard`` is the rule every refresh follows (``KnowledgeBase.refresh``): the lease
``dept:<name>`` is tried once, never waited for, and it is taken *before* the index's own
file lock (``bot.knowledge.index.locked``). Whoever waits for a lease (evals after a
refresh) holds no index lock, so the two locks cannot deadlock.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.store.db import open_db

log = logging.getLogger(__name__)

FILE = "ops.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    taken REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_runs (
    job TEXT NOT NULL,
    slot INTEGER NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (job, slot)
);
"""
KEEP_RUNS_SECONDS = 40 * 86400
REFRESH_LEASE_SECONDS = 300.0  # renewed every third of it while a refresh runs

_mine = threading.local()  # (database path, lease name) pairs this thread holds


def department_lease(name: str) -> str:
    """The lease a department's refresh and evals hold (one name, whoever takes it)."""
    return f"dept:{name}"


def _held_here() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] | None = getattr(_mine, "held", None)
    if found is None:
        found = _mine.held = set()
    return found


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires: float


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaseLocks:
    """Named leases shared by every process using the same state folder; thread-safe."""

    def __init__(self, *, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = open_db(self.path, _SCHEMA, "the operations database")

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, clock: Callable[[], float] = time.time) -> LeaseLocks:
        return cls(path=Path(state_dir) / FILE, clock=clock)

    def _tx(self, step: Callable[[sqlite3.Connection], bool]) -> bool:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = step(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def acquire(self, name: str, seconds: float) -> Lease | None:
        """The lease on ``name`` for ``seconds``, or None while someone else holds it."""
        holder, now = _holder(), self._clock()

        def take(conn: sqlite3.Connection) -> bool:
            row = conn.execute("select holder, expires from leases where name = ?", (name,)).fetchone()
            if row is not None and row[1] > now:
                return False
            conn.execute(
                "insert or replace into leases (name, holder, expires, taken) values (?, ?, ?, ?)",
                (name, holder, now + seconds, now),
            )
            return True

        return Lease(name, holder, now + seconds) if self._tx(take) else None

    def renew(self, lease: Lease, seconds: float) -> Lease | None:
        """Extend a lease still held; None when it lapsed and someone else took it."""
        expires = self._clock() + seconds

        def extend(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "update leases set expires = ? where name = ? and holder = ?",
                (expires, lease.name, lease.holder),
            )
            return cur.rowcount == 1

        return Lease(lease.name, lease.holder, expires) if self._tx(extend) else None

    def release(self, lease: Lease) -> None:
        def drop(conn: sqlite3.Connection) -> bool:
            conn.execute("delete from leases where name = ? and holder = ?", (lease.name, lease.holder))
            return True

        self._tx(drop)

    def claim_slot(self, job: str, slot_seconds: float) -> bool:
        """True for the first caller (any process) in the current ``slot_seconds`` window of
        ``job``. Processes fire the same schedule a little apart (clocks, start times); the
        lease alone would let the second run it again right after the first finished."""
        now = self._clock()
        slot = int(now // max(slot_seconds, 1.0))

        def take(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "insert or ignore into job_runs (job, slot, time) values (?, ?, ?)", (job, slot, now)
            )
            conn.execute("delete from job_runs where time < ?", (now - KEEP_RUNS_SECONDS,))
            return cur.rowcount == 1

        return self._tx(take)

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None: free or lapsed)."""
        with self._lock:
            row = self._conn.execute("select holder, expires from leases where name = ?", (name,)).fetchone()
        return str(row[0]) if row is not None and row[1] > self._clock() else None

    @contextmanager
    def held(
        self, name: str, seconds: float, *, wait: float = 0.0, poll: float = 0.5
    ) -> Iterator[Lease | None]:
        """Hold ``name`` for the ``with`` block, renewed every ``seconds / 3`` by a daemon
        thread; yields None (and runs nothing of its own) when it could not be taken within
        ``wait`` seconds (of real time: a waiting job really waits). Re-entrant: inside a
        ``with`` that holds ``name`` on this thread, it yields that lease again at once."""
        key = (str(self.path.resolve()), name)
        mine = _held_here()
        if key in mine:
            yield Lease(name, "re-entered", self._clock() + seconds)
            return
        deadline = time.monotonic() + wait
        lease = self.acquire(name, seconds)
        while lease is None and time.monotonic() < deadline:
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            lease = self.acquire(name, seconds)
        if lease is None:
            yield None
            return
        stop = threading.Event()
        current = [lease]

        def keep() -> None:
            while not stop.wait(seconds / 3):
                try:
                    renewed = self.renew(current[0], seconds)
                except Exception:
                    log.warning("could not renew the %s lease", name, exc_info=True)
                    continue
                if renewed is None:
                    log.warning("the %s lease lapsed while its job ran", name)
                    return
                current[0] = renewed

        renewer = threading.Thread(target=keep, name=f"lease-{name}", daemon=True)
        renewer.start()
        mine.add(key)
        try:
            yield lease
        finally:
            mine.discard(key)
            stop.set()
            renewer.join(timeout=5)
            try:
                self.release(current[0])
            except Exception:  # it lapses by itself
                log.warning("could not release the %s lease", name, exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class RefreshGuard:
    """The no-overlap rule of ``KnowledgeBase.refresh``: ``hold(name)`` yields True while
    this caller holds the department's lease, False when a refresh or the evals after one
    run elsewhere (another thread or process sharing the state folder). The database is
    opened on the first refresh, so a process that never refreshes writes no file."""

    def __init__(self, state_dir: Path, *, seconds: float = REFRESH_LEASE_SECONDS) -> None:
        self.state_dir = Path(state_dir)
        self.seconds = seconds
        self._locks: LeaseLocks | None = None
        self._opening = threading.Lock()

    def _leases(self) -> LeaseLocks:
        with self._opening:
            if self._locks is None:
                self._locks = LeaseLocks.in_state_dir(self.state_dir)
            return self._locks

    @contextmanager
    def hold(self, department: str) -> Iterator[bool]:
        with self._leases().held(department_lease(department), self.seconds) as lease:
            yield lease is not None

    def close(self) -> None:
        with self._opening:
            if self._locks is not None:
                self._locks.close()
                self._locks = None
