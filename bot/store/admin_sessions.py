"""Admin console sign-in links, sessions, failed sign-ins and the console's own audit trail.

Only hashes of secrets are stored: a sign-in link's token and a session id are random
(``secrets``), handed to the person once, and kept here as SHA-256, so a copy of this file
opens nothing. A link is redeemed by one conditional UPDATE (``used IS NULL AND expires >
now``), so two browsers racing with the same link cannot both win, even across processes.
Sessions end after ``idle`` seconds without a request and after ``absolute`` seconds in any
case; ``sign_out`` ends one. Failed redemptions are counted per client address so the
console can refuse more than a few a window (``failures``).

The ``events`` table is the console's audit trail (links issued, sign-ins, sign-outs,
refreshes started); the core's audit log records the refresh decisions themselves.
Expired rows are removed on open and every ``CLEANUP_EVERY`` writes; events after
``event_days`` (``[retention] admin_events_days``, 0 = forever). A privacy erase
(``bot.governance.privacy``) pseudonymises a person's events and deletes their sessions
and links; a privacy export includes them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store.sqlite_store import SqliteStore

CLEANUP_EVERY = 200
EVENT_DAYS = 180  # the console's audit trail is kept this long unless configured
FAILURE_WINDOW = 600.0  # seconds over which failed sign-ins are counted

_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    token_hash TEXT PRIMARY KEY, email TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, used REAL
);
CREATE INDEX IF NOT EXISTS links_expires ON links(expires);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, email TEXT NOT NULL, created REAL NOT NULL,
    last_seen REAL NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires);
CREATE TABLE IF NOT EXISTS failures (client TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_client ON failures(client, at);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, event TEXT NOT NULL, user TEXT NOT NULL,
    department TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
"""


def digest(secret: str) -> str:
    """How a token or session id is stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live session: who it is for; ``key`` is the hash it is stored under."""

    key: str
    email: str
    created: float
    expires: float


@dataclass(frozen=True)
class Event:
    at: float
    event: str
    user: str
    department: str
    detail: str


