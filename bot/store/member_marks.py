"""Membership marks: one version counter per conversation in PostgreSQL (migration 0012).

Why: Slack and Teams deliver a membership event (``member_joined_channel``, a Teams
``conversationUpdate``, ...) to ONE replica, while every replica caches member lists for
``members_ttl_seconds``. Without a shared mark, the replicas that missed the event would
post channel answers against the old list (someone who just joined reads an answer meant
for the old members). The replica that gets the event bumps the mark; every replica reads
it before trusting a cached list (``bot.adapters.member_marks``).

Only with ``DEPTBOT_DATABASE_URL``: a single SQLite process gets every event itself, so
``marks_for`` returns None there and nothing changes. Keys are namespaced by the adapter
("slack:C123", "teams:<tenant>:<id>"). Rows are never deleted (one per conversation that
ever changed): a counter that started again at 0 could equal a stale cached version.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.store.backend import Database
from bot.store.pg_store import PgStore

BUMP = (
    "insert into member_marks (conversation, version, changed_at) values (?, 1, now()) "
    "on conflict (conversation) do update set version = member_marks.version + 1, changed_at = now() "
    "returning version"
)
READ = "select version from member_marks where conversation = ?"


class PgMemberMarks(PgStore):
    """The shared marks; thread-safe (pooled autocommit connections). Errors: StoreError."""

    WHAT = "the membership marks"

    def __init__(self, db: Database) -> None:
        self._open_pg(db)

    def bump(self, keys: Iterable[str]) -> dict[str, int]:
        """Membership of these conversations changed: their new versions."""
        found: dict[str, int] = {}
        with self._pg(tx=False) as c:
            for key in dict.fromkeys(keys):
                row = c.execute(BUMP, [key]).fetchone()
                found[key] = int(row[0]) if row else 0
        return found

    def version(self, key: str) -> int:
        """The conversation's version; 0 when no change was ever reported."""
        with self._pg(tx=False) as c:
            row = c.execute(READ, [key]).fetchone()
        return int(row[0]) if row else 0


def marks_for(state: object) -> PgMemberMarks | None:
    """The marks next to an adapter's shared state store (its ``db`` when that is PostgreSQL),
    else None: a SQLite store means one process, which sees every event itself."""
    db = getattr(state, "db", None)
    return PgMemberMarks(db) if isinstance(db, Database) else None
