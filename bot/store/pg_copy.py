"""``deptbot db copy``: move an existing installation's shared state from its SQLite files
into PostgreSQL, as it is, so the audit chain still verifies with the same head.

What moves so far: the audit log (rows with their chain fields, checkpoints, sealed
question text, feedback), usage and budgets, event de-duplication, and the wrapped
per-person data keys (``keys.db``), which the sealed text needs to open. The rows are copied
verbatim (the MACs cover their values, so nothing is recomputed), in one transaction per
store. The target must be empty: copying into a database replicas already write would
interleave two chains. The source chain is verified first and the copy after: a broken
source is refused, and a copy that does not verify with the same head is rolled back.
"""

from __future__ import annotations

import sqlite3
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

# (SQLite file in the state folder, its tables in copy order)
STORES = (
    ("audit.db", ("requests", "checkpoints", "request_text", "feedback")),
    ("usage.db", ("attempts", "reservations")),
    (DedupStore.FILE, ("seen_events", "answered_threads")),
    ("keys.db", ("subject_keys",)),  # the data keys: without them the copied questions would not open
)
SERIAL = ("attempts", "reservations")  # bigserial ids: the sequences continue after the copied rows


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied
    head: tuple[int, str] | None = None  # the audit chain head, the same on both sides
    skipped: list[str] = field(default_factory=list)  # state files that do not exist


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
    for file, tables in STORES:
        path = state_dir / file
        if not path.exists():
            report.skipped.append(file)
            continue
        src = connect(path)
        try:
            with db.tx() as c:
                if file == "audit.db":
                    c.execute("select pg_advisory_xact_lock(?)", [AUDIT_LOCK])
                    c.execute("delete from checkpoints")  # the empty database's own start record
                for table in tables:
                    report.rows[table] = _copy_table(src, c, table)
                for table in SERIAL:
                    if table in tables:
                        c.execute(
                            f"select setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"coalesce((select max(id) from {table}), 0) + 1, false)"
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
    return report


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
    if (table, column) in (("feedback", "reason"), ("request_text", "question")) and isinstance(value, str):
        return value.encode("utf-8")
    return value
