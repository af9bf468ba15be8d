"""The audit log: one row per request, allowed or denied, in SQLite (WAL) via sqlite-utils.

Layout chosen so later governance work is additive, not a migration of meaning:
- ``requests`` holds facts only (ids, decisions, doc ids, numbers) and has a ``seq``
  integer key plus nullable ``prev_hash``/``row_hash`` columns for a hash chain;
- free text written by people (the question) lives in ``request_text`` keyed by request id,
  so encrypting or erasing personal text touches one table and never breaks the chain;
- ``feedback`` rows reference the request id.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.core.ports import AuditEntry
from bot.errors import StoreError
from bot.store.db import connect, where

SCHEMA_VERSION = 1


class SqliteAuditLog:
    """The ``AuditLog`` port on SQLite; safe to share across threads."""

    def __init__(self, *, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite_utils.Database(connect(path))
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the audit database at {path}.") from exc

    def _migrate(self) -> None:
        db = self._db
        if "requests" not in db.table_names():
            db.table("requests").create(
                {
                    "seq": int,
                    "request_id": str,
                    "time": str,
                    "user": str,
                    "platform": str,
                    "channel": str,
                    "department": str,
                    "template": str,
                    "decision": str,
                    "rule": str,
                    "status": str,
                    "doc_ids": str,  # JSON list of document ids, never text
                    "generator": str,
                    "model": str,
                    "route": str,
                    "route_reason": str,
                    "input_tokens": int,
                    "output_tokens": int,
                    "cost": float,
                    "confidence": float,
                    "retrieve_ms": float,
                    "generate_ms": float,
                    "latency_ms": float,
                    "cache_hit": int,
                    "error": str,
                    "prev_hash": str,
                    "row_hash": str,
                },
                pk="seq",
            )
            db.table("requests").create_index(["request_id"], unique=True)
            db.table("requests").create_index(["user", "time"])
            db.table("requests").create_index(["department", "time"])
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
        row: dict[str, Any] = asdict(entry)
        question = row.pop("question")
        row["time"] = entry.time.isoformat()
        row["doc_ids"] = json.dumps(list(entry.doc_ids))
        row["cache_hit"] = int(entry.cache_hit)
        try:
            with self._tx() as db:
                db.table("requests").insert(row)
                if question:
                    db.table("request_text").upsert(
                        {"request_id": entry.request_id, "question": question}, pk="request_id"
                    )
        except sqlite3.Error as exc:
            raise StoreError("Could not write the audit log.") from exc

    def record_feedback(self, request_id: str, user: str, value: str, reason: str = "") -> None:
        try:
            with self._tx() as db:
                db.table("feedback").upsert(
                    {
                        "request_id": request_id,
                        "user": user,
                        "value": value,
                        "reason": reason,
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
        rows = list(self._db.query(f"select * from requests{clause} order by seq desc limit ?", [*args, n]))
        for r in rows:
            r["doc_ids"] = json.loads(r["doc_ids"] or "[]")
        return list(reversed(rows))

    def get(self, request_id: str) -> dict[str, Any] | None:
        rows = list(self._db.query("select * from requests where request_id = ?", [request_id]))
        return rows[0] if rows else None

    def feedback_for(self, request_id: str) -> list[dict[str, Any]]:
        return list(self._db.query("select * from feedback where request_id = ?", [request_id]))

    def close(self) -> None:
        self._db.conn.close()
