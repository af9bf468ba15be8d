"""The audit log: one row per request, allowed or denied, in SQLite (WAL) via sqlite-utils.

Layout chosen so later governance work is additive, not a migration of meaning:
- ``requests`` holds facts only (ids, decisions, doc ids, numbers) and has a ``seq``
  integer key plus ``prev_hash``/``row_hash``: an HMAC chain (``bot.governance.chain``)
  appended inside the same ``BEGIN IMMEDIATE`` transaction that reads the head, so two
  processes writing at once cannot fork it. Its columns are the fields of ``AuditEntry``
  (a new field becomes a new column on open); rows written before the chain existed stay
  unchained "legacy" rows, reported by ``verify`` but never vouched for;
- ``checkpoints`` holds signed chain heads: where the chain starts, where retention cut it
  (``purge``), and the daily head (``log``), so a purge keeps the chain verifiable and a
  truncated tail is caught;
- free text written by people (the question) lives in ``request_text`` keyed by request id,
  so encrypting or erasing personal text touches one table and never breaks the chain;
- ``feedback`` rows reference the request id.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, get_type_hints

import sqlite_utils

from bot.core.ports import AuditEntry
from bot.errors import ConfigError, StoreError
from bot.governance.chain import (
    ENV_VAR,
    GENESIS,
    AuditKey,
    Chain,
    Checkpoint,
    Report,
    is_hex_mac,
    load_key,
    verify_rows,
)
from bot.store.db import connect, where

if TYPE_CHECKING:
    from bot.governance.vault import Vault

SCHEMA_VERSION = 2  # 2: chained rows, checkpoints, columns follow AuditEntry
DEFAULT_KEY_FILE = Path("keys") / "audit.key"  # under the state folder unless audit.key_file says


def _sql_type(hint: Any) -> type:
    return hint if hint in (int, float) else int if hint is bool else str


COLUMNS: dict[str, type] = {
    f.name: _sql_type(get_type_hints(AuditEntry)[f.name]) for f in fields(AuditEntry) if f.name != "question"
}
"""``requests`` columns besides the chain fields: every ``AuditEntry`` field except the
question (personal text lives in ``request_text``); bool → int, datetime → ISO text,
sequences → JSON text."""


def _cell(value: Any, kind: type) -> Any:
    """A field as SQLite will store it, so the MAC computed now equals the one computed
    from the row read back (REAL affinity turns 0 into 0.0, TEXT turns 5 into '5')."""
    if value is None:
        return None
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Mapping):
            return json.dumps(dict(value), sort_keys=True)
        if isinstance(value, (list, tuple, set, frozenset)):
            return json.dumps(list(value))
        return str(value)
    return kind(value)


def audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {name: _cell(getattr(entry, name), kind) for name, kind in COLUMNS.items()}


def _parse_time(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class Executor(Protocol):
    """What the chain logic needs of a connection: ``sqlite3.Connection``, or
    ``bot.store.backend.Qmark`` (psycopg with the same ``?`` placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


SHARED_KEY_MISSING = (
    "no audit key is configured here. On PostgreSQL every replica appends to one audit chain, "
    "so all of them need the same key and none may make its own: set DEPTBOT_AUDIT_KEY to the "
    "same value on every replica, or create the key once with `deptbot audit init-key` and give "
    "every replica that file (audit.key_file)"
)
SHARED_KEY_DIFFERS = (
    "the audit key configured here is not the one the shared audit chain was written with; "
    "give this replica the same DEPTBOT_AUDIT_KEY (or audit.key_file) as the others"
)

_CHAINED = ["seq", *COLUMNS, "prev_hash", "row_hash"]
INSERT_SQL = (
    f"insert into requests ({', '.join(chr(34) + n + chr(34) for n in _CHAINED)}) "
    f"values ({', '.join('?' * len(_CHAINED))})"
)
"""One chained row; identifiers quoted (``user`` is a keyword in PostgreSQL)."""


class ChainedAudit:
    """The audit chain's logic, written once for every backend (``SqliteAuditLog`` here,
    ``bot.store.pg_audit.PgAuditLog``): the key, the vault, appending a row after the head,
    checkpoints, verifying, retention of a chain prefix. Each method that reads or writes
    takes the connection of the caller's transaction; the backend decides what makes the
    head it reads still the head when it writes (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
    a transaction-level advisory lock). SQL here is plain enough for both dialects."""

    def _init_chain(
        self,
        home: Path,
        *,
        vault: Vault | None,
        key: AuditKey | None,
        key_file: Path | None,
        env: Mapping[str, str] | None,
        create_key: bool = True,
    ) -> None:
        """``vault`` seals the question and feedback text (``bot.governance.vault``); None:
        the vault of ``home`` (the audit database's folder), opened when text is first
        written. ``key`` chains the rows; None: ``DEPTBOT_AUDIT_KEY`` in ``env`` (default:
        the process environment), else ``key_file`` (default ``keys/audit.key`` in
        ``home``), created on first use unless ``create_key`` is False (a shared chain:
        a replica making its own key would write the one chain under two keys)."""
        self._home = Path(home)
        self._vault = vault
        self._key = key  # loaded on first use: reading rows (audit tail) needs no key
        self._key_from = (os.environ if env is None else env, key_file or self._home / DEFAULT_KEY_FILE)
        self._create_key = create_key
        self._chain_obj: Chain | None = None
        self._insert = INSERT_SQL

    @property
    def key(self) -> AuditKey:
        if self._key is None:
            if self._create_key:
                self._key = load_key(*self._key_from)
            elif not self._has_key():
                raise ConfigError(SHARED_KEY_MISSING, file=f"{ENV_VAR} / audit.key_file")
            else:
                self._key = load_key(*self._key_from, create=False)
        return self._key

    def require_shared_key(self) -> None:
        """At start on a shared chain (PostgreSQL): the key is configured and is the one the
        newest row was chained with (or, before any row, the one the start checkpoint is
        signed with), else a ConfigError saying what to do.

        A start checkpoint written by a replica without a key is unsigned; the first keyed
        replica to get here signs it, under the writers' lock, so two replicas starting on a
        fresh database with different keys cannot both pass."""
        _ = self.key
        self._claim_start()
        if not self.key_matches():
            raise ConfigError(SHARED_KEY_DIFFERS, file=f"{ENV_VAR} / audit.key_file")

    def _claim_start(self) -> None:
        """Sign an unsigned start checkpoint when no checkpoint is signed yet (see above)."""

    def _signed_by_us(self, cp: Checkpoint) -> bool:
        import hmac

        return hmac.compare_digest(cp.sig, self._chain.sign_checkpoint(replace(cp, sig="")))

    @property
    def _chain(self) -> Chain:
        if self._chain_obj is None:
            self._chain_obj = Chain(self.key.secret)
        return self._chain_obj

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            from bot.governance.vault import vault_in

            self._vault = vault_in(self._home)
        return self._vault

    def _has_key(self) -> bool:
        env, key_file = self._key_from
        return self._key is not None or bool(env.get(ENV_VAR, "").strip()) or Path(key_file).exists()

    def pseudonym(self, email: str) -> str:
        """The stable stand-in for ``email`` in audit rows (``u-`` + 16 hex digits)."""
        return self._chain.pseudonym(email)

    def _scan(self, conn: Executor, sql: str) -> Any:
        """A cursor over every row ``sql`` selects, read as it is walked (verify, export and
        retention walk the whole chain): SQLite's cursors already are; PostgreSQL overrides
        this with a server-side cursor so a long chain is not held in memory at once."""
        return conn.execute(sql)

    def _append_to(self, conn: Executor, row: Mapping[str, Any]) -> int:
        last = conn.execute("select seq, row_hash from requests order by seq desc limit 1").fetchone()
        cut = conn.execute(
            "select seq, mac from checkpoints where kind in ('start', 'purge') order by seq desc limit 1"
        ).fetchone()
        if last is None or (cut is not None and last[0] <= cut[0]):
            seq, prev = (cut[0] + 1, bytes.fromhex(cut[1])) if cut else (1, GENESIS)
        else:  # a last row with no valid MAC breaks the chain anyway: verify names it
            seq, prev = last[0] + 1, bytes.fromhex(last[1]) if is_hex_mac(last[1]) else GENESIS
        mac = self._chain.mac(prev, row)
        conn.execute(self._insert, [seq, *row.values(), prev.hex(), mac.hex()])
        unsigned = conn.execute("select seq, mac, count, time, kind, sig from checkpoints where sig = ''")
        for start in unsigned.fetchall():
            cp = Checkpoint(*start)  # the start record of a database first opened without the key
            conn.execute(
                "update checkpoints set sig = ? where seq = ? and kind = 'start' and sig = ''",
                [self._chain.sign_checkpoint(cp), cp.seq],
            )
        return int(seq)

    def _checkpoints_in(self, conn: Executor, kind: str | None = None) -> list[Checkpoint]:
        sql = "select seq, mac, count, time, kind, sig from checkpoints"
        rows = conn.execute(
            sql + (" where kind = ?" if kind else "") + " order by seq", [kind] if kind else []
        )
        return [Checkpoint(*r) for r in rows]

    def _put_checkpoint_in(
        self, conn: Executor, seq: int, mac: str, kind: str, *, start: int | None = None, sign: bool = True
    ) -> Checkpoint:
        if start is None:
            starts = self._checkpoints_in(conn, "start")
            start = starts[0].seq if starts else 0
        cp = Checkpoint(seq, mac, max(0, seq - start), datetime.now(UTC).isoformat(timespec="seconds"), kind)
        if sign:
            cp = replace(cp, sig=self._chain.sign_checkpoint(cp))
        conn.execute(
            "insert into checkpoints (seq, kind, mac, count, time, sig) values (?, ?, ?, ?, ?, ?) "
            "on conflict (seq, kind) do update set mac = excluded.mac, count = excluded.count, "
            "time = excluded.time, sig = excluded.sig",
            [cp.seq, cp.kind, cp.mac, cp.count, cp.time, cp.sig],
        )
        return cp

    def _head_checkpoint(self, conn: Executor) -> Checkpoint:
        """Record the current head as a ``log`` checkpoint (inside the caller's transaction)."""
        seq = _first(conn.execute("select max(seq) from requests where row_hash is not null"))
        if seq is None:  # nothing chained kept: the head is where the chain was cut
            cuts = [c for c in self._checkpoints_in(conn) if c.kind in ("start", "purge")]
            return cuts[-1] if cuts else Checkpoint(0, GENESIS.hex(), 0, "", "start")
        mac = _first(conn.execute("select row_hash from requests where seq = ?", [seq]))
        return self._put_checkpoint_in(conn, int(seq), str(mac), "log")

    def _key_matches_in(self, conn: Executor) -> bool:
        """Does the newest chained row verify under this key? (A pseudonym or MAC made with
        another key would break the chain; True when nothing is chained yet.)"""
        cur = conn.execute("select * from requests where row_hash is not null order by seq desc limit 1")
        names = [d[0] for d in cur.description]
        last = cur.fetchone()
        if last is None:  # nothing chained yet: the signed checkpoints are all a key can meet
            return all(self._signed_by_us(cp) for cp in self._checkpoints_in(conn) if cp.sig)
        row = dict(zip(names, last, strict=True))
        if not is_hex_mac(row["prev_hash"]):
            return False
        return bool(self._chain.mac(bytes.fromhex(row["prev_hash"]), row).hex() == row["row_hash"])

    def _require_key_in(self, conn: Executor) -> None:
        """Refuse a pseudonymization the chain would call forgery (another key)."""
        if not self._key_matches_in(conn):
            raise StoreError(
                "The audit key in use is not the one the audit rows were chained with "
                "(check DEPTBOT_AUDIT_KEY and the audit.key_file setting); nothing was changed."
            )

    def _verify(self, conn: Executor, expect: tuple[int, str] | None) -> Report:
        """Check every row, in the read snapshot of ``conn``'s transaction."""
        cps = self._checkpoints_in(conn)
        chained = _first(conn.execute("select 1 from requests where row_hash is not null limit 1"))
        for cp in cps:
            if cp.kind == "start" and not cp.sig and not chained:
                continue  # signed by the first append; until then there is nothing to vouch for
            if cp.sig != self._chain.sign_checkpoint(cp):
                return Report().fail(
                    cp.seq, "checkpoint", f"the {cp.kind} checkpoint at row {cp.seq} was forged or edited"
                )
        starts = [c for c in cps if c.kind == "start"]
        if not starts:
            return Report().fail(
                None, "checkpoint", "the record of where the chain starts is missing (deleted)"
            )
        legacy = starts[0].seq
        purges = [c for c in cps if c.kind == "purge" and c.seq >= legacy]
        anchor = purges[-1] if purges else starts[0]
        cur = self._scan(conn, "select * from requests order by seq")
        names = [d[0] for d in cur.description]
        rep = verify_rows(
            self._chain,
            (dict(zip(names, r, strict=True)) for r in cur),
            legacy_through=legacy,
            start_seq=anchor.seq + 1,
            start_mac=bytes.fromhex(anchor.mac),
            later_with_mac=lambda mac, seq: _first(
                conn.execute("select seq from requests where row_hash = ? and seq > ? limit 1", [mac, seq])
            ),
        )
        if not rep.ok:
            return rep
        if rep.rows == 0:
            rep.head_seq, rep.head_mac = anchor.seq, anchor.mac
        checks = [(c.seq, c.mac, f"the checkpoint of {c.time}") for c in cps if c.kind == "log"]
        if expect is not None:
            checks.append((expect[0], expect[1].lower(), "the expected checkpoint"))
        for seq, mac, what in checks:
            if seq > rep.head_seq:
                return rep.fail(
                    rep.head_seq + 1,
                    "truncated",
                    f"the log ends at row {rep.head_seq} but {what} recorded row {seq}: "
                    f"rows {rep.head_seq + 1}–{seq} were deleted",
                )
            if seq == anchor.seq:
                have: str | None = anchor.mac
            elif seq > anchor.seq:
                have = _first(conn.execute("select row_hash from requests where seq = ?", [seq]))
            else:
                rep.notes.append(f"{what} (row {seq}) is older than the oldest row kept; not compared")
                continue
            if have != mac:
                return rep.fail(
                    seq, "checkpoint", f"row {seq} does not match {what}: the chain was rewritten"
                )
        rep.checkpoint = Checkpoint(
            rep.head_seq,
            rep.head_mac,
            rep.head_seq - legacy,
            datetime.now(UTC).isoformat(timespec="seconds"),
            "head",
        )
        return rep

    def _export_from(
        self, conn: Executor, *, since: date | None, with_text: bool
    ) -> Iterator[dict[str, Any]]:
        """``export_rows`` inside the caller's read snapshot."""
        cur = self._scan(conn, "select * from requests order by seq")
        names = [d[0] for d in cur.description]
        started = since is None
        floor = datetime.combine(since, datetime.min.time(), tzinfo=UTC) if since else None
        for values in cur:
            row = dict(zip(names, values, strict=True))
            if not started:
                t = _parse_time(row.get("time"))
                started = t is not None and floor is not None and t >= floor
                if not started:
                    continue
            if with_text:
                row["question"] = self._question(conn, row)
            yield row

    def _question(self, conn: Executor, row: Mapping[str, Any]) -> str | None:
        blob = _first(
            conn.execute("select question from request_text where request_id = ?", [row["request_id"]])
        )
        if blob is None:
            return None
        if isinstance(blob, str):
            return blob
        try:
            return self.vault.open(
                str(row.get("user") or ""), bytes(blob), f"request_text:{row['request_id']}"
            )
        except Exception:  # shredded (erased) or another key: the export says so, never fails
            return None

    def _audit_prefix_in(
        self, conn: Executor, cutoff: datetime, *, limit: int | None
    ) -> list[dict[str, Any]]:
        """The oldest rows, up to the first one not older than ``cutoff``."""
        cur = self._scan(conn, "select * from requests order by seq")
        names = [d[0] for d in cur.description]
        out: list[dict[str, Any]] = []
        for r in cur:
            row = dict(zip(names, r, strict=True))
            when = _parse_time(row["time"])
            if when is None or when >= cutoff or (limit is not None and len(out) >= limit):
                break
            out.append(row)
        cur.close()
        return out

    def _purge_prefix(
        self, tx: Callable[[], AbstractContextManager[Executor]], cutoff: datetime, batch: int
    ) -> int:
        """Purge the chain prefix older than ``cutoff``, one writer transaction (``tx()``)
        per batch, so appends go on between batches."""
        total = 0
        while True:
            with tx() as conn:
                n = self._purge_audit_batch(conn, cutoff, batch)
            if not n:
                return total
            total += n

    def _purge_audit_batch(self, conn: Executor, cutoff: datetime, batch: int) -> int:
        """One retention batch of the chain prefix (inside the caller's writer transaction):
        verify the rows, write the signed ``purge`` checkpoint, delete them; 0 when done."""
        dicts = self._audit_prefix_in(conn, cutoff, limit=max(1, batch))
        if not dicts:
            return 0
        cps = self._checkpoints_in(conn)
        starts = [c for c in cps if c.kind == "start"]
        legacy = starts[0].seq if starts else 0
        cuts = [c for c in cps if c.kind == "purge" and c.seq >= legacy] or starts
        anchor = cuts[-1] if cuts else Checkpoint(0, GENESIS.hex(), 0, "", "start")
        rep = verify_rows(
            self._chain,
            dicts,
            legacy_through=legacy,
            start_seq=anchor.seq + 1,
            start_mac=bytes.fromhex(anchor.mac),
            later_with_mac=lambda mac, seq: None,
        )
        if not rep.ok:
            raise StoreError(
                f"Retention stopped: the audit chain is broken at row {rep.bad_seq} ({rep.kind}); "
                "nothing was deleted. Run `deptbot audit verify`."
            )
        last = dicts[-1]
        mac = last["row_hash"] if last["seq"] > legacy else GENESIS.hex()
        self._put_checkpoint_in(conn, int(last["seq"]), str(mac), "purge", start=legacy)
        conn.execute("delete from checkpoints where kind in ('purge', 'log') and seq < ?", [last["seq"]])
        ids = [d["request_id"] for d in dicts]
        marks = ",".join("?" * len(ids))
        conn.execute(f"delete from request_text where request_id in ({marks})", ids)
        conn.execute(f"delete from feedback where request_id in ({marks})", ids)
        conn.execute("delete from requests where seq <= ?", [last["seq"]])
        return len(dicts)

    # ── what each backend provides (the AuditLog port, the CLI, privacy, retention) ──

    def record(self, entry: AuditEntry) -> None:
        raise NotImplementedError

    def record_feedback(self, request_id: str, user: str, value: str, reason: str = "") -> None:
        raise NotImplementedError

    def tail(
        self, n: int = 20, *, user: str | None = None, department: str | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def get(self, request_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def feedback_for(self, request_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def checkpoint(self) -> Checkpoint:
        raise NotImplementedError

    def pseudonymize(self, email: str) -> int:
        raise NotImplementedError

    def key_matches(self) -> bool:
        raise NotImplementedError

    def verify(self, *, expect: tuple[int, str] | None = None) -> Report:
        raise NotImplementedError

    def export_rows(self, *, since: date | None = None, with_text: bool = False) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        raise NotImplementedError

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteAuditLog(ChainedAudit):
    """The ``AuditLog`` port on SQLite; safe to share across threads."""

    def __init__(
        self,
        *,
        path: Path,
        vault: Vault | None = None,
        key: AuditKey | None = None,
        key_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """See ``ChainedAudit._init_chain``; key file and vault default to the folder of
        ``path``."""
        self.path = path
        self._lock = threading.Lock()
        self._init_chain(Path(path).parent, vault=vault, key=key, key_file=key_file, env=env)
        try:
            self._db = sqlite_utils.Database(connect(path))
            self._db.execute("PRAGMA secure_delete=ON")  # erased text leaves no free-page copy
            self._migrate_once()
            self._seal_legacy_text()
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the audit database at {path}.") from exc

    def _seal_legacy_text(self) -> None:
        """Question and feedback text written before encryption is sealed in place, once."""
        db = self._db
        legacy = db.execute(
            "select r.request_id, r.user, t.question from request_text t join requests r using (request_id) "
            "where typeof(t.question) = 'text'"
        ).fetchall()
        reasons = db.execute(
            "select request_id, user, reason from feedback where typeof(reason) = 'text' and reason != ''"
        ).fetchall()
        if not legacy and not reasons:
            return
        with self._tx():
            for rid, user, question in legacy:
                sealed = self.vault.seal(user or "", question, f"request_text:{rid}")
                db.execute("update request_text set question = ? where request_id = ?", [sealed, rid])
            db.execute("delete from request_text where typeof(question) = 'text'")  # no request row
            for rid, user, reason in reasons:
                sealed = self.vault.seal(user or "", reason, f"feedback:{rid}")
                db.execute(
                    "update feedback set reason = ? where request_id = ? and user = ?", [sealed, rid, user]
                )

    def _migrate_once(self, tries: int = 50) -> None:
        """Two processes opening a new database at once race to create and alter its
        tables; the loser's statement fails (locked, or "already exists"): look again."""
        for attempt in range(tries):
            try:
                self._migrate()
                return
            except sqlite3.OperationalError:
                if attempt == tries - 1:
                    raise
                time.sleep(0.05 * (1 + attempt % 5))

    def _migrate(self) -> None:
        db = self._db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if "requests" not in db.table_names():
            db.table("requests").create(
                {"seq": int, **COLUMNS, "prev_hash": str, "row_hash": str}, pk="seq", if_not_exists=True
            )
            db.table("requests").create_index(["request_id"], unique=True, if_not_exists=True)
            db.table("requests").create_index(["user", "time"], if_not_exists=True)
            db.table("requests").create_index(["department", "time"], if_not_exists=True)
        have = {c.name for c in db.table("requests").columns}
        for name, kind in COLUMNS.items():  # schema v1, or a field added to AuditEntry since
            if name not in have:
                db.table("requests").add_column(name, kind)
        # The admin console's per-day aggregates (bot/admin/overview.py) read only these
        # columns of one department's time range: answered from the index, no row lookups.
        # ``platform`` is there since eval traffic is left out of its counts; the index
        # without it (requests_admin_cover) is replaced, once.
        db.execute(
            "create index if not exists requests_console_cover on requests (department, time, status, "
            "route, generator, cache_hit, input_tokens, output_tokens, cost, latency_ms, confidence, "
            "doc_ids, platform)"
        )
        db.execute("drop index if exists requests_admin_cover")
        db.execute(
            "create table if not exists checkpoints (seq integer not null, kind text not null, "
            "mac text not null, count integer not null, time text not null, sig text not null, "
            "primary key (seq, kind))"
        )
        with self._tx():
            if version < 2 and not self._checkpoints("start"):
                # Rows already here were never chained: vouching for them now would certify
                # whatever they hold today. The chain starts after them (GENESIS).
                first = db.execute("select min(seq) from requests where row_hash is not null").fetchone()[0]
                if first is None:
                    first = db.execute("select coalesce(max(seq), 0) + 1 from requests").fetchone()[0]
                legacy = first - 1
                # Signed now when the key is at hand; otherwise by the first append, so a
                # reader (``audit tail``) never creates a key file nobody configured.
                legacy = int(legacy)
                self._put_checkpoint(legacy, GENESIS.hex(), "start", start=legacy, sign=self._has_key())
        if "request_text" not in db.table_names():
            db.table("request_text").create({"request_id": str, "question": str}, pk="request_id")
        if "feedback" not in db.table_names():
            db.table("feedback").create(
                {"request_id": str, "user": str, "value": str, "reason": str, "time": str},
                pk=("request_id", "user"),
            )
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            conn = self._db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def record(self, entry: AuditEntry) -> None:
        row = audit_row(entry)
        question = entry.question
        try:
            with self._tx() as db:
                self._append(row)
                if question:  # sealed under the asker's data key (erasable by shredding it)
                    sealed = self.vault.seal(entry.user, question, f"request_text:{entry.request_id}")
                    db.table("request_text").upsert(
                        {"request_id": entry.request_id, "question": sealed}, pk="request_id"
                    )
        except sqlite3.Error as exc:
            raise StoreError("Could not write the audit log.") from exc

    def record_feedback(self, request_id: str, user: str, value: str, reason: str = "") -> None:
        sealed: bytes | str = self.vault.seal(user, reason, f"feedback:{request_id}") if reason else ""
        try:
            with self._tx() as db:
                db.table("feedback").upsert(
                    {
                        "request_id": request_id,
                        "user": user,
                        "value": value,
                        "reason": sealed,
                        "time": datetime.now().astimezone().isoformat(),
                    },
                    pk=("request_id", "user"),
                )
        except sqlite3.Error as exc:
            raise StoreError("Could not store the feedback.") from exc

    # ── reading ──────────────────────────────────────────────────────────────────────

    def tail(
        self, n: int = 20, *, user: str | None = None, department: str | None = None
    ) -> list[dict[str, Any]]:
        clause, args = where(user=user.lower() if user else None, department=department)
        with self._lock:  # one connection: a read must not interleave with a job's COMMIT
            sql = f"select * from requests{clause} order by seq desc limit ?"
            rows = list(self._db.query(sql, [*args, n]))
        for r in rows:
            r["doc_ids"] = json.loads(r["doc_ids"] or "[]")
        return list(reversed(rows))

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self._db.query("select * from requests where request_id = ?", [request_id]))
        return rows[0] if rows else None

    def feedback_for(self, request_id: str) -> list[dict[str, Any]]:
        """Feedback rows with the comment opened (None when it cannot be: erased, wrong key)."""
        with self._lock:
            rows = list(self._db.query("select * from feedback where request_id = ?", [request_id]))
        for r in rows:
            if isinstance(r.get("reason"), bytes):
                try:
                    r["reason"] = self.vault.open(str(r["user"]), r["reason"], f"feedback:{request_id}")
                except StoreError:
                    r["reason"] = None
        return rows

    # ── the chain ────────────────────────────────────────────────────────────────────
    # Every method below that writes runs inside ``_tx`` (one BEGIN IMMEDIATE), so the
    # head it reads is still the head when it writes.

    def _append(self, row: Mapping[str, Any]) -> int:
        return self._append_to(self._db.conn, row)

    def _checkpoints(
        self, kind: str | None = None, conn: sqlite3.Connection | None = None
    ) -> list[Checkpoint]:
        return self._checkpoints_in(conn or self._db.conn, kind)

    def _put_checkpoint(
        self, seq: int, mac: str, kind: str, *, start: int | None = None, sign: bool = True
    ) -> Checkpoint:
        return self._put_checkpoint_in(self._db.conn, seq, mac, kind, start=start, sign=sign)

    def checkpoint(self) -> Checkpoint:
        """Record the current head as a ``log`` checkpoint (the daily job) and return it.
        A later ``verify`` fails if rows up to it were deleted from the tail."""
        try:
            with self._tx():
                return self._head_checkpoint(self._db.conn)
        except sqlite3.Error as exc:
            raise StoreError("Could not write an audit checkpoint.") from exc

    def pseudonymize(self, email: str) -> int:
        """Replace ``email`` by its pseudonym in ``requests`` and ``feedback`` (a privacy
        erase); the MAC already covers the pseudonym, so the chain still verifies.
        Returns how many rows changed."""
        alias, email = self.pseudonym(email), email.strip().lower()
        try:
            with self._tx() as db:
                self._require_key_in(db.conn)
                n = db.execute("update requests set user = ? where lower(user) = ?", [alias, email]).rowcount
                n += db.execute(
                    "update or replace feedback set user = ? where lower(user) = ?", [alias, email]
                ).rowcount
        except sqlite3.Error as exc:
            raise StoreError("Could not pseudonymize the audit rows.") from exc
        return int(n)

    def key_matches(self) -> bool:
        """``_key_matches`` under the lock: a privacy erase asks before it destroys anything."""
        with self._lock:
            return self._key_matches()

    def _key_matches(self) -> bool:
        return self._key_matches_in(self._db.conn)

    def verify(self, *, expect: tuple[int, str] | None = None) -> Report:
        """Check every row, in one read snapshot on its own connection (writers go on).

        ``expect``: a checkpoint kept elsewhere (seq, MAC): the only way to catch rows
        deleted from the end after the last checkpoint stored here."""
        conn = connect(Path(self.path))
        try:
            conn.execute("BEGIN")  # one snapshot for rows and checkpoints alike
            return self._verify(conn, expect)
        except sqlite3.Error as exc:
            raise StoreError("Could not read the audit log.") from exc
        finally:
            conn.close()

    def export_rows(self, *, since: date | None = None, with_text: bool = False) -> Iterator[dict[str, Any]]:
        """Rows in seq order with their chain fields, from the first row at or after
        ``since`` to the end (contiguous, so the export verifies on its own). The question
        is left out unless ``with_text``: it is personal text outside the chain."""
        conn = connect(Path(self.path))
        try:
            conn.execute("BEGIN")
            yield from self._export_from(conn, since=since, with_text=with_text)
        finally:
            conn.close()

    # ── retention (``bot.governance.retention``) ─────────────────────────────────────

    KINDS = ("text", "feedback", "audit")

    def count_older_than(self, kind: str, cutoff: datetime) -> int:
        with self._lock:
            if kind == "audit":
                return len(self._audit_prefix(cutoff, limit=None))
            if kind in ("text", "feedback"):
                return len(self._expired(kind, cutoff))
            return 0

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Delete ``kind`` ("text": questions; "feedback"; "audit": request rows, with
        their text and feedback) older than ``cutoff``, ``batch`` rows per transaction.

        Audit rows go only as a prefix of the chain (oldest first, stopping at the first
        row still in retention), and each batch first checks the rows it deletes verify
        and writes a signed ``purge`` checkpoint (last deleted seq and its MAC) in the
        same transaction, so ``verify`` resumes from it; evidence of tampering is never
        purged (a broken batch raises StoreError and nothing is deleted)."""
        if kind not in self.KINDS:
            return 0
        try:
            if kind == "audit":
                return self._purge_audit(cutoff, batch)
            total = 0
            with self._lock:
                found = self._expired(kind, cutoff)
            table = "request_text" if kind == "text" else "feedback"
            for i in range(0, len(found), batch):
                chunk = found[i : i + batch]
                with self._tx() as db:
                    db.execute(f"delete from {table} where rowid in ({','.join('?' * len(chunk))})", chunk)
                total += len(chunk)
            return total
        except sqlite3.Error as exc:
            raise StoreError("Could not purge expired audit data.") from exc

    def _expired(self, kind: str, cutoff: datetime) -> list[int]:
        """Rowids of questions (by their request's time; orphans too) or feedback to purge."""
        sql = (
            "select t.rowid, r.time from request_text t left join requests r on r.request_id = t.request_id"
            if kind == "text"
            else "select rowid, time from feedback"
        )
        out = []
        for rowid, t in self._db.conn.execute(sql):
            if t is None:  # a question whose request row is gone: nothing keeps it
                out.append(int(rowid))
                continue
            when = _parse_time(t)
            if when is not None and when < cutoff:
                out.append(int(rowid))
        return out

    def _audit_prefix(self, cutoff: datetime, *, limit: int | None) -> list[dict[str, Any]]:
        return self._audit_prefix_in(self._db.conn, cutoff, limit=limit)

    def _purge_audit(self, cutoff: datetime, batch: int) -> int:
        return self._purge_prefix(self._tx, cutoff, batch)

    def close(self) -> None:
        self._db.conn.close()


def _first(cur: sqlite3.Cursor) -> Any:
    row = cur.fetchone()
    return row[0] if row else None
