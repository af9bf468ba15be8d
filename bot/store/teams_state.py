"""The Teams adapter's conversation state in SQLite (WAL), so it survives a restart.

Three tables behind the interfaces of ``bot.store.conversations`` (``HistoryStore``,
``ReplyStore``, ``ReferenceStore``), one small file per state folder:

- ``teams_history``: the last ``turns`` turns per conversation key, each with its label as
  recorded (NULL stays None: an unlabelled assistant turn counts as restricted in the core,
  so a label is never invented or dropped on the way through the database);
- ``teams_replies``: posted message id → request id, plus the payload needed to re-render
  an answer card after a vote (an ``Answer`` is stored with ``cache.answer_to_dict``;
  other JSON-able payloads as they are; anything else is not kept, only the request id);
- ``teams_references``: conversation references (JSON) for proactive 1:1 messages.

Bounded like ``dedup``: rows expire after a TTL per table, and the number of conversations,
replies and references is capped (oldest first). Cleanup runs on open and every
``CLEANUP_EVERY`` writes, so no scheduler is needed. Writes are single small statements
(well under a millisecond in WAL mode), cheap enough to run where the adapter calls them.
The file is created under the process umask (077 in ``deptbot serve``: 0600).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.labels import answer_turns
from bot.core.types import Answer, Classification, Turn
from bot.errors import StoreError
from bot.store.cache import answer_from_dict, answer_to_dict
from bot.store.db import open_db
from bot.store.state import ensure_private_dir

log = logging.getLogger(__name__)

CLEANUP_EVERY = 500


@dataclass(frozen=True)
class Limits:
    """How long and how much is kept; defaults suit one busy tenant."""

    history_turns: int = 6
    history_conversations: int = 5000
    history_ttl: float = 14 * 24 * 3600.0  # like answered threads in ``dedup``
    replies: int = 50_000
    reply_ttl: float = 30 * 24 * 3600.0  # late 👍/👎 still count for a month
    references: int = 20_000
    reference_ttl: float = 180 * 24 * 3600.0  # a personal chat's id is stable; refreshed on use


_SCHEMA = """
CREATE TABLE IF NOT EXISTS teams_history (
    key TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
    label INTEGER, at REAL NOT NULL, PRIMARY KEY (key, seq)
);
CREATE INDEX IF NOT EXISTS teams_history_at ON teams_history(at);
CREATE TABLE IF NOT EXISTS teams_replies (
    message_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, payload TEXT, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS teams_replies_at ON teams_replies(at);
CREATE TABLE IF NOT EXISTS teams_references (key TEXT PRIMARY KEY, reference TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS teams_references_at ON teams_references(at);
"""


def _key(key: Hashable) -> str:
    """Adapters key by tuples of strings; JSON keeps them distinct and readable."""
    return json.dumps(key, separators=(",", ":"), default=str)


class TeamsState:
    """One connection shared by the three views; thread-safe."""

    FILE = "teams-state.sqlite3"

    def __init__(
        self, *, path: Path, limits: Limits = Limits(), clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._writes = 0
        self._conn = open_db(path, _SCHEMA, "the Teams state database")
        try:
            self.cleanup()
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the Teams state database at {path}.") from exc
        self.history = PersistentHistory(self)
        self.replies = PersistentReplies(self)
        self.references = PersistentReferences(self)

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, history_turns: int = 6) -> TeamsState:
        ensure_private_dir(Path(state_dir))
        return cls(path=Path(state_dir) / cls.FILE, limits=Limits(history_turns=history_turns))

    def now(self) -> float:
        return self._clock()

    def read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def write(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        """Run statements in one transaction (a crash never leaves half a history update)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._conn.execute(sql, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._writes += 1
            if self._writes % CLEANUP_EVERY == 0:
                self._cleanup_locked()

    def cleanup(self) -> None:
        with self._lock:
            self._cleanup_locked()

    def _cleanup_locked(self) -> None:
        now, lim, ex = self._clock(), self.limits, self._conn.execute
        ex("DELETE FROM teams_history WHERE at < ?", (now - lim.history_ttl,))
        ex("DELETE FROM teams_replies WHERE at < ?", (now - lim.reply_ttl,))
        ex("DELETE FROM teams_references WHERE at < ?", (now - lim.reference_ttl,))
        ex(
            "DELETE FROM teams_history WHERE key IN (SELECT key FROM teams_history GROUP BY key "
            "ORDER BY MAX(at) DESC LIMIT -1 OFFSET ?)",
            (lim.history_conversations,),
        )
        for table, limit in (("teams_replies", lim.replies), ("teams_references", lim.references)):
            ex(
                f"DELETE FROM {table} WHERE rowid IN "
                f"(SELECT rowid FROM {table} ORDER BY at DESC LIMIT -1 OFFSET ?)",
                (limit,),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PersistentHistory:
    """``HistoryStore`` over ``teams_history``: the last ``history_turns`` turns per key."""

    def __init__(self, state: TeamsState) -> None:
        self._state = state

    def get(self, key: Hashable) -> tuple[Turn, ...]:
        rows = self._state.read(
            "SELECT role, text, label FROM teams_history WHERE key = ? AND at >= ? ORDER BY seq",
            (_key(key), self._state.now() - self._state.limits.history_ttl),
        )
        return tuple(
            Turn(role=role, text=text, label=None if label is None else Classification(label))
            for role, text, label in rows
        )

    def add(self, key: Hashable, question: str, answer: str, label: Classification | None = None) -> None:
        self.extend(key, (Turn(role="user", text=question), Turn(role="assistant", text=answer, label=label)))

    def add_answer(self, key: Hashable, question: str, answer: Answer) -> None:
        self.extend(key, answer_turns(question, answer))

    def extend(self, key: Hashable, new: Iterable[Turn]) -> None:
        turns = list(new)
        if not turns:
            return
        k, now, keep = _key(key), self._state.now(), self._state.limits.history_turns
        # seq continues from the key's highest; the subquery runs inside the transaction
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT INTO teams_history(key, seq, role, text, label, at) VALUES "
                "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM teams_history WHERE key = ?), ?, ?, ?, ?)",
                (k, k, t.role, t.text, None if t.label is None else int(t.label), now),
            )
            for t in turns
        ]
        statements.append(
            (
                "DELETE FROM teams_history WHERE key = ? AND seq <= "
                "(SELECT MAX(seq) FROM teams_history WHERE key = ?) - ?",
                (k, k, keep),
            )
        )
        self._state.write(statements)


class PersistentReplies:
    """``ReplyStore`` over ``teams_replies``."""

    def __init__(self, state: TeamsState) -> None:
        self._state = state

    def remember(self, message_id: str, request_id: str, payload: Any = None) -> None:
        if not message_id:
            return
        self._state.write(
            [
                (
                    "INSERT OR REPLACE INTO teams_replies(message_id, request_id, payload, at) "
                    "VALUES (?, ?, ?, ?)",
                    (message_id, request_id, _dump_payload(payload), self._state.now()),
                )
            ]
        )

    def request_id(self, message_id: str | None) -> str | None:
        row = self._row(message_id)
        return str(row[0]) if row else None

    def payload(self, message_id: str | None) -> Any:
        row = self._row(message_id)
        return _load_payload(row[1]) if row else None

    def _row(self, message_id: str | None) -> tuple[Any, ...] | None:
        if not message_id:
            return None
        rows = self._state.read(
            "SELECT request_id, payload FROM teams_replies WHERE message_id = ? AND at >= ?",
            (message_id, self._state.now() - self._state.limits.reply_ttl),
        )
        return rows[0] if rows else None


class PersistentReferences:
    """``ReferenceStore`` over ``teams_references``."""

    def __init__(self, state: TeamsState) -> None:
        self._state = state

    def put(self, key: Hashable, reference: dict[str, Any]) -> None:
        self._state.write(
            [
                (
                    "INSERT OR REPLACE INTO teams_references(key, reference, at) VALUES (?, ?, ?)",
                    (_key(key), json.dumps(reference, default=str), self._state.now()),
                )
            ]
        )

    def get(self, key: Hashable) -> dict[str, Any] | None:
        rows = self._state.read(
            "SELECT reference FROM teams_references WHERE key = ? AND at >= ?",
            (_key(key), self._state.now() - self._state.limits.reference_ttl),
        )
        if not rows:
            return None
        found = json.loads(rows[0][0])
        return found if isinstance(found, dict) else None


def _dump_payload(payload: Any) -> str | None:
    if payload is None:
        return None
    if isinstance(payload, Answer):
        return json.dumps({"answer": answer_to_dict(payload)}, ensure_ascii=False)
    try:
        return json.dumps({"value": payload}, ensure_ascii=False)
    except (TypeError, ValueError):
        log.info("reply payload of type %s not kept (not JSON-able)", type(payload).__name__)
        return None


def _load_payload(text: str | None) -> Any:
    if text is None:
        return None
    data = json.loads(text)
    if "answer" in data:
        try:
            return answer_from_dict(data["answer"])
        except (KeyError, TypeError, ValueError):
            log.info("stored answer card could not be read back; the vote is kept, the card not updated")
            return None
    return data.get("value")
