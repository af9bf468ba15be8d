"""Read-only access to the audit and usage records for the admin console and ops alerts.

The console and the alerts never write there. ``ConsoleRecords`` is the port: it opens one
read-only ``Reader`` on the audit records and one on the usage records, and each backend has
one implementation — ``SqliteRecords`` here (``mode=ro`` connections to the state folder's
files, not the stores' own, whose lock serialises the bot's writes: a slow report cannot
delay an answer's audit row, and a bug here cannot change the chain) and
``bot.store.pg_admin.PgRecords`` (a READ ONLY transaction on the shared pool). The queries
themselves are written once (``bot.admin.overview``, ``gaps``, ``documents``, ``insights``,
``bot.ops.signals``); a ``Reader`` supplies the few fragments the two dialects spell
differently. Every query filters on ONE department in SQL (``where department = ?``), so
rows of other departments never even reach Python.

Identifiers are quoted (``"time"``, ``"user"``): ``user`` is a keyword in PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.core.types import Status

QUESTION_STATUSES = tuple(s.value for s in Status)
"""Audit ``status`` values that are questions (refresh, retention and privacy rows are not)."""

NOT_ASKED = ("eval", "admin")
"""Platforms whose rows are not questions people asked: the evals (scheduled and
``deptbot eval --qa``) and console actions. Every count leaves them out."""

IN_QUESTIONS = f"status in ({', '.join(repr(s) for s in QUESTION_STATUSES)})"
ASKED = f"coalesce(platform, '') not in ({', '.join(repr(p) for p in NOT_ASKED)})"
"""A row people asked (not an eval, not a console action); use with ``IN_QUESTIONS``."""
ASKED_R = ASKED.replace("platform", "r.platform")
"""``ASKED`` for ``requests r`` in a join."""


class Reader(ABC):
    """One open read-only connection to the audit (or usage) records of one backend."""

    key: str  # what identifies these records in a process-wide cache (a file, a database)

    @abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """A cursor over ``sql`` (``?`` placeholders on both backends)."""

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    @abstractmethod
    def generation(self) -> tuple[object, ...]:
        """What the rows cached per day were computed from (``bot.admin.rollup``): the
        records' identity and their oldest row, which a retention purge moves."""

    # ── the SQL the dialects spell differently ──

    @abstractmethod
    def joined(self, expr: str) -> str:
        """An aggregate: the numbers of ``expr`` joined with commas, as text."""

    @abstractmethod
    def each_id(self, column: str, alias: str) -> str:
        """A FROM item: one row per id of the JSON list in ``column``, as ``alias.value``
        (a malformed list yields no row)."""

    @abstractmethod
    def newest_first(self, alias: str) -> str:
        """An ORDER BY: rows of table ``alias`` newest first by their ``time`` (ISO-8601
        text with an offset, compared as instants), then the latest written."""

    driven_join = "join"
    """The join that keeps the left table driving (SQLite's planner takes CROSS JOIN as
    that hint; PostgreSQL has no such hint and plans it well from the statistics)."""

    @abstractmethod
    def bin(self, expr: str, bins: int) -> str:
        """``expr`` clamped to [0, 1] and counted into ``bins`` equal-width bins (0..bins-1)."""


class SqliteReader(Reader):
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.key = os.path.realpath(path)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, list(args))

    def has_table(self, name: str) -> bool:
        row = self.conn.execute(
            "select 1 from sqlite_master where type = 'table' and name = ?", [name]
        ).fetchone()
        return row is not None

    def generation(self) -> tuple[object, ...]:
        """The file, and its oldest row (seq and random request id — a purge moves it, and
        a new database in a reused inode or path never matches)."""
        st = os.stat(self.path)
        oldest = self.conn.execute("select seq, request_id from requests order by seq limit 1").fetchone()
        return (st.st_ino, st.st_dev, *(oldest or (0, None)))

    def joined(self, expr: str) -> str:
        return f"group_concat({expr})"

    def each_id(self, column: str, alias: str) -> str:
        return f"json_each(case when json_valid({column}) then {column} else '[]' end) {alias}"

    def newest_first(self, alias: str) -> str:
        return f"julianday({alias}.time) desc, {alias}.rowid desc"

    driven_join = "cross join"

    def bin(self, expr: str, bins: int) -> str:
        return f"min(cast(min(max({expr}, 0.0), 1.0) * {int(bins)} as integer), {int(bins) - 1})"


class ConsoleRecords(ABC):
    """The port: read-only readers on the audit and usage records of one deployment."""

    @abstractmethod
    def audit(self) -> AbstractContextManager[Reader | None]:
        """A reader on the audit records; None when there are none yet (a department
        nobody asked is a page of zeros, not an error). Reading creates nothing."""

    @abstractmethod
    def usage(self) -> AbstractContextManager[Reader | None]:
        """A reader on the usage ledger (budget reservations); None as for ``audit``."""


class SqliteRecords(ConsoleRecords):
    """``audit.db`` and ``usage.db`` of a state folder, opened ``mode=ro``."""

    def __init__(self, state_dir: Path, *, audit_file: Path | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.audit_path = audit_file or self.state_dir / "audit.db"
        self.usage_path = self.state_dir / "usage.db"

    def audit(self) -> AbstractContextManager[Reader | None]:
        return _sqlite_reader(self.audit_path)

    def usage(self) -> AbstractContextManager[Reader | None]:
        return _sqlite_reader(self.usage_path)


@contextmanager
def _sqlite_reader(path: Path) -> Iterator[Reader | None]:
    with read_only(path) as conn:
        yield None if conn is None else SqliteReader(conn, path)


def records_for(settings: Any) -> ConsoleRecords:
    """The records of ``settings``: PostgreSQL with ``DEPTBOT_DATABASE_URL``, else the
    state folder's SQLite files."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return SqliteRecords(Path(settings.state_dir))
    from bot.store.pg_admin import PgRecords

    return PgRecords(db)


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to ``path``; None when the database does not exist yet."""
    if not path.is_file():
        yield None
        return
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("PRAGMA query_only=ON")
        yield conn
    finally:
        conn.close()


def window(today: date, days: int) -> tuple[date, str]:
    """The first UTC day of a ``days``-long window ending today, and the ISO prefix audit
    times are compared with (``time >= '2026-09-02'`` holds for every moment of that day)."""
    start = today - timedelta(days=days - 1)
    return start, start.isoformat()


def parse_time(value: object) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
