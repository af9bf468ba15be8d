"""``deptbot db copy``: move an existing installation's shared state from its SQLite files
into PostgreSQL, as it is, so the audit chain still verifies with the same head.

What moves so far: the audit log (rows with their chain fields, checkpoints, sealed
question text, feedback), usage and budgets, event de-duplication, the Teams conversation
state, the users and groups pushed over SCIM, and the wrapped per-person data keys
(``keys.db``), which the sealed text needs to open. The rows are copied verbatim (the
MACs cover their values, so nothing is recomputed), in one transaction per store. The
target must be empty: copying into a database replicas already write would interleave two
chains. The source chain is verified first and the copy after: a broken source is
refused, and a copy that does not verify with the same head is rolled back.

Afterwards the copied files (and ``cache.db``, whose entries PostgreSQL's cache replaces)
are moved out of the live state folder into ``copied-to-postgresql/<UTC time>/`` beside
it, WAL checkpointed first. Why move rather than delete or leave them: left in place they
are a second, live copy of personal text *and of every data key* that nothing on
PostgreSQL reads any more, so an erase would miss them; deleting them would lose the only
way back if the copy turns out wrong. Moved, nothing is lost (move them back to roll
back), and a privacy erase on PostgreSQL covers that folder too
(``bot.governance.privacy``), until the operator deletes it.

Each replica has its own state folder, so the folder is also recorded in PostgreSQL
(``state_copies``: host name, absolute path, time; migration 0009): an erase run on
another host cannot reach it, and says so in its receipt and an admin notice instead of
looking complete; ``deptbot check`` warns while a copy is recorded, and forgets the
record once, on the copy's own host, it finds the folder deleted.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bot.errors import StoreError
from bot.governance.chain import AuditKey
from bot.store.audit import SqliteAuditLog
from bot.store.backend import Database, Qmark, qmark
from bot.store.db import connect
from bot.store.dedup import DedupStore
from bot.store.pg_audit import AUDIT_LOCK, PgAuditLog
from bot.store.teams_state import TeamsState

# (SQLite file in the state folder, its tables in copy order)
STORES = (
    ("audit.db", ("requests", "checkpoints", "request_text", "feedback")),
    ("usage.db", ("attempts", "reservations")),
    (DedupStore.FILE, ("seen_events", "answered_threads")),
    (TeamsState.FILE, ("teams_history", "teams_replies", "teams_references", "teams_people")),
    ("scim.sqlite3", ("scim_users", "scim_groups", "scim_members")),  # pushed users and groups
    ("keys.db", ("subject_keys",)),  # the data keys: without them the copied questions would not open
)
MOVED_ALONG = ("cache.db",)  # not copied (a cache refills), but it holds sealed answers: moved too
COPIES = "copied-to-postgresql"  # under the state folder: where the copied files go
# bigserial columns: their sequences continue after the copied rows
SERIAL = {"attempts": "id", "reservations": "id", "scim_users": "seq", "scim_groups": "seq"}


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied
    head: tuple[int, str] | None = None  # the audit chain head, the same on both sides
    skipped: list[str] = field(default_factory=list)  # state files that do not exist
    moved_to: Path | None = None  # where the copied SQLite files went (out of the live folder)
    moved: list[str] = field(default_factory=list)


def copy_state(state_dir: Path, db: Database, *, key: AuditKey) -> CopyReport:
    """Copy the SQLite stores of ``state_dir`` into ``db`` (migrated, empty)."""
    state_dir = Path(state_dir)
    report = CopyReport()
    db.ready()
    _require_empty(db)
    source_head = None
    if (state_dir / "audit.db").exists():
        log = SqliteAuditLog(path=state_dir / "audit.db", key=key)  # seals legacy text first
        try:
            rep = log.verify()
        finally:
            log.close()
        if not rep.ok:
            raise StoreError(
                f"The SQLite audit chain does not verify (row {rep.bad_seq}: {rep.kind}); "
                "nothing was copied. Run `deptbot audit verify`."
            )
        source_head = (rep.head_seq, rep.head_mac)
    if (state_dir / TeamsState.FILE).exists():
        TeamsState(path=state_dir / TeamsState.FILE).close()  # seals a version-1 file's plain text first
    for file, tables in STORES:
        path = state_dir / file
        if not path.exists():
            report.skipped.append(file)
            continue
        src = connect(path)
        try:
            present = {r[0] for r in src.execute("select name from sqlite_master where type = 'table'")}
            with db.tx() as c:
                if file == "audit.db":
                    c.execute("select pg_advisory_xact_lock(?)", [AUDIT_LOCK])
                    c.execute("delete from checkpoints")  # the empty database's own start record
                for table in tables:
                    if table in present:  # an older file may lack a newer table (teams_people)
                        report.rows[table] = _copy_table(src, c, table)
                for table, column in SERIAL.items():
                    if table in tables:
                        c.execute(
                            f"select setval(pg_get_serial_sequence('{table}', '{column}'), "
                            f"coalesce((select max({column}) from {table}), 0) + 1, false)"
                        )
        except (sqlite3.Error, psycopg.Error) as exc:
            raise StoreError(
                f"Could not copy {path} into {db.url.redacted}; that store was not copied."
            ) from exc
        finally:
            src.close()
    if source_head is not None:
        rep = PgAuditLog(db, home=state_dir, key=key).verify()
        report.head = (rep.head_seq, rep.head_mac)
        if not rep.ok or report.head != source_head:
            raise StoreError(
                "The copied audit chain does not verify with the source's head; "
                f"empty the database before trying again ({rep.problem or 'a different head'})."
            )
    _move_out(state_dir, report)
    if report.moved_to is not None:
        record_copy(db, report.moved_to)
    return report


@dataclass(frozen=True)
class StateCopy:
    """A folder ``db copy`` moved SQLite files into, on some replica's host."""

    host: str
    path: str
    at: float

    @property
    def here(self) -> bool:
        """On this host: an erase or check here can reach (or miss) it."""
        return self.host == this_host()


