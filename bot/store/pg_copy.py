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
(``state_copies``: host name, absolute path, time, migration 0009; and the state folder's
id, migration 0010): an erase run from another state folder cannot reach it, and says so
in its receipt and an admin notice instead of looking complete; ``deptbot check`` warns
while a copy is recorded, and forgets the record once, run on the copy's own state
folder, it finds the copy deleted.

Why an id and not the host name: replicas can share a host name (containers given the
same ``hostname:``, cloned VMs, "localhost"), and a check on replica B then took replica
A's copy for its own, found the path missing and forgot the record, so later erases
stopped naming that copy. ``<state>/state-id`` is a random id written once (0600) and
never replaced; a missing or unreadable id forgets nothing. A record from before 0010
has no id: it is never forgotten on its own (``check`` says how to clear it).

Why a missing path is not enough either: the same folder can be reached by another path
(container vs host), moved, or tidied into ``COPIES/archive/``; ``forget_missing_copies``
forgets only a folder that was directly in this state folder's ``COPIES`` and has no
namesake anywhere below it, and privacy looks for copies at any depth there.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
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
# Every file `db copy` moves out: what makes a folder a copy (``bot.governance.privacy``).
MOVED = (*(f for f, _ in STORES), *MOVED_ALONG)
STATE_ID = "state-id"  # in the state folder: which folder a recorded copy came from
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
    # before anything is copied: a copy must be recordable (no folder: nothing to move or record)
    folder_id = ensure_state_id(state_dir) if state_dir.is_dir() else ""
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
        record_copy(db, report.moved_to, state_id=folder_id)
    return report


@dataclass(frozen=True)
class StateCopy:
    """A folder ``db copy`` moved SQLite files into, in some replica's state folder."""

    host: str  # for the humans reading a warning; never decides anything on its own
    path: str
    at: float
    state_id: str | None = None  # of the state folder it came from; None: recorded before 0010

    def here(self, state_id: str | None) -> bool:
        """Made from the state folder whose id is ``state_id`` (``read_state_id``), so an
        erase there can reach it. A record without an id (0009) falls back to the host
        name: it only decides whether an erase tries the path, never whether to forget."""
        if self.state_id is None:
            return self.host == this_host()
        return state_id is not None and self.state_id == state_id


def this_host() -> str:
    """The host name recorded with a copy, for people: replicas may share one (see the
    module docstring), so what decides is the state folder's id."""
    return socket.gethostname()


