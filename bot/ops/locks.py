"""Lease locks in the state folder (``<state>/ops.sqlite3``), or in PostgreSQL with
``DEPTBOT_DATABASE_URL`` (``bot.store.pg_ops``), so that with several ``deptbot serve``
processes sharing one state folder, or replicas sharing one database, each scheduled job
runs in one of them.

Why leases and not file locks: a job runs for minutes (a refresh, then evals), processes may
be on different hosts over a shared volume where ``flock`` semantics vary, and a process
that crashes mid-job must not block the job forever. A lease row names its holder and when
it expires; taking it is one conditional upsert (insert, or take over a lapsed row), so two
processes cannot both win, on either backend; the holder renews it while the job runs,
releases it at the end, and a crashed holder's lease simply lapses after ``seconds``.

Each acquisition gets its own token, so the lock also keeps two threads of one process
apart (jobs never overlap per department, whichever thread or process starts them). A
thread that already holds a lease and asks again (the schedule's refresh reaching
``KnowledgeBase.refresh``, which takes the same lease) is let through: ``held`` is
re-entrant per thread, never per process.

``RefreshGuard`` is the rule every refresh follows (``KnowledgeBase.refresh``): the lease
``dept:<name>`` is tried once, never waited for, and it is taken *before* the index's own
file lock (``bot.knowledge.index.locked``). Whoever waits for a lease (evals after a
refresh) holds no index lock, so the two locks cannot deadlock.

With replicas on PostgreSQL, the scheduler's leases and slots are there (``open_leases``)
while ``RefreshGuard`` stays per state folder, because each replica still refreshes its
own index: the scheduler then holds both (``ReplicaLeases``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store.sqlite_store import SqliteStore

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


# Written once for both backends (bot.store.pg_ops runs them with %s placeholders). Taking
# a lease is ONE statement: insert it, or take over a row whose lease has lapsed; the
# upsert's WHERE is checked against the row as it is when the statement gets it (SQLite: one
# writer at a time; PostgreSQL: the conflicting row is locked and re-read), so two callers
# racing for a free or lapsed lease cannot both see rowcount 1.
_TAKE_SQL = (
    "insert into leases (name, holder, expires, taken) values (?, ?, ?, ?) "
    "on conflict (name) do update set holder = excluded.holder, expires = excluded.expires, "
    "taken = excluded.taken where leases.expires <= excluded.taken"
)
_RENEW_SQL = "update leases set expires = ? where name = ? and holder = ?"
_RELEASE_SQL = "delete from leases where name = ? and holder = ?"
_HOLDER_SQL = "select holder, expires from leases where name = ?"
_CLAIM_SQL = "insert into job_runs (job, slot, time) values (?, ?, ?) on conflict (job, slot) do nothing"
_TRIM_RUNS_SQL = "delete from job_runs where time < ?"
_UNCLAIM_SQL = "delete from job_runs where job = ? and slot = ? and time = ?"


class LeaseLocks(ABC):
    """Named leases shared by every process using the same store; thread-safe.

    Written once for every backend: ``SqliteLeaseLocks`` (``<state>/ops.sqlite3``, every
    process sharing the state folder) and ``bot.store.pg_ops.PgLeaseLocks`` (every replica
    on the ``DEPTBOT_DATABASE_URL``). A subclass says how a statement runs (``_session``)
    and names the store for re-entrancy (``where``). Expiry uses the caller's clock, so
    replicas on several machines need clocks in step (NTP) to well under a lease's length.
    """

    where: str  # one string per store, the same in every instance that opens it
    _clock: Callable[[], float]

    @abstractmethod
    def _session(self, *, write: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, clock: Callable[[], float] = time.time) -> LeaseLocks:
        """The SQLite leases of ``state_dir`` (``open_leases`` picks by the settings)."""
        return SqliteLeaseLocks(path=Path(state_dir) / FILE, clock=clock)

    def acquire(self, name: str, seconds: float) -> Lease | None:
        """The lease on ``name`` for ``seconds``, or None while someone else holds it."""
        holder, now = _holder(), self._clock()
        with self._session(write=True) as conn:
            taken = conn.execute(_TAKE_SQL, (name, holder, now + seconds, now)).rowcount == 1
        return Lease(name, holder, now + seconds) if taken else None

    def renew(self, lease: Lease, seconds: float) -> Lease | None:
        """Extend a lease still held; None when it lapsed and someone else took it."""
        expires = self._clock() + seconds
        with self._session(write=True) as conn:
            kept = conn.execute(_RENEW_SQL, (expires, lease.name, lease.holder)).rowcount == 1
        return Lease(lease.name, lease.holder, expires) if kept else None

    def release(self, lease: Lease) -> None:
        with self._session(write=True) as conn:
            conn.execute(_RELEASE_SQL, (lease.name, lease.holder))

    def claim_slot(self, job: str, slot_seconds: float) -> bool:
        """True for the first caller (any process) in the current ``slot_seconds`` window of
        ``job``. Processes fire the same schedule a little apart (clocks, start times); the
        lease alone would let the second run it again right after the first finished."""
        now = self._clock()
        slot = int(now // max(slot_seconds, 1.0))
        with self._session(write=True) as conn:
            first = conn.execute(_CLAIM_SQL, (job, slot, now)).rowcount == 1
            conn.execute(_TRIM_RUNS_SQL, (now - KEEP_RUNS_SECONDS,))
        if first:
            self._claims()[job] = (slot, now)
        return bool(first)

    def release_slot(self, job: str) -> None:
        """Give back this handle's last claim of ``job`` (its run failed), so the next
        occurrence in the same window, in any process, runs it; a claim someone else made
        (another time) is never touched."""
        claimed = self._claims().pop(job, None)
        if claimed is not None:
            with self._session(write=True) as conn:
                conn.execute(_UNCLAIM_SQL, (job, *claimed))

    def _claims(self) -> dict[str, tuple[int, float]]:
        claims: dict[str, tuple[int, float]] | None = getattr(self, "_slot_claims", None)
        if claims is None:
            claims = {}
            self._slot_claims: dict[str, tuple[int, float]] = claims
        return claims

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None: free or lapsed)."""
        with self._session() as conn:
            row = conn.execute(_HOLDER_SQL, (name,)).fetchone()
        return str(row[0]) if row is not None and row[1] > self._clock() else None

    @contextmanager
    def held(
        self, name: str, seconds: float, *, wait: float = 0.0, poll: float = 0.5
    ) -> Iterator[Lease | None]:
        """Hold ``name`` for the ``with`` block, renewed every ``seconds / 3`` by a daemon
        thread; yields None (and runs nothing of its own) when it could not be taken within
        ``wait`` seconds (of real time: a waiting job really waits). Re-entrant: inside a
        ``with`` that holds ``name`` on this thread, it yields that lease again at once."""
        key = (self.where, name)
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
        """Nothing to release by default (a shared pool)."""
        return None  # a default, not abstract: the subclasses that hold a connection close it