def this_host() -> str:
    """The name a recorded copy is filed under (the replicas' hosts or containers differ)."""
    return socket.gethostname()


def record_copy(db: Database, folder: Path) -> None:
    try:
        with db.tx() as c:
            c.execute(
                "insert into state_copies (host, path, at) values (?, ?, ?) "
                "on conflict (host, path) do update set at = excluded.at",
                [this_host(), str(Path(folder).resolve()), time.time()],
            )
    except psycopg.Error as exc:
        raise StoreError(
            f"The copy is done, but where its SQLite files went ({folder}) could not be recorded in "
            f"{db.url.redacted}; an erase on another replica would not know of them. Delete that "
            "folder once you have checked the copy."
        ) from exc


def recorded_copies(db: Database, *, unwarned: bool = False) -> list[StateCopy]:
    """Every recorded copy, oldest first (StoreError when the table cannot be read: an
    erase or export then fails rather than miss a copy); ``unwarned``: only those the
    retention job has not raised a notice about."""
    db.ready()
    where = " where not warned" if unwarned else ""
    rows = db.rows(
        f"select host, path, at from state_copies{where} order by at, host, path", [], what="the copies"
    )
    return [StateCopy(str(r["host"]), str(r["path"]), float(r["at"])) for r in rows]


class OldCopyWatch:
    """A retention "store" that purges nothing: when a recorded copy is older than a
    ``[retention]`` cutoff it holds records the live stores have purged since, which no
    retention run reaches (a copy is kept only for rollback), so the admins are told once
    per copy (an admin notice) to delete it. Listed among the retention stores with
    ``DEPTBOT_DATABASE_URL``."""

    def __init__(self, db: Database, notices: Any) -> None:
        self.db, self.notices = db, notices

    def purge_older_than(self, kind: str, cutoff: Any, *, batch: int = 500) -> int:
        old = [c for c in recorded_copies(self.db, unwarned=True) if c.at < cutoff.timestamp()]
        for c in old:
            made = time.strftime("%Y-%m-%d", time.gmtime(c.at))
            self.notices.notify(
                None,
                "retention",
                f"The SQLite copy deptbot db copy left on {c.host} at {c.path} ({made}) is older than "
                f"the retention setting for {kind} records: it still holds records PostgreSQL has "
                f"purged since. Delete that folder once the copy is checked, then run deptbot check on "
                f"{c.host}.",
            )
            with self.db.tx() as t:
                t.execute(
                    "update state_copies set warned = true where host = ? and path = ?", [c.host, c.path]
                )
        return 0

    def count_older_than(self, kind: str, cutoff: Any) -> int:
        return 0  # a dry run purges nothing here either