def read_state_id(state_dir: Path) -> str | None:
    """The id of ``state_dir`` (``STATE_ID``), None when there is none or it cannot be
    read or is not one: never made here, so a caller that only forgets never forgets on
    a guess."""
    try:
        text = (Path(state_dir) / STATE_ID).read_text(encoding="ascii").strip()
    except (OSError, UnicodeError):
        return None
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def ensure_state_id(state_dir: Path) -> str:
    """The id of ``state_dir``, made once (random, 0600) and never replaced: an id that
    exists but cannot be read is a StoreError, because a new one would orphan the records
    filed under the old. Only ``db copy`` makes it (``check`` only reads it: run as root,
    it would leave a file the service cannot read).

    Written whole into a temporary file, then hard-linked into place: the link either
    appears complete or not at all (an O_EXCL create, then write, left an empty id after
    a crash or a full disk, and a reader in between saw one), and two processes racing
    both read the one that won."""
    path = Path(state_dir) / STATE_ID
    for _ in range(2):
        found = read_state_id(state_dir)
        if found is not None:
            return found
        if path.exists() or path.is_symlink():
            break
        made = uuid.uuid4().hex
        temp = path.with_name(f".{STATE_ID}.{made}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                try:
                    os.write(fd, (made + "\n").encode("ascii"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.link(temp, path)
            except FileExistsError:
                continue  # another process made it meanwhile: read theirs
            finally:
                with suppress(OSError):
                    temp.unlink()
        except OSError as exc:
            raise StoreError(f"Could not create {path} (this state folder's id).") from exc
        return made
    raise StoreError(
        f"{path} (this state folder's id) exists but cannot be read; it is never replaced, since "
        "recorded copies are filed under it. Make it readable (32 hex digits) and try again."
    )


def record_copy(db: Database, folder: Path, *, state_id: str) -> None:
    """File ``folder`` (a copy just made) under this host and its state folder's id."""
    try:
        with db.tx() as c:
            c.execute(
                "insert into state_copies (host, path, at, state_id) values (?, ?, ?, ?) "
                "on conflict (host, path) do update set at = excluded.at, state_id = excluded.state_id",
                [this_host(), str(Path(folder).resolve()), time.time(), state_id],
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
    old-copy watch has not raised a notice about."""
    db.ready()
    where = " where not warned" if unwarned else ""
    rows = db.rows(
        f"select host, path, at, state_id from state_copies{where} order by at, host, path",
        [],
        what="the copies",
    )
    return [
        StateCopy(
            str(r["host"]),
            str(r["path"]),
            float(r["at"]),
            None if r["state_id"] is None else str(r["state_id"]),
        )
        for r in rows
    ]


class OldCopyWatch:
    """The daily job telling the admins (an admin notice, once per copy) to delete a
    recorded copy older than the shortest ``[retention]`` setting: it holds records the
    live stores have purged since, and no retention run reaches it (a copy is kept only
    for rollback). Its own job, claiming its day like the other daily jobs
    (``bot.governance.retention.daily_jobs``): it purges nothing, so it is no retention
    store (as one it ran once per retention kind)."""

    def __init__(
        self,
        db: Database,
        notices: Any,
        policy: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``policy``: retention kind → days (0: forever), as ``retention.policy_from``."""
        self.db, self.notices, self.clock = db, notices, clock
        self.policy = {k: int(v) for k, v in policy.items() if int(v) > 0}

    def run(self) -> int:
        """One day's look; how many copies were newly reported (none when retention is off)."""
        if not self.policy:
            return 0
        kind, days = min(self.policy.items(), key=lambda kv: (kv[1], kv[0]))
        cutoff = self.clock() - days * 86400.0
        old = [c for c in recorded_copies(self.db, unwarned=True) if c.at < cutoff]
        for c in old:
            made = time.strftime("%Y-%m-%d", time.gmtime(c.at))
            self.notices.notify(
                None,
                "retention",
                f"The SQLite copy deptbot db copy left on {c.host} at {c.path} ({made}) is older than "
                f"the shortest retention setting ({kind}: {days} days): it still holds records "
                f"PostgreSQL has purged since. Delete that folder once the copy is checked, then run "
                f"deptbot check on {c.host} with that state folder.",
            )
            with self.db.tx() as t:
                t.execute(
                    "update state_copies set warned = true where host = ? and path = ?", [c.host, c.path]
                )
        return len(old)


def forget_missing_copies(db: Database, state_dir: Path) -> list[StateCopy]:
    """Drop the records of copies made from ``state_dir`` (its id matches) whose folder is
    gone (the operator deleted it, as the README says); what was forgotten. Every other
    record stays: only a check on its own state folder can tell whether the folder is
    gone, and a missing id (or a record from before 0010) forgets nothing.

    A recorded path that is missing is not proof of deletion: the same folder can be
    reached by another path (a container's ``/data/state`` is the host's
    ``/srv/deptbot/state``), moved to a new disk, or tidied into a subfolder of
    ``COPIES``. So a record is forgotten only when its folder was directly in this state
    folder's ``COPIES`` as it resolves here, and no folder of that name is anywhere under
    it (``copy_folder_here``)."""
    mine = read_state_id(state_dir)
    if mine is None:
        return []
    root = (Path(state_dir) / COPIES).resolve()
    gone = [
        c
        for c in recorded_copies(db)
        if c.state_id == mine
        and not Path(c.path).exists()
        and Path(c.path).parent == root
        and copy_folder_here(state_dir, Path(c.path).name) is None
    ]
    if gone:
        try:
            with db.tx() as t:
                for c in gone:
                    t.execute(
                        "delete from state_copies where host = ? and path = ? and state_id = ?",
                        [c.host, c.path, mine],
                    )
        except psycopg.Error as exc:
            raise StoreError("Could not forget the deleted copies' records.") from exc
    return gone


def copy_folders(state_dir: Path) -> list[Path]:
    """Every folder under ``state_dir``'s ``COPIES``, at any depth (an admin may tidy copies
    into ``archive/<time>/``), holding a file ``db copy`` moves (``MOVED``); nothing else
    there is opened or counted."""
    root = Path(state_dir) / COPIES
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        if any((folder / f).is_file() for f in MOVED):
            found.append(folder)
    return found


def copy_folder_here(state_dir: Path, name: str) -> Path | None:
    """A folder called ``name`` anywhere under ``state_dir``'s ``COPIES`` (a recorded copy
    moved or reached by another path), or None."""
    root = Path(state_dir) / COPIES
    if not root.is_dir():
        return None
    return next((p for p in sorted(root.rglob("*")) if p.name == name and p.is_dir()), None)


def adopt_old_records(db: Database, state_dir: Path) -> list[StateCopy]:
    """Records from before 0010 (no id) whose folder is here, inside this state folder's
    ``COPIES`` and on this host, are filed under this state folder's id, so deleting the
    folder and running ``check`` forgets them again. The folder being here is the proof; a
    record whose folder is not here stays as it is (it may be another replica's). A state
    folder without an id adopts nothing: only ``db copy`` makes one."""
    mine = read_state_id(Path(state_dir))
    if mine is None:
        return []
    root = (Path(state_dir) / COPIES).resolve()
    found = [
        c
        for c in recorded_copies(db)
        if c.state_id is None
        and c.host == this_host()
        and Path(c.path).is_dir()
        and Path(c.path).resolve().parent == root
    ]
    if not found:
        return []
    try:
        with db.tx() as t:
            for c in found:
                t.execute(
                    "update state_copies set state_id = ? where host = ? and path = ? and state_id is null",
                    [mine, c.host, c.path],
                )
    except psycopg.Error as exc:
        raise StoreError("Could not file the copies' records under this state folder.") from exc
    return found


def _move_out(state_dir: Path, report: CopyReport) -> None:
    """Move the copied files (and ``MOVED_ALONG``) into ``COPIES/<UTC time>/``: renames on
    one file system, each database checkpointed first so its WAL is empty and no frame is
    left behind. See the module docstring for why."""
    from datetime import UTC, datetime

    from bot.governance.vault import checkpoint
    from bot.store.state import ensure_private_dir

    names = [f for f in MOVED if (state_dir / f).exists()]
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
