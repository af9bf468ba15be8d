"""The audit log on PostgreSQL: the same chain, checkpoints and sealed text as
``bot.store.audit.SqliteAuditLog``, shared by every replica.

One writer order across replicas: every transaction that appends, checkpoints,
pseudonymizes or purges first takes one transaction-level advisory lock (``AUDIT_LOCK``),
then reads the head. Two replicas writing at once therefore queue; neither can read a head
the other is about to replace, so the chain never forks. Reads (``tail``, ``verify``,
exports) take no lock: ``verify`` and exports read one REPEATABLE READ snapshot.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from bot.core.ports import AuditEntry
from bot.errors import StoreError
from bot.governance.chain import GENESIS, AuditKey, Checkpoint, Report
from bot.governance.vault import VaultError
from bot.store.audit import ChainedAudit, _parse_time, audit_row
from bot.store.backend import Database, Qmark

if TYPE_CHECKING:
    from bot.governance.vault import Vault

UNAUDITED = (
    "Could not write the audit log, so this request was not answered (the database is not "
    "reachable right now). Please try again in a few minutes."
)  # what the asker sees: no URL, no driver text
AUDIT_LOCK = 0x6465707462_02  # the advisory lock that orders audit writers across replicas
SCAN_BATCH = 2000  # rows per round trip when walking the chain
_SCANS = itertools.count(1)
log = logging.getLogger(__name__)


class PgAuditLog(ChainedAudit):
    """The ``AuditLog`` port on PostgreSQL; safe to share across threads (pooled)."""

    KINDS = ("text", "feedback", "audit")

    def __init__(
        self,
        db: Database,
        *,
        home: Path,
        vault: Vault | None = None,
        key: AuditKey | None = None,
        key_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``home``: the state folder (default key file and vault); see ``_init_chain``."""
        self.db = db
        self.path = f"{db.url.redacted} (audit)"  # what messages name instead of a file
        # One chain for every replica: a key is configured, never made here (``require_shared_key``)
        self._init_chain(home, vault=vault, key=key, key_file=key_file, env=env, create_key=False)
        try:
            db.ready()
            with self._tx() as c:  # a new database: the chain starts at GENESIS (no legacy rows)
                if not self._checkpoints_in(c, "start"):
                    self._put_checkpoint_in(c, 0, GENESIS.hex(), "start", start=0, sign=self._has_key())
        except psycopg.Error as exc:
            raise StoreError(f"Cannot open the audit log in {db.url.redacted}.") from exc

    @contextmanager
    def _tx(self) -> Iterator[Qmark]:
        """A writer transaction: the advisory lock first, so the head read is still the head."""
        with self.db.tx() as c:
            c.execute("select pg_advisory_xact_lock(?)", [AUDIT_LOCK])
            yield c

    def _scan(self, conn: Qmark, sql: str) -> Any:  # type: ignore[override]
        """A server-side cursor (inside the caller's transaction): rows arrive in batches."""
        cur = conn.conn.cursor(name=f"deptbot_scan_{next(_SCANS)}")
        cur.itersize = SCAN_BATCH
        return cur.execute(sql)

    # ── the AuditLog port ────────────────────────────────────────────────────────────

    def record(self, entry: AuditEntry) -> None:
        row = audit_row(entry)
        try:
            # Sealed under the asker's data key (erasable by shredding it) BEFORE the writer
            # transaction: the key table takes a pooled connection of its own, and a writer
            # holding the audit lock must never wait for one behind writers waiting on it.
            sealed = (
                self.vault.seal(entry.user, entry.question, f"request_text:{entry.request_id}")
                if entry.question
                else None
            )
            with self._tx() as c:
                self._append_to(c, row)
                if sealed is not None:
                    c.execute(
                        "insert into request_text (request_id, question) values (?, ?) "
                        "on conflict (request_id) do update set question = excluded.question",
                        [entry.request_id, sealed],
                    )
        except psycopg.Error as exc:
            raise StoreError(UNAUDITED) from exc
        except VaultError:
            raise  # a key problem (master key missing, tampered row) says so itself
        except StoreError as exc:  # the database is down: refuse rather than answer unaudited
            log.warning("audit write failed: %s", exc.user_message)
            raise StoreError(UNAUDITED) from exc

    def record_feedback(self, request_id: str, user: str, value: str, reason: str = "") -> None:
        sealed = self.vault.seal(user, reason, f"feedback:{request_id}") if reason else b""
        try:
            with self.db.tx() as c:
                c.execute(
                    'insert into feedback (request_id, "user", value, reason, "time") values (?, ?, ?, ?, ?) '
                    'on conflict (request_id, "user") do update set value = excluded.value, '
                    'reason = excluded.reason, "time" = excluded."time"',
                    [request_id, user, value, sealed, datetime.now().astimezone().isoformat()],
                )
        except psycopg.Error as exc:
            raise StoreError("Could not store the feedback.") from exc

    # ── reading ──────────────────────────────────────────────────────────────────────

    def _rows(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        return self.db.rows(sql, args, what="the audit log")

    def tail(
        self, n: int = 20, *, user: str | None = None, department: str | None = None
    ) -> list[dict[str, Any]]:
        clause, args = [], []
        if user:
            clause.append('"user" = ?')
            args.append(user.lower())
        if department:
            clause.append("department = ?")
            args.append(department)
        where = (" where " + " and ".join(clause)) if clause else ""
        rows = self._rows(f"select * from requests{where} order by seq desc limit ?", [*args, n])
        for r in rows:
            r["doc_ids"] = json.loads(r["doc_ids"] or "[]")
        return list(reversed(rows))

    def get(self, request_id: str) -> dict[str, Any] | None:
        rows = self._rows("select * from requests where request_id = ?", [request_id])
        return rows[0] if rows else None

    def feedback_for(self, request_id: str) -> list[dict[str, Any]]:
        """Feedback rows with the comment opened ("" when none; None when it cannot be)."""
        rows = self._rows("select * from feedback where request_id = ?", [request_id])
        for r in rows:
            blob = r.get("reason")
            if not blob:
                r["reason"] = ""
                continue
            try:
                r["reason"] = self.vault.open(str(r["user"]), bytes(blob), f"feedback:{request_id}")
            except StoreError:
                r["reason"] = None
        return rows

    # ── the chain ────────────────────────────────────────────────────────────────────

    def checkpoint(self) -> Checkpoint:
        """Record the current head as a ``log`` checkpoint (the daily job) and return it."""
        try:
            with self._tx() as c:
                return self._head_checkpoint(c)
        except psycopg.Error as exc:
            raise StoreError("Could not write an audit checkpoint.") from exc

    def pseudonymize(self, email: str) -> int:
        """Replace ``email`` by its pseudonym in ``requests`` and ``feedback`` (privacy erase)."""
        alias, email = self.pseudonym(email), email.strip().lower()
        try:
            with self._tx() as c:
                self._require_key_in(c)
                n = c.execute(
                    'update requests set "user" = ? where lower("user") = ?', [alias, email]
                ).rowcount
                # SQLite's "update or replace": the pseudonym's own row for the request gives way
                c.execute(
                    'delete from feedback where "user" = ? and request_id in '
                    '(select request_id from feedback where lower("user") = ?)',
                    [alias, email],
                )
                n += c.execute(
                    'update feedback set "user" = ? where lower("user") = ?', [alias, email]
                ).rowcount
        except psycopg.Error as exc:
            raise StoreError("Could not pseudonymize the audit rows.") from exc
        return int(n)

    def _claim_start(self) -> None:
        try:
            with self._tx() as c:  # the writers' lock: one replica signs, the rest compare
                cps = self._checkpoints_in(c)
                if any(cp.sig for cp in cps):
                    return
                for cp in cps:
                    if cp.kind == "start":
                        sig = self._chain.sign_checkpoint(cp)
                        c.execute(
                            "update checkpoints set sig = ? where seq = ? and kind = 'start'", [sig, cp.seq]
                        )
        except psycopg.Error as exc:
            raise StoreError("Could not read the audit log.") from exc

    def key_matches(self) -> bool:
        try:
            with self.db.tx() as c:
                return self._key_matches_in(c)
        except psycopg.Error as exc:
            raise StoreError("Could not read the audit log.") from exc

    def verify(self, *, expect: tuple[int, str] | None = None) -> Report:
        """Check every row in one REPEATABLE READ snapshot (writers go on meanwhile)."""
        try:
            with self.db.tx(isolation="REPEATABLE_READ") as c:
                return self._verify(c, expect)
        except psycopg.Error as exc:
            raise StoreError("Could not read the audit log.") from exc

    def export_rows(self, *, since: date | None = None, with_text: bool = False) -> Iterator[dict[str, Any]]:
        """Rows in seq order with their chain fields (see ``SqliteAuditLog.export_rows``)."""
        with self.db.tx(isolation="REPEATABLE_READ") as c:
            yield from self._export_from(c, since=since, with_text=with_text)

    # ── retention ────────────────────────────────────────────────────────────────────

    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        if kind not in self.KINDS:
            return 0
        with self.db.tx() as c:
            if kind == "audit":
                return len(self._audit_prefix_in(c, cutoff, limit=None))
            return len(self._expired(c, kind, cutoff))

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """As ``SqliteAuditLog.purge_older_than``: audit rows only as a verified prefix of
        the chain, each batch with its signed ``purge`` checkpoint."""
        if kind not in self.KINDS:
            return 0
        total = 0
        try:
            if kind == "audit":
                return self._purge_prefix(self._tx, cutoff, batch)
            with self.db.tx() as c:
                found = self._expired(c, kind, cutoff)
            for i in range(0, len(found), batch):
                chunk = found[i : i + batch]
                with self.db.tx() as c:
                    for key in chunk:
                        if kind == "text":
                            c.execute("delete from request_text where request_id = ?", [key[0]])
                        else:
                            c.execute('delete from feedback where request_id = ? and "user" = ?', list(key))
                total += len(chunk)
            return total
        except psycopg.Error as exc:
            raise StoreError("Could not purge expired audit data.") from exc

    def _expired(self, c: Qmark, kind: str, cutoff: datetime) -> list[tuple[str, ...]]:
        """Keys of questions (by their request's time; orphans too) or feedback to purge."""
        sql = (
            "select t.request_id, r.time from request_text t "
            "left join requests r on r.request_id = t.request_id"
            if kind == "text"
            else 'select request_id, "user", "time" from feedback'
        )
        out = []
        for *key, t in c.execute(sql).fetchall():
            when = _parse_time(t) if t is not None else None
            if t is None or (when is not None and when < cutoff):
                out.append(tuple(str(k) for k in key))
        return out

    def close(self) -> None:
        """The pool is shared by every store of the process (``bot.store.backend``)."""


__all__ = ["AUDIT_LOCK", "PgAuditLog"]