def forget_missing_copies(db: Database) -> list[StateCopy]:
    """Drop the records of this host's copies whose folder is gone (the operator deleted
    it, as the README says); what was forgotten. Other hosts' records stay: only their own
    host can tell whether the folder is still there."""
    gone = [c for c in recorded_copies(db) if c.here and not Path(c.path).exists()]
    if gone:
        try:
            with db.tx() as t:
                for c in gone:
                    t.execute("delete from state_copies where host = ? and path = ?", [c.host, c.path])
        except psycopg.Error as exc:
            raise StoreError("Could not forget the deleted copies' records.") from exc
    return gone


def _move_out(state_dir: Path, report: CopyReport) -> None:
    """Move the copied files (and ``MOVED_ALONG``) into ``COPIES/<UTC time>/``: renames on
    one file system, each database checkpointed first so its WAL is empty and no frame is
    left behind. See the module docstring for why."""
    from datetime import UTC, datetime

    from bot.governance.vault import checkpoint
    from bot.store.state import ensure_private_dir

    names = [f for f, _ in STORES if (state_dir / f).exists()]
    names += [f for f in MOVED_ALONG if (state_dir / f).exists()]
    if not names:
        return
    target = state_dir / COPIES / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    ensure_private_dir(target)
    for name in names:
        conn = connect(state_dir / name)
        try:
            checkpoint(conn)
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            source = state_dir / f"{name}{suffix}"
            if source.exists():
                source.rename(target / source.name)
        report.moved.append(name)
    report.moved_to = target


def _require_empty(db: Database) -> None:
    with db.tx() as c:
        for _, tables in STORES:
            for table in tables:
                if table == "checkpoints":
                    continue  # an empty database has its start record
                if c.execute(f"select 1 from {table} limit 1").fetchone():
                    raise StoreError(
                        f"{db.url.redacted} already holds rows in {table}: copy into an empty, migrated "
                        "database (replicas writing there would interleave two audit chains)."
                    )


def _copy_table(src: sqlite3.Connection, dst: Qmark, table: str) -> int:
    cur = src.execute(f"select * from {table}")
    names = [d[0] for d in cur.description]
    sql = (
        f"insert into {table} ({', '.join(chr(34) + n + chr(34) for n in names)}) "
        f"values ({', '.join('?' * len(names))})"
    )
    n = 0
    with dst.conn.cursor() as out:
        while batch := cur.fetchmany(1000):
            out.executemany(
                qmark(sql), [[_value(table, k, v) for k, v in zip(names, r, strict=True)] for r in batch]
            )
            n += len(batch)
    return n


def _value(table: str, column: str, value: Any) -> Any:
    """SQLite's dynamic types as the PostgreSQL columns take them: the sealed text columns
    are bytea (an empty feedback comment is the empty string in SQLite)."""
    if (table, column) in SEALED and isinstance(value, str):
        if value and (table, column) != ("feedback", "reason"):  # the empty comment is not text
            raise StoreError(  # never plaintext where every reader expects sealed bytes
                f"{table}.{column} holds text that was never sealed; nothing of that store was copied."
            )
        return value.encode("utf-8")
    return value


SEALED = (  # bytea in PostgreSQL
    ("feedback", "reason"),
    ("request_text", "question"),
    ("teams_history", "text"),
    ("teams_replies", "payload"),
    ("teams_references", "reference"),
)