class SqliteLeaseLocks(SqliteStore, LeaseLocks):
    """Leases in ``<state>/ops.sqlite3``: every process sharing the state folder."""

    def __init__(self, *, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._open_sqlite(path, _SCHEMA)
        self.where = str(self.path.resolve())


class ReplicaLeases(LeaseLocks):
    """The scheduler's leases with replicas: job slots and leases in the replicas' shared
    store, and ``held`` also takes the same name in this state folder's store (opened on
    first use), which is where ``RefreshGuard`` takes it while each replica keeps its own
    index. So a scheduled refresh, or evals waiting for a refresh, never overlap a
    ``/kb refresh``, console or watcher refresh of this replica's index (it is skipped as
    busy, not failed), and the guard inside a scheduled refresh re-enters instead of
    refusing it. The shared lease is taken first and the local one only by whoever holds
    it; local refreshes never wait for the shared one, so the two cannot deadlock."""

    def __init__(self, shared: LeaseLocks, local: Callable[[], LeaseLocks]) -> None:
        self.shared = shared
        self.where = shared.where
        self._clock = shared._clock
        self._local = _OnDemand(local)

    def _session(self, *, write: bool = False) -> AbstractContextManager[Any]:
        return self.shared._session(write=write)

    def local(self) -> LeaseLocks:
        return self._local.get()

    @contextmanager
    def held(
        self, name: str, seconds: float, *, wait: float = 0.0, poll: float = 0.5
    ) -> Iterator[Lease | None]:
        with self.shared.held(name, seconds, wait=wait, poll=poll) as lease:
            if lease is None:
                yield None
                return
            with self.local().held(name, seconds, wait=wait, poll=poll) as here:
                yield lease if here is not None else None

    def close(self) -> None:
        self.shared.close()
        self._local.close()


class _OnDemand:
    """Leases opened on first use (a process that never needs them writes no file)."""

    def __init__(self, opener: Callable[[], LeaseLocks]) -> None:
        self._opener = opener
        self._locks: LeaseLocks | None = None
        self._opening = threading.Lock()

    def get(self) -> LeaseLocks:
        with self._opening:
            if self._locks is None:
                self._locks = self._opener()
            return self._locks

    def close(self) -> None:
        with self._opening:
            if self._locks is not None:
                self._locks.close()
                self._locks = None


def open_leases(settings: Any, *, clock: Callable[[], float] = time.time) -> LeaseLocks:
    """The scheduler's leases of ``settings``: with ``DEPTBOT_DATABASE_URL``, slots and
    leases in PostgreSQL (one holder across every replica on every machine) plus this
    state folder's lease (``ReplicaLeases``); else ``<state>/ops.sqlite3``."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return LeaseLocks.in_state_dir(settings.state_dir, clock=clock)
    from bot.store.pg_ops import PgLeaseLocks

    state = settings.state_dir
    return ReplicaLeases(PgLeaseLocks(db, clock=clock), lambda: LeaseLocks.in_state_dir(state, clock=clock))


def slot_claimer(settings: Any, *, clock: Callable[[], float] = time.time) -> SlotClaimer:
    """``claim_slot`` of the scheduler's leases of ``settings`` (``open_leases``), opened on
    the first claim: the daily jobs (``bot.governance.retention.start_daily``) run once per
    slot across every process sharing the state folder or the database."""
    return SlotClaimer(_OnDemand(lambda: open_leases(settings, clock=clock)))


class SlotClaimer:
    """``claim(job, slot_seconds)`` as ``slot_claimer`` returns it, plus ``release(job)``
    for a run that failed (``bot.governance.retention``)."""

    def __init__(self, locks: _OnDemand) -> None:
        self._locks = locks

    def __call__(self, job: str, slot_seconds: float) -> bool:
        return self._locks.get().claim_slot(job, slot_seconds)

    def release(self, job: str) -> None:
        self._locks.get().release_slot(job)


class RefreshGuard:
    """The no-overlap rule of ``KnowledgeBase.refresh``: ``hold(name)`` yields True while
    this caller holds the department's lease, False when a refresh or the evals after one
    run elsewhere (another thread or process sharing the state folder, or another replica
    when ``leases`` opens them in PostgreSQL: ``open_leases``). The leases are opened on
    the first refresh, so a process that never refreshes writes no file."""

    def __init__(
        self,
        state_dir: Path,
        *,
        seconds: float = REFRESH_LEASE_SECONDS,
        leases: Callable[[], LeaseLocks] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.seconds = seconds
        self._locks = _OnDemand(leases or (lambda: LeaseLocks.in_state_dir(self.state_dir)))

    @contextmanager
    def hold(self, department: str) -> Iterator[bool]:
        with self._locks.get().held(department_lease(department), self.seconds) as lease:
            yield lease is not None

    def close(self) -> None:
        self._locks.close()
