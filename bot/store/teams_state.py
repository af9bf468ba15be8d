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

Text is sealed (``bot.governance.vault``): history turns and conversation references under
the Teams user's subject ``teams:<user id>`` (this store never sees e-mails), reply card
payloads under ``teams:replies``. Assistant turns keep the request id they answered, which
is how a privacy erasure finds a person's Teams user id from their e-mail (the audit log
maps e-mail → request ids): ``users_for_requests``. History expires long before references,
so that path alone would leave a reference behind: ``teams_people`` also links each Teams
user id to the asker's e-mail *as keys.db stores subjects* (``subject_id``, a hash; the
e-mail itself is not kept), written when the adapter resolves who is asking
(``people.link``), so an erase finds every row of the person directly (``users_for_person``).

The logic is written once (``TeamsStore``) with SQL both engines accept; ``TeamsState`` is
the SQLite file, ``bot.store.pg_teams_state.PgTeamsState`` the PostgreSQL tables
(migration 0006) every replica shares with ``DEPTBOT_DATABASE_URL`` (``open_teams_state``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.labels import answer_turns
from bot.core.types import Answer, Classification, Turn
from bot.errors import StoreError
from bot.store.cache import answer_from_dict, answer_to_dict
from bot.store.db import open_db
from bot.store.state import ensure_private_dir

if TYPE_CHECKING:
    from bot.governance.vault import Vault

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
    key TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, text BLOB NOT NULL,
    label INTEGER, at REAL NOT NULL, request_id TEXT, PRIMARY KEY (key, seq)
);
CREATE INDEX IF NOT EXISTS teams_history_at ON teams_history(at);
CREATE TABLE IF NOT EXISTS teams_replies (
    message_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, payload TEXT, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS teams_replies_at ON teams_replies(at);
CREATE TABLE IF NOT EXISTS teams_references (key TEXT PRIMARY KEY, reference TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS teams_references_at ON teams_references(at);
CREATE TABLE IF NOT EXISTS teams_people (user_id TEXT PRIMARY KEY, person TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS teams_people_person ON teams_people(person);
CREATE INDEX IF NOT EXISTS teams_people_at ON teams_people(at);
"""


def _key(key: Hashable) -> str:
    """Adapters key by tuples of strings; JSON keeps them distinct and readable."""
    return json.dumps(key, separators=(",", ":"), default=str)


REPLIES_SUBJECT = "teams:replies"
PURGE_KINDS = {
    "history": ("teams_history", "at"),
    "replies": ("teams_replies", "at"),
    "references": ("teams_references", "at"),
}
# Each table's primary key: what batched deletes select by (no rowid in PostgreSQL).
_PK = {
    "teams_history": "key, seq",
    "teams_replies": "message_id",
    "teams_references": "key",
    "teams_people": "user_id",
}
LINK_REFRESH = 24 * 3600.0  # a person's link is rewritten at most daily (its TTL is the references')


def user_subject(key_json: str) -> str:
    """Whose text a row is: the Teams user id, the last part of history keys
    ``(conversation, user)`` and reference keys ``("teams", tenant, user)``."""
    try:
        parts = json.loads(key_json)
    except ValueError:
        parts = None
    user = parts[-1] if isinstance(parts, list) and parts else key_json
    return f"teams:{user}"


class TeamsStore:
    """The three views over one backend, plus retention and privacy; thread-safe. A
    subclass says how statements run (``read``; ``write``: one transaction), how caps are
    enforced (``_cleanup_now``) and what removes deleted rows' traces (``checkpoint``)."""

    path: Path | str  # what messages name
    # SQL for "every row after the first N": SQLite needs a LIMIT before OFFSET
    ALL_AFTER = "OFFSET ?"

    def _init_store(self, *, limits: Limits, clock: Callable[[], float], vault: Vault | None) -> None:
        self.limits = limits
        self._clock = clock
        self._vault = vault
        self._writes = 0
        self._linked: dict[str, tuple[str, float]] = {}  # user id → (person, written at), this process
        # whether the last erase's deleted rows left no trace behind (its ``checkpoint``):
        # the privacy receipt's files_checkpointed says so when it did not
        self.erase_checkpointed = True
        self._links_lock = threading.Lock()
        self.history = PersistentHistory(self)
        self.replies = PersistentReplies(self)
        self.references = PersistentReferences(self)
        self.people = PersonLinks(self)

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = self._default_vault()
        return self._vault

    def _default_vault(self) -> Vault:
        raise StoreError("The Teams state needs the vault of its settings (vault_for).")

    def seal(self, subject: str, text: str, context: str) -> bytes:
        return self.vault.seal(subject, text, context)

    def open(self, subject: str, blob: Any, context: str) -> str:
        return self.vault.open(subject, blob, context)

    def now(self) -> float:
        return self._clock()

    # ── what a backend provides ──────────────────────────────────────────────────────

    def read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _run(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Run statements in one transaction (a crash never leaves half a history update);
        the rows each changed."""
        raise NotImplementedError

    def _cleanup_now(self) -> None:
        raise NotImplementedError

    def checkpoint(self) -> bool:
        """Remove what the backend keeps of deleted rows (after an erase)."""
        return True

    def close(self) -> None:
        """Nothing to release by default (a shared pool)."""

    # ── shared ───────────────────────────────────────────────────────────────────────

    def write(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        self._run(statements)
        self._writes += 1
        if self._writes % CLEANUP_EVERY == 0:
            self.cleanup()

    def cleanup(self) -> None:
        self._cleanup_now()

    def _cleanup_statements(self) -> list[tuple[str, tuple[Any, ...]]]:
        now, lim, after = self._clock(), self.limits, self.ALL_AFTER
        out: list[tuple[str, tuple[Any, ...]]] = [
            ("DELETE FROM teams_history WHERE at < ?", (now - lim.history_ttl,)),
            ("DELETE FROM teams_replies WHERE at < ?", (now - lim.reply_ttl,)),
            ("DELETE FROM teams_references WHERE at < ?", (now - lim.reference_ttl,)),
            ("DELETE FROM teams_people WHERE at < ?", (now - lim.reference_ttl,)),
            (
                "DELETE FROM teams_history WHERE key IN (SELECT key FROM teams_history GROUP BY key "
                f"ORDER BY MAX(at) DESC {after})",
                (lim.history_conversations,),
            ),
        ]
        for table, limit in (
            ("teams_replies", lim.replies),
            ("teams_references", lim.references),
            ("teams_people", lim.references),
        ):
            pk = _PK[table]
            newest_first = f"SELECT {pk} FROM {table} ORDER BY at DESC {after}"
            out.append((f"DELETE FROM {table} WHERE ({pk}) IN ({newest_first})", (limit,)))
        return out

    # ── retention and privacy ────────────────────────────────────────────────────────

    def purge_older_than(self, kind: str, cutoff: datetime, *, batch: int = 500) -> int:
        """Retention: delete ``kind`` rows ("history", "replies" or "references") last
        written before ``cutoff``, ``batch`` rows per transaction."""
        if kind not in PURGE_KINDS:
            raise ValueError(f"the Teams state has no {kind!r} records (one of {', '.join(PURGE_KINDS)})")
        table, column = PURGE_KINDS[kind]
        pk = _PK[table]
        limit, removed = cutoff.timestamp(), 0
        while True:
            (n,) = self._run(
                [
                    (
                        f"DELETE FROM {table} WHERE ({pk}) IN "
                        f"(SELECT {pk} FROM {table} WHERE {column} < ? LIMIT ?)",
                        (limit, batch),
                    )
                ]
            )
            removed += n
            if n < batch:
                return removed

    def users_for_requests(self, request_ids: Sequence[str]) -> list[str]:
        """Teams user ids whose history holds an answer to one of these requests."""
        found: set[str] = set()
        for chunk in _chunks(list(request_ids)):
            rows = self.read(
                f"SELECT DISTINCT key FROM teams_history WHERE request_id IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            )
            found.update(user_subject(k).removeprefix("teams:") for (k,) in rows)
        return sorted(found)

    def users_for_person(self, email: str) -> list[str]:
        """Teams user ids linked to ``email`` (``people.link``): found directly, whatever
        has expired from the history since."""
        from bot.governance.vault import subject_id

        rows = self.read("SELECT user_id FROM teams_people WHERE person = ?", (subject_id(email),))
        return sorted(str(u) for (u,) in rows)

    def users_of(self, email: str, request_ids: Sequence[str]) -> list[str]:
        """Every Teams user id of the person: linked to the e-mail, or answered in the history."""
        return sorted({*self.users_for_person(email), *self.users_for_requests(request_ids)})

    def _keys_of(self, table: str, wanted: set[str]) -> list[str]:
        return [k for (k,) in self.read(f"SELECT DISTINCT key FROM {table}", ()) if user_subject(k) in wanted]

    def export(self, users: Sequence[str], request_ids: Sequence[str]) -> dict[str, Any]:
        """Everything kept for these Teams users and requests, opened (privacy export)."""
        history: list[dict[str, Any]] = []
        references: list[dict[str, Any]] = []
        wanted = {f"teams:{u}" for u in users}
        for key in sorted(self._keys_of("teams_history", wanted)):
            for seq, role, text, label, at, rid in self.read(
                "SELECT seq, role, text, label, at, request_id FROM teams_history WHERE key = ? ORDER BY seq",
                (key,),
            ):
                history.append(
                    {
                        "conversation": key,
                        "role": role,
                        "text": self._open_or_note(user_subject(key), text, f"teams_history:{key}:{seq}"),
                        "label": label,
                        "time": _iso(at),
                        "request_id": rid,
                    }
                )
        for key in self._keys_of("teams_references", wanted):
            for ref, at in self.read("SELECT reference, at FROM teams_references WHERE key = ?", (key,)):
                references.append(
                    {
                        "key": key,
                        "reference": self._open_or_note(user_subject(key), ref, f"teams_references:{key}"),
                        "time": _iso(at),
                    }
                )
        replies: list[dict[str, Any]] = []
        for chunk in _chunks(list(request_ids)):
            rows = self.read(
                "SELECT message_id, request_id, payload, at FROM teams_replies "
                f"WHERE request_id IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            )
            for mid, rid, payload, at in rows:
                text = (
                    None
                    if payload is None
                    else self._open_or_note(REPLIES_SUBJECT, payload, f"teams_replies:{mid}")
                )
                replies.append({"message_id": mid, "request_id": rid, "payload": text, "time": _iso(at)})
        return {"history": history, "replies": replies, "references": references, "accounts": sorted(users)}

    def erase(
        self, users: Sequence[str], request_ids: Sequence[str], *, email: str | None = None
    ) -> dict[str, int]:
        """Delete these users' history, references and person links (and every link to
        ``email``), the reply rows of these requests, shred the users' Teams subjects, and
        remove the deleted rows' traces (privacy erasure)."""
        from bot.governance.vault import subject_id

        counts = {"history": 0, "replies": 0, "references": 0}
        wanted = {f"teams:{u}" for u in users}
        statements: list[tuple[str, tuple[Any, ...]]] = []
        kinds: list[str | None] = []
        for table, kind in (("teams_history", "history"), ("teams_references", "references")):
            for k in self._keys_of(table, wanted):
                statements.append((f"DELETE FROM {table} WHERE key = ?", (k,)))
                kinds.append(kind)
        for chunk in _chunks(list(request_ids)):
            statements.append(
                (
                    f"DELETE FROM teams_replies WHERE request_id IN ({','.join('?' * len(chunk))})",
                    tuple(chunk),
                )
            )
            kinds.append("replies")
        for chunk in _chunks(sorted(users)):
            statements.append(
                (f"DELETE FROM teams_people WHERE user_id IN ({','.join('?' * len(chunk))})", tuple(chunk))
            )
            kinds.append(None)
        if email:
            statements.append(("DELETE FROM teams_people WHERE person = ?", (subject_id(email),)))
            kinds.append(None)
        for counted, n in zip(kinds, self._run(statements) if statements else [], strict=True):
            if counted is not None:
                counts[counted] += n
        with self._links_lock:
            for u in users:
                self._linked.pop(u, None)
        for subject in wanted:
            self.vault.shred(subject)
        self.erase_checkpointed = self.checkpoint()
        return counts

    def _open_or_note(self, subject: str, blob: Any, context: str) -> Any:
        from bot.governance.vault import Tampered, TextErased

        try:
            text = self.open(subject, blob, context)
        except (TextErased, Tampered) as exc:  # this row only; an outage fails the export
            return {"unreadable": type(exc).__name__}
        try:
            return json.loads(text) if context.startswith(("teams_replies", "teams_references")) else text
        except ValueError:
            return text


class TeamsState(TeamsStore):
    """The Teams state in one SQLite file in the state folder (``FILE``)."""

    FILE = "teams-state.sqlite3"
    ALL_AFTER = "LIMIT -1 OFFSET ?"

    def __init__(
        self,
        *,
        path: Path,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
        vault: Vault | None = None,
    ) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._init_store(limits=limits, clock=clock, vault=vault)
        self._conn = open_db(path, _SCHEMA, "the Teams state database")
        try:
            self._conn.execute("PRAGMA secure_delete=ON")
            self._migrate()
            self.cleanup()
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the Teams state database at {path}.") from exc

    @classmethod
    def in_state_dir(
        cls, state_dir: Path, *, history_turns: int = 6, vault: Vault | None = None
    ) -> TeamsState:
        ensure_private_dir(Path(state_dir))
        return cls(path=Path(state_dir) / cls.FILE, limits=Limits(history_turns=history_turns), vault=vault)

    def _default_vault(self) -> Vault:
        from bot.governance.vault import vault_in

        return vault_in(Path(self.path).parent)

    def _migrate(self) -> None:
        """Version 1 kept text in plaintext and no request ids: add the column, seal in place."""
        ex = self._conn.execute
        columns = {row[1] for row in ex("PRAGMA table_info(teams_history)").fetchall()}
        if "request_id" not in columns:
            ex("ALTER TABLE teams_history ADD COLUMN request_id TEXT")
        ex("CREATE INDEX IF NOT EXISTS teams_history_request ON teams_history(request_id)")
        history = ex("SELECT key, seq, text FROM teams_history WHERE typeof(text) = 'text'").fetchall()
        replies = ex(
            "SELECT message_id, payload FROM teams_replies WHERE typeof(payload) = 'text'"
        ).fetchall()
        refs = ex("SELECT key, reference FROM teams_references WHERE typeof(reference) = 'text'").fetchall()
        if not (history or replies or refs):
            return
        updates: list[tuple[str, tuple[Any, ...]]] = []
        for key, seq, text in history:
            blob = self.seal(user_subject(key), text, f"teams_history:{key}:{seq}")
            updates.append(("UPDATE teams_history SET text = ? WHERE key = ? AND seq = ?", (blob, key, seq)))
        for mid, payload in replies:
            blob = self.seal(REPLIES_SUBJECT, payload, f"teams_replies:{mid}")
            updates.append(("UPDATE teams_replies SET payload = ? WHERE message_id = ?", (blob, mid)))
        for key, ref in refs:
            blob = self.seal(user_subject(key), ref, f"teams_references:{key}")
            updates.append(("UPDATE teams_references SET reference = ? WHERE key = ?", (blob, key)))
        self.write(updates)

    def read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _run(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> list[int]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                counts = [max(self._conn.execute(sql, params).rowcount, 0) for sql, params in statements]
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return counts

    def _cleanup_now(self) -> None:
        with self._lock:
            for sql, params in self._cleanup_statements():
                self._conn.execute(sql, params)

    def checkpoint(self) -> bool:
        from bot.governance.vault import checkpoint

        with self._lock:
            return checkpoint(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_teams_state(settings: Any, *, only_existing: bool = False) -> TeamsStore | None:
    """The Teams state of ``settings``, sealed by its vault: PostgreSQL when
    ``DEPTBOT_DATABASE_URL`` is set (every replica shares history, reply cards and
    references), else ``teams-state.sqlite3``; ``only_existing``: None rather than a new file."""
    from bot.governance.vault import vault_for
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is not None:
        from bot.store.pg_teams_state import PgTeamsState

        return PgTeamsState(db, vault=vault_for(settings))
    path = Path(settings.state_dir) / TeamsState.FILE
    if only_existing and not path.exists():
        return None
    ensure_private_dir(Path(settings.state_dir))
    return TeamsState(path=path, vault=vault_for(settings))


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _iso(at: float) -> str:
    from datetime import UTC

    return datetime.fromtimestamp(at, UTC).isoformat()


class PersistentHistory:
    """``HistoryStore`` over ``teams_history``: the last ``history_turns`` turns per key."""

    def __init__(self, state: TeamsStore) -> None:
        self._state = state

    def get(self, key: Hashable) -> tuple[Turn, ...]:
        k = _key(key)
        rows = self._state.read(
            "SELECT seq, role, text, label FROM teams_history WHERE key = ? AND at >= ? ORDER BY seq",
            (k, self._state.now() - self._state.limits.history_ttl),
        )
        subject = user_subject(k)
        try:
            return tuple(
                Turn(
                    role=role,
                    text=self._state.open(subject, text, f"teams_history:{k}:{seq}"),
                    label=None if label is None else Classification(label),
                )
                for seq, role, text, label in rows
            )
        except StoreError as exc:  # erased or unreadable: answer without the earlier turns
            log.warning("Teams history could not be opened (%s); continuing without it", type(exc).__name__)
            return ()

    def add(self, key: Hashable, question: str, answer: str, label: Classification | None = None) -> None:
        self.extend(key, (Turn(role="user", text=question), Turn(role="assistant", text=answer, label=label)))

    def add_answer(self, key: Hashable, question: str, answer: Answer) -> None:
        self.extend(key, answer_turns(question, answer), request_id=answer.request_id)

    def extend(self, key: Hashable, new: Iterable[Turn], *, request_id: str | None = None) -> None:
        turns = list(new)
        if not turns:
            return
        k, now, keep = _key(key), self._state.now(), self._state.limits.history_turns
        subject = user_subject(k)
        top = self._state.read("SELECT COALESCE(MAX(seq), 0) FROM teams_history WHERE key = ?", (k,))[0][0]
        # seq is fixed before sealing (it is part of the sealed text's context); a concurrent
        # writer for the same key replaces the same seq (one turn lost, never one misread)
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT INTO teams_history(key, seq, role, text, label, at, request_id) VALUES "
                "(?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key, seq) DO UPDATE SET role = excluded.role, "
                "text = excluded.text, label = excluded.label, at = excluded.at, "
                "request_id = excluded.request_id",
                (
                    k,
                    top + i,
                    t.role,
                    self._state.seal(subject, t.text, f"teams_history:{k}:{top + i}"),
                    None if t.label is None else int(t.label),
                    now,
                    request_id,
                ),
            )
            for i, t in enumerate(turns, start=1)
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

    def __init__(self, state: TeamsStore) -> None:
        self._state = state

    def remember(self, message_id: str, request_id: str, payload: Any = None) -> None:
        if not message_id:
            return
        self._state.write(
            [
                (
                    "INSERT INTO teams_replies(message_id, request_id, payload, at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (message_id) DO UPDATE SET request_id = excluded.request_id, "
                    "payload = excluded.payload, at = excluded.at",
                    (message_id, request_id, self._seal_payload(message_id, payload), self._state.now()),
                )
            ]
        )

    def request_id(self, message_id: str | None) -> str | None:
        row = self._row(message_id)
        return str(row[0]) if row else None

    def payload(self, message_id: str | None) -> Any:
        row = self._row(message_id)
        if not row or row[1] is None or not message_id:
            return None
        try:
            return _load_payload(self._state.open(REPLIES_SUBJECT, row[1], f"teams_replies:{message_id}"))
        except StoreError as exc:
            log.info(
                "stored answer card could not be opened (%s); the card is not updated", type(exc).__name__
            )
            return None

    def _seal_payload(self, message_id: str, payload: Any) -> bytes | None:
        text = _dump_payload(payload)
        return (
            None if text is None else self._state.seal(REPLIES_SUBJECT, text, f"teams_replies:{message_id}")
        )

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

    def __init__(self, state: TeamsStore) -> None:
        self._state = state

    def put(self, key: Hashable, reference: dict[str, Any]) -> None:
        k = _key(key)
        sealed = self._state.seal(
            user_subject(k), json.dumps(reference, default=str), f"teams_references:{k}"
        )
        self._state.write(
            [
                (
                    "INSERT INTO teams_references(key, reference, at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET reference = excluded.reference, at = excluded.at",
                    (k, sealed, self._state.now()),
                )
            ]
        )

    def get(self, key: Hashable) -> dict[str, Any] | None:
        k = _key(key)
        rows = self._state.read(
            "SELECT reference FROM teams_references WHERE key = ? AND at >= ?",
            (k, self._state.now() - self._state.limits.reference_ttl),
        )
        if not rows:
            return None
        try:
            found = json.loads(self._state.open(user_subject(k), rows[0][0], f"teams_references:{k}"))
        except (StoreError, ValueError) as exc:
            log.info("conversation reference could not be opened (%s)", type(exc).__name__)
            return None
        return found if isinstance(found, dict) else None


class PersonLinks:
    """``teams_people``: which Teams user id is which person (their e-mail's ``subject_id``,
    never the e-mail), so an erase finds every Teams row of theirs directly. Rewritten at
    most once a day per user per process (``LINK_REFRESH``) while the row is there (a
    cheap read); expires like references."""

    def __init__(self, state: TeamsStore) -> None:
        self._state = state

    def link(self, user_id: str, email: str | None) -> None:
        if not user_id or not email or "@" not in email:
            return
        from bot.governance.vault import subject_id

        person, now = subject_id(email), self._state.now()
        st = self._state
        with st._links_lock:
            seen = st._linked.get(user_id)
        # The memo only saves the daily rewrite: an erase in another process (the CLI, another
        # replica) deletes the row without touching this memo, so the row itself is asked for.
        if (
            seen is not None
            and seen[0] == person
            and now - seen[1] < LINK_REFRESH
            and st.read("SELECT 1 FROM teams_people WHERE user_id = ? AND person = ?", (user_id, person))
        ):
            return
        st.write(
            [
                (
                    "INSERT INTO teams_people(user_id, person, at) VALUES (?, ?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET person = excluded.person, at = excluded.at",
                    (user_id, person, now),
                )
            ]
        )
        with st._links_lock:  # only once written: a failed write is retried next time
            st._linked[user_id] = (person, now)


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
