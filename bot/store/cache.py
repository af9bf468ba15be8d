"""The ``AnswerCache`` port: SQLite (shared by processes), PostgreSQL (shared by replicas,
``bot.store.pg_cache``) or in memory, all with a TTL.

Keys come from ``bot.core.cachekey`` (question + department + access fingerprint + index
version …), so invalidation on refresh and per-access separation are in the key; this
module only stores, expires and evicts. ``Answer`` is serialized field by field to JSON
(enums by value, datetimes as ISO 8601, citations as objects) and read back into the same
types; an unreadable row is a miss, never an error shown to anyone.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from bot.core.types import Answer, Citation, Classification, Status, Timings, Usage
from bot.errors import ConfigError, StoreError
from bot.store.db import connect

if TYPE_CHECKING:
    from bot.governance.vault import Vault

log = logging.getLogger(__name__)


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _undt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(Answer):
        value = getattr(answer, f.name)
        if f.name == "citations":
            value = [
                {**{c.name: getattr(cit, c.name) for c in fields(Citation)}, "modified": _dt(cit.modified)}
                for cit in value
            ]
        elif f.name in ("timings", "usage"):
            value = {k.name: getattr(value, k.name) for k in fields(value)}
        elif isinstance(value, datetime):
            value = _dt(value)
        elif isinstance(value, Status):
            value = value.value
        elif isinstance(value, Classification):
            value = value.label
        elif f.name == "extra":
            value = dict(value)
        out[f.name] = value
    return out


def answer_from_dict(data: dict[str, Any]) -> Answer:
    known = {f.name for f in fields(Answer)}
    kw: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    kw["status"] = Status(kw.get("status", Status.ANSWERED.value))
    kw["classification"] = Classification.parse(kw.get("classification", "internal"))
    kw["created"] = _undt(kw.get("created"))
    kw["timings"] = Timings(**kw.get("timings", {}))
    kw["usage"] = Usage(**kw.get("usage", {}))
    kw["citations"] = tuple(
        Citation(**{**c, "modified": _undt(c.get("modified"))}) for c in kw.get("citations", [])
    )
    kw["extra"] = dict(kw.get("extra", {}))
    # Entries written before answers carried their sources' audiences cannot be re-checked
    # against a channel's members: treat them as a miss (KeyError), never as "no narrowing".
    kw["audiences"] = tuple(tuple(tuple(level) for level in sig) for sig in data["audiences"])
    return Answer(**kw)


def dumps(answer: Answer) -> str:
    return json.dumps(answer_to_dict(answer), ensure_ascii=False)


def loads(text: str) -> Answer:
    return answer_from_dict(json.loads(text))


class MemoryAnswerCache:
    """Per-process cache: TTL plus least-recently-used eviction beyond ``max_entries``."""

    def __init__(
        self, *, ttl_seconds: float = 86400, max_entries: int = 10000, clock: Callable[[], float] = time.time
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[float, Answer]] = OrderedDict()

    def get(self, key: str) -> Answer | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if self._clock() - item[0] > self._ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return item[1]

    def clear(self) -> int:
        """Drop every entry (a privacy erase: entries here record no owner); how many."""
        with self._lock:
            n = len(self._data)
            self._data.clear()
            return n

    def put(self, key: str, answer: Answer) -> None:
        with self._lock:
            self._data[key] = (self._clock(), answer)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Retention, as ``SqliteAnswerCache.purge_older_than`` (nothing here outlives the process)."""
        if kind != "cache":
            raise ValueError(f"the answer cache has no {kind!r} records (only 'cache')")
        with self._lock:
            old = [k for k, (stored, _) in self._data.items() if stored < cutoff.timestamp()]
            for k in old:
                del self._data[k]
        return len(old)

    def delete_for_requests(self, request_ids: Iterable[str]) -> int:
        wanted = set(request_ids)
        with self._lock:
            old = [k for k, (_, a) in self._data.items() if a.request_id in wanted]
            for k in old:
                del self._data[k]
        return len(old)


# Written for both backends (bot.store.pg_cache runs them with %s placeholders).
_GET_SQL = "select stored, subject, answer from answers where key = ?"
_PUT_SQL = (
    "insert into answers (key, stored, subject, request_id, answer) values (?, ?, ?, ?, ?) "
    "on conflict (key) do update set stored = excluded.stored, subject = excluded.subject, "
    "request_id = excluded.request_id, answer = excluded.answer"
)
_EXPIRED_SQL = "delete from answers where stored < ?"
_PURGE_SQL = "delete from answers where key in (select key from answers where stored < ? limit ?)"