class AdminSessionStore(SqliteStore):
    """Thread-safe; one small database file per state directory, shared by processes.

    The statements are written once for both backends: ``PgAdminSessionStore``
    (``bot.store.pg_admin``) runs them in PostgreSQL with ``DEPTBOT_DATABASE_URL``, so a
    link issued by one replica redeems on another, once, and a session follows the admin
    whichever replica the load balancer picks. ``open_console_store`` picks by the settings.
    """

    FILE = "admin-sessions.sqlite3"
    WHAT = "the admin sessions database"
    _ROW_ORDER = "rowid"  # insertion order among events of one instant (PostgreSQL: id)

    def __init__(
        self, *, path: Path, clock: Callable[[], float] = time.time, event_days: int = EVENT_DAYS
    ) -> None:
        self._start(clock, event_days)
        self._open_sqlite(path, _SCHEMA)
        self.cleanup()

    def _start(self, clock: Callable[[], float], event_days: int) -> None:
        self.event_days = event_days
        self._clock = clock
        self._writes = 0

    @classmethod
    def in_state_dir(
        cls, state_dir: Path, *, clock: Callable[[], float] = time.time, event_days: int = EVENT_DAYS
    ) -> AdminSessionStore:
        return cls(path=Path(state_dir) / cls.FILE, clock=clock, event_days=event_days)

    def now(self) -> float:
        return self._clock()

    # ── sign-in links ──────────────────────────────────────────────────────────────

    def create_link(self, email: str, ttl: float) -> str:
        """A new single-use token for ``email``, valid ``ttl`` seconds; only its hash is kept."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._session() as conn:
            conn.execute(
                "INSERT INTO links(token_hash, email, created, expires, used) VALUES (?, ?, ?, ?, NULL)",
                (digest(token), email, now, now + ttl),
            )
        self._tick()
        return token

    def link_valid(self, token: str) -> bool:
        """Whether ``token`` would redeem now (the confirmation page; nothing is used up)."""
        with self._session() as conn:
            row = conn.execute(
                "SELECT 1 FROM links WHERE token_hash = ? AND used IS NULL AND expires > ?",
                (digest(token), self._clock()),
            ).fetchone()
        return row is not None

    def redeem(self, token: str) -> str | None:
        """The e-mail the link was made for, once: None when unknown, used or expired.
        One conditional UPDATE: of two browsers (or replicas) racing, one gets the row."""
        now = self._clock()
        with self._session() as conn:
            row = conn.execute(
                "UPDATE links SET used = ? WHERE token_hash = ? AND used IS NULL AND expires > ? "
                "RETURNING email",
                (now, digest(token), now),
            ).fetchone()
        self._tick()
        return None if row is None else str(row[0])

    # ── sessions ───────────────────────────────────────────────────────────────────

    def open_session(self, email: str, *, absolute: float) -> str:
        """A new session id (the cookie's value) for ``email``, ending after ``absolute`` s."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._session() as conn:
            conn.execute(
                "INSERT INTO sessions(id_hash, email, created, last_seen, expires) VALUES (?, ?, ?, ?, ?)",
                (digest(sid), email, now, now, now + absolute),
            )
        self._tick()
        return sid

    def session(self, sid: str, *, idle: float) -> Session | None:
        """The live session for cookie value ``sid`` (its idle clock restarts), else None."""
        now = self._clock()
        key = digest(sid)
        with self._session() as conn:
            row = conn.execute(
                "UPDATE sessions SET last_seen = ? WHERE id_hash = ? AND expires > ? AND last_seen > ? "
                "RETURNING email, created, expires",
                (now, key, now, now - idle),
            ).fetchone()
        if row is None:
            return None
        return Session(key=key, email=str(row[0]), created=float(row[1]), expires=float(row[2]))

    def sign_out(self, sid: str) -> bool:
        """Sign out: True when a session was open under ``sid``."""
        with self._session() as conn:
            n = conn.execute("DELETE FROM sessions WHERE id_hash = ?", (digest(sid),)).rowcount
        return bool(n > 0)

    # ── failed sign-ins ──────────────────────────────────────────────────────────────

    def failed(self, client: str) -> int:
        """Count one failed sign-in from ``client``; the failures within the window."""
        now = self._clock()
        with self._session() as conn:
            conn.execute("INSERT INTO failures(client, at) VALUES (?, ?)", (client, now))
        self._tick()
        return self._failures(client, now)

    def failures(self, client: str) -> int:
        """Failed sign-ins from ``client`` within the window."""
        return self._failures(client, self._clock())

    def _failures(self, client: str, now: float) -> int:
        with self._session() as conn:
            row = conn.execute(
                "SELECT count(*) FROM failures WHERE client = ? AND at > ?", (client, now - FAILURE_WINDOW)
            ).fetchone()
        return int(row[0])

    # ── the console's audit trail ──────────────────────────────────────────────────

    def record(self, event: str, user: str, department: str = "", detail: str = "") -> None:
        """One audit event; ``detail`` is a short fixed word (never a secret or free text)."""
        with self._session() as conn:
            conn.execute(
                'INSERT INTO events(at, event, "user", department, detail) VALUES (?, ?, ?, ?, ?)',
                (self._clock(), event, user, department, detail),
            )
        self._tick()

    def events(self, limit: int = 100) -> list[Event]:
        """Newest first."""
        with self._session() as conn:
            rows = conn.execute(
                f'SELECT at, event, "user", department, detail FROM events '
                f"ORDER BY at DESC, {self._ROW_ORDER} DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Event(float(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    # ── housekeeping ─────────────────────────────────────────────────────────────────

    def cleanup(self) -> None:
        now = self._clock()
        with self._session() as conn:
            conn.execute("DELETE FROM links WHERE expires < ?", (now - 3600,))
            conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            conn.execute("DELETE FROM failures WHERE at < ?", (now - FAILURE_WINDOW,))
            if self.event_days > 0:
                conn.execute("DELETE FROM events WHERE at < ?", (now - self.event_days * 86400,))

    def _tick(self) -> None:
        self._writes += 1  # per process: each replica cleans up now and then
        if self._writes % CLEANUP_EVERY == 0:
            self.cleanup()


def open_console_store(
    settings: Any, *, clock: Callable[[], float] = time.time, event_days: int = EVENT_DAYS
) -> AdminSessionStore:
    """The console's store for ``settings``: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is
    set (links, sessions and the trail shared by every replica), else the state folder's
    ``admin-sessions.sqlite3``."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return AdminSessionStore.in_state_dir(settings.state_dir, clock=clock, event_days=event_days)
    from bot.store.pg_admin import PgAdminSessionStore

    return PgAdminSessionStore(db, clock=clock, event_days=event_days)
