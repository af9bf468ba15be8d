"""The ``AnswerCache`` port: SQLite (shared by processes) or in memory, both with a TTL.

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
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.core.types import Answer, Citation, Classification, Status, Timings, Usage
from bot.store.db import connect

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

    def put(self, key: str, answer: Answer) -> None:
        with self._lock:
            self._data[key] = (self._clock(), answer)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)


class SqliteAnswerCache:
    """Cache in ``<state>/cache.db``; answers stored as JSON; expired rows purged on write."""

    def __init__(
        self,
        *,
        path: Path,
        ttl_seconds: float = 86400,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite_utils.Database(connect(self.path))
        self._db.table("answers").create(
            {"key": str, "stored": float, "answer": str}, pk="key", if_not_exists=True
        )
        self._db.table("answers").create_index(["stored"], if_not_exists=True)
        self._writes = 0

    def get(self, key: str) -> Answer | None:
        try:
            with self._lock:
                row = self._db.execute("select stored, answer from answers where key = ?", [key]).fetchone()
            if row is None or self._clock() - row[0] > self._ttl:
                return None
            return loads(row[1])
        except (sqlite3.Error, ValueError, TypeError, KeyError):
            log.warning("answer cache read failed; treating as a miss", exc_info=True)
            return None

    def put(self, key: str, answer: Answer) -> None:
        try:
            payload = dumps(answer)
            with self._lock:
                conn = self._db.conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "insert or replace into answers (key, stored, answer) values (?, ?, ?)",
                        [key, self._clock(), payload],
                    )
                    self._writes += 1
                    if self._writes % 100 == 1:
                        self._evict(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except (sqlite3.Error, TypeError, ValueError):
            log.warning("answer cache write failed; continuing without caching", exc_info=True)

    def _evict(self, conn: sqlite3.Connection) -> None:
        conn.execute("delete from answers where stored < ?", [self._clock() - self._ttl])
        conn.execute(
            "delete from answers where key in "
            "(select key from answers order by stored desc limit -1 offset ?)",
            [self._max],
        )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("select count(*) from answers").fetchone()[0])

    def close(self) -> None:
        self._db.conn.close()