class SealedAnswerCache:
    """An answer cache in a database table, answers sealed (``bot.governance.vault``),
    expired rows purged on write; written once for every backend. A subclass says how
    statements run (``_session``: one transaction; backend errors become StoreError) and
    how rows beyond ``max_entries`` are evicted (``EVICT_SQL``).

    Whose key seals an entry: one entry is shared by everyone whose access matches (that is
    what the key says), so it is sealed under the *department's* cache subject
    (``cache:<department>``), not the first asker's. It still records which request created
    it (``request_id``), so a privacy erasure deletes the entries that person's questions
    created (``delete_for_requests``); entries they merely re-used belong to someone else.
    The question itself is not stored: keys are hashes (``bot.core.cachekey``).
    """

    EVICT_SQL = ""  # delete all but the newest ``max_entries`` rows (one parameter)

    def _init_cache(
        self, *, ttl_seconds: float, max_entries: int, clock: Callable[[], float], vault: Vault | None
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._vault = vault
        self._writes = 0

    def _session(self, *, write: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = self._default_vault()
        return self._vault

    def _default_vault(self) -> Vault:
        raise NotImplementedError

    @staticmethod
    def subject(answer: Answer) -> str:
        return f"cache:{answer.department or '-'}"

    def get(self, key: str) -> Answer | None:
        try:
            with self._session(write=False) as conn:
                row = conn.execute(_GET_SQL, [key]).fetchone()
            if row is None or self._clock() - row[0] > self._ttl:
                return None
            return loads(self.vault.open(row[1], row[2], f"cache:{key}"))
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            log.warning("answer cache read failed (%s); treating as a miss", type(exc).__name__)
            return None

    def put(self, key: str, answer: Answer) -> None:
        try:
            subject = self.subject(answer)
            payload = self.vault.seal(subject, dumps(answer), f"cache:{key}")
            with self._session() as conn:
                conn.execute(_PUT_SQL, [key, self._clock(), subject, answer.request_id, payload])
                self._writes += 1
                if self._writes % 100 == 1:
                    conn.execute(_EXPIRED_SQL, [self._clock() - self._ttl])
                    conn.execute(self.EVICT_SQL, [self._max])
        except (TypeError, ValueError, StoreError) as exc:
            log.warning("answer cache write failed (%s); continuing without caching", type(exc).__name__)

    # ── privacy and retention ────────────────────────────────────────────────────────

    def entries_for_requests(self, request_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The entries these requests created, opened (for a privacy export)."""
        from bot.governance.vault import Tampered, TextErased

        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(request_ids)):
            with self._session(write=False) as conn:
                rows = conn.execute(
                    f"select key, stored, subject, request_id, answer from answers "
                    f"where request_id in ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            for key, stored, subject, rid, blob in rows:
                try:
                    answer: Any = answer_to_dict(loads(self.vault.open(subject, blob, f"cache:{key}")))
                except (TextErased, Tampered, ValueError, TypeError, KeyError) as exc:
                    # this entry only; a store that cannot be read fails the export instead
                    answer = {"unreadable": type(exc).__name__}
                out.append(
                    {
                        "request_id": rid,
                        "stored": datetime.fromtimestamp(stored, UTC).isoformat(),
                        "answer": answer,
                    }
                )
        return out

    def delete_for_requests(self, request_ids: Iterable[str]) -> int:
        """Delete the entries these requests created (privacy erasure), then let the
        backend remove what it can of the deleted rows (``_after_erase``)."""
        removed = 0
        for chunk in _chunks(list(request_ids)):
            with self._session() as conn:
                cur = conn.execute(
                    f"delete from answers where request_id in ({','.join('?' * len(chunk))})", chunk
                )
                removed += max(cur.rowcount, 0)
        self._after_erase()
        return removed

    def _after_erase(self) -> None:
        """Nothing by default."""

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Retention: delete entries stored before ``cutoff``, ``batch`` rows per
        transaction (a long purge never blocks answers for long). ``kind`` must be "cache"."""
        if kind != "cache":
            raise ValueError(f"the answer cache has no {kind!r} records (only 'cache')")
        limit, removed = cutoff.timestamp(), 0
        while True:
            with self._session() as conn:
                n = max(conn.execute(_PURGE_SQL, [limit, batch]).rowcount, 0)
            removed += n
            if n < batch:
                return removed

    def __len__(self) -> int:
        with self._session(write=False) as conn:
            return int(conn.execute("select count(*) from answers").fetchone()[0])

    def close(self) -> None:
        """Nothing to release by default (a shared pool)."""


class SqliteAnswerCache(SealedAnswerCache):
    """Cache in ``<state>/cache.db``; secure delete on, the WAL checkpointed after an erase."""

    SCHEMA_VERSION = 2  # 1: plaintext JSON answers, no request id (dropped: a cache refills)
    EVICT_SQL = (
        "delete from answers where key in (select key from answers order by stored desc limit -1 offset ?)"
    )

    def __init__(
        self,
        *,
        path: Path,
        ttl_seconds: float = 86400,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.time,
        vault: Vault | None = None,
    ) -> None:
        self.path = Path(path)
        self._init_cache(ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock, vault=vault)
        self._lock = threading.Lock()
        self._db = sqlite_utils.Database(connect(self.path))
        self._db.execute("PRAGMA secure_delete=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version < self.SCHEMA_VERSION and "answers" in self._db.table_names():
            self._db.execute("DROP TABLE answers")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, stored REAL NOT NULL, "
            "subject TEXT NOT NULL, request_id TEXT NOT NULL, answer BLOB NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS answers_stored ON answers(stored)")
        self._db.execute("CREATE INDEX IF NOT EXISTS answers_request ON answers(request_id)")
        self._db.execute(f"PRAGMA user_version={self.SCHEMA_VERSION}")

    def _default_vault(self) -> Vault:
        from bot.governance.vault import vault_in

        return vault_in(self.path.parent)

    @contextmanager
    def _session(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """Writes in one ``BEGIN IMMEDIATE`` transaction; reads without taking the lock."""
        with self._lock:
            conn = self._db.conn
            try:
                if not write:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError("Could not read or write the answer cache.") from exc

    def _after_erase(self) -> None:
        self.checkpoint()  # the deleted pages do not linger in cache.db-wal

    def checkpoint(self) -> bool:
        from bot.governance.vault import checkpoint

        with self._lock:
            return checkpoint(self._db.conn)

    def close(self) -> None:
        self._db.conn.close()


def require_shared_cache(settings: Any) -> None:
    """``[cache] backend = "memory"`` together with ``DEPTBOT_DATABASE_URL`` is refused.

    A memory cache records no owner per entry and lives in one process, so a privacy erase
    run from the CLI or on another replica cannot reach it: the person's answers would be
    served until the TTL. With several replicas the cache is PostgreSQL's, where an erase
    deletes the entries the person's questions created."""
    from bot.store.backend import ENV_VAR

    cache = settings.values.cache
    if cache.enabled and cache.backend == "memory" and settings.env.get(ENV_VAR, "").strip():
        raise ConfigError(
            f'"memory" cannot be used with {ENV_VAR}: an erase on another replica or from the CLI '
            'could not reach it. Use backend = "sqlite" (the cache is then in PostgreSQL) or '
            "enabled = false",
            file=settings.settings_file or "settings",
            field="cache.backend",
        )


def open_answer_cache(
    settings: Any, *, ttl_seconds: float = 86400, max_entries: int = 10000, only_existing: bool = False
) -> SealedAnswerCache | None:
    """The stored answer cache of ``settings``, sealed by its vault: PostgreSQL when
    ``DEPTBOT_DATABASE_URL`` is set (a question answered on one replica is a hit on every
    other), else ``cache.db``; ``only_existing``: None rather than a new ``cache.db``."""
    from bot.governance.vault import vault_for
    from bot.store.backend import database_for

    db = database_for(settings)
    limits: dict[str, Any] = {
        "ttl_seconds": ttl_seconds,
        "max_entries": max_entries,
        "vault": vault_for(settings),
    }
    if db is not None:
        from bot.store.pg_cache import PgAnswerCache

        return PgAnswerCache(db, **limits)
    path = settings.state_dir / "cache.db"
    if only_existing and not path.exists():
        return None
    return SqliteAnswerCache(path=path, **limits)


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
