"""Encryption at rest for personal text: AES-GCM under one data key per subject.

A *subject* is whose text it is: a person's lower-cased e-mail, or a named pool such as
``cache:hr`` (cache entries are shared by everyone with the same access, see
``bot.store.cache``) or ``teams:<user id>`` (Teams state, which knows no e-mail). Each
subject gets its own random 256-bit data key, created on first use and stored only
*wrapped* (AES-GCM under the master key, ``bot.governance.keys``) in ``<state>/keys.db``,
or with ``DEPTBOT_DATABASE_URL`` in PostgreSQL (``bot.store.pg_keys``), which every replica
shares: text sealed on one opens on another, and an erase on one shreds the key for all.

Why per subject: erasing a person is destroying one row (``shred``); every copy of their
text anywhere — rows, backups, old WAL frames — becomes noise at once (crypto-shredding).
Rows are also deleted where we know them, so the files hold neither text nor the key.

Sealed blob (bytes): ``0x01 | data key id (8) | nonce (12) | ciphertext+tag``. The
additional data binds the version, the data key id, the subject and a *context* naming
where the blob lives (table and row), so a blob copied to another row or person fails to
open instead of showing the wrong text. Every failure is a ``StoreError`` subclass with a
message safe to show; plaintext is never returned in place of a blob.

Subjects are stored as a hash (``subject_id``), so keys.db does not list who asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.errors import StoreError
from bot.governance import keys as mk
from bot.store.db import open_db

VERSION = b"\x01"
KID_BYTES = 8
NONCE_BYTES = 12
HEADER = 1 + KID_BYTES + NONCE_BYTES
FILE = "keys.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_keys (
    subject_id TEXT PRIMARY KEY,
    key_id BLOB NOT NULL,
    master_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS subject_keys_master ON subject_keys(master_id);
"""


class VaultError(StoreError):
    """Sealed text could not be opened or sealed; the message says why, safely."""


class TextErased(VaultError):
    """The subject's data key is gone: the text was erased on purpose."""

    user_message = "This text was erased (privacy request)."


class MasterKeyMissing(VaultError):
    """Data keys are wrapped with a master key that is not configured here."""


class Tampered(VaultError):
    """A blob failed its integrity check (edited, moved to another row, or damaged)."""

    user_message = "Stored personal text failed its integrity check (edited or damaged)."


def subject_of(subject: str) -> str:
    """The canonical subject: trimmed and lower-cased (e-mails compare case-insensitively)."""
    return subject.strip().lower()


def subject_id(subject: str) -> str:
    """What keys.db stores instead of the subject itself."""
    return hashlib.sha256(b"deptbot-subject\0" + subject_of(subject).encode("utf-8")).hexdigest()[:32]


def secure(conn: sqlite3.Connection) -> None:
    """Deleted rows are overwritten with zeros (not left in free pages) on this connection."""
    conn.execute("PRAGMA secure_delete=ON")


CHECKPOINT_WAIT_MS = 250  # how long one try waits for readers (the connection's own: 30 s)


def checkpoint(conn: sqlite3.Connection, *, tries: int = 20) -> bool:
    """Copy the WAL into the database and truncate it to zero bytes, so frames holding
    rows deleted by an erase do not linger in ``-wal``. True when it completed (another
    process reading at that moment makes SQLite report busy: retried briefly, ~15 s in
    all). Each try waits ``CHECKPOINT_WAIT_MS`` for readers, not the connection's busy
    timeout: with 30 s a try, a copy left open in a sqlite3 shell held an erase's thread
    ten minutes per file before it was reported in use."""
    (previous,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
    try:
        for attempt in range(tries):
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(0.05 * (attempt + 1))
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(previous)}")


@dataclass(frozen=True)
class KeyStatus:
    """How many data keys are wrapped with each master key id (for check and rotate)."""

    by_master: Mapping[str, int]
    current: str
    source: str

    @property
    def total(self) -> int:
        return sum(self.by_master.values())

    @property
    def unknown(self) -> dict[str, int]:
        return {k: n for k, n in self.by_master.items() if k != self.current}


class KeyTable(ABC):
    """Where the wrapped data keys live: ``keys.db`` in the state folder (``SqliteKeyTable``)
    or, with ``DEPTBOT_DATABASE_URL``, one table every replica shares
    (``bot.store.pg_keys.PgKeyTable``), so text sealed on one replica opens on another and
    an erase on one shreds the key for all. The crypto stays in ``Vault``; a table only
    stores rows ``(subject_id, key_id, master_id, wrapped)`` and must be thread-safe."""

    where: str = ""  # what messages name: a file, or the redacted database URL

    @abstractmethod
    def get(self, sid: str) -> tuple[bytes, str, bytes] | None:
        """``(key_id, master_id, wrapped)`` of a subject, read fresh every time (a key
        shredded by another process is never used again here)."""
        raise NotImplementedError

    @abstractmethod
    def add(self, sid: str, kid: bytes, master_id: str, wrapped: bytes) -> tuple[bytes, str, bytes]:
        """Insert unless the subject has a key already; the row that is there afterwards
        (another process may have won the race: everyone uses its key)."""
        raise NotImplementedError

    @abstractmethod
    def delete(self, sid: str) -> bytes | None:
        """Remove the subject's row, and every trace the backend can remove; its key id."""
        raise NotImplementedError

    @abstractmethod
    def count_by_master(self) -> dict[str, int]:
        raise NotImplementedError

    @abstractmethod
    def rewrap_batch(
        self, current: str, batch: int, rewrap: Callable[[str, bytes, str, bytes], bytes]
    ) -> int:
        """Up to ``batch`` rows not wrapped with ``current``: ``rewrap(sid, kid, master_id,
        wrapped)`` gives each its new wrapping, stored in one transaction. How many moved
        (0: none left)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection (nothing for a shared pool)."""
        return None  # a default, not abstract: the subclasses that hold a connection close it


class SqliteKeyTable(KeyTable):
    """``keys.db``: secure delete on, and the WAL truncated after an erase or a rotation."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._lock = threading.Lock()
        self._conn = open_db(self.path, _SCHEMA, "the key database")
        secure(self._conn)

    def get(self, sid: str) -> tuple[bytes, str, bytes] | None:
        with self._lock:
            row = self._conn.execute(KEY_GET_SQL, (sid,)).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]), bytes(row[2]))

    def add(self, sid: str, kid: bytes, master_id: str, wrapped: bytes) -> tuple[bytes, str, bytes]:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO subject_keys(subject_id, key_id, master_id, wrapped, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (sid, kid, master_id, wrapped, time.time()),
            )
            row = self._conn.execute(KEY_GET_SQL, (sid,)).fetchone()
        return bytes(row[0]), str(row[1]), bytes(row[2])

    def delete(self, sid: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT key_id FROM subject_keys WHERE subject_id = ?", (sid,)
            ).fetchone()
            self._conn.execute("DELETE FROM subject_keys WHERE subject_id = ?", (sid,))
            checkpoint(self._conn)
        return None if row is None else bytes(row[0])

    def count_by_master(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(KEY_COUNT_SQL).fetchall()
        return {str(m): int(n) for m, n in rows}

    def rewrap_batch(
        self, current: str, batch: int, rewrap: Callable[[str, bytes, str, bytes], bytes]
    ) -> int:
        with self._lock:
            rows = self._conn.execute(KEY_PENDING_SQL, (current, batch)).fetchall()
            if not rows:
                checkpoint(self._conn)
                return 0
            updates = [
                (current, rewrap(str(sid), bytes(kid), str(mid), bytes(wrapped)), sid)
                for sid, kid, mid, wrapped in rows
            ]
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(KEY_REWRAP_SQL, updates)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return len(updates)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# Written for both backends (bot.store.pg_keys runs them with %s placeholders).
KEY_GET_SQL = "SELECT key_id, master_id, wrapped FROM subject_keys WHERE subject_id = ?"
KEY_COUNT_SQL = "SELECT master_id, COUNT(*) FROM subject_keys GROUP BY master_id"
KEY_PENDING_SQL = (
    "SELECT subject_id, key_id, master_id, wrapped FROM subject_keys WHERE master_id != ? LIMIT ?"
)
KEY_REWRAP_SQL = "UPDATE subject_keys SET master_id = ?, wrapped = ? WHERE subject_id = ?"


class Vault:
    """Seal, open and shred per-subject text; thread-safe. The wrapped keys live in a
    ``KeyTable``: ``keys.db`` at ``path`` by default, or the ``table`` given."""

    def __init__(
        self, *, keys: mk.MasterKeys, path: Path | None = None, table: KeyTable | None = None
    ) -> None:
        if table is None:
            if path is None:
                raise TypeError("Vault needs a path (keys.db) or a key table")
            table = SqliteKeyTable(path)
        self.table = table
        self.path = Path(path) if path is not None else None
        self.keys = keys
        self._lock = threading.Lock()
        # data key id → AESGCM, for keys already unwrapped (the row is still read every time,
        # so a key shredded by another process is never used again here)
        self._ciphers: dict[bytes, AESGCM] = {}

    @classmethod
    def in_state_dir(cls, state_dir: Path, keys: mk.MasterKeys) -> Vault:
        return cls(path=Path(state_dir) / FILE, keys=keys)

    # ── text ─────────────────────────────────────────────────────────────────────────

    def seal(self, subject: str, plaintext: str, context: str = "") -> bytes:
        sid = subject_id(subject)
        kid, cipher = self._data_key(sid, create=True)
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(kid, sid, context)
        return VERSION + kid + nonce + cipher.encrypt(nonce, plaintext.encode("utf-8"), aad)

    def open(self, subject: str, blob: Any, context: str = "") -> str:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise Tampered("Stored personal text is not sealed (expected encrypted bytes).")
        blob = bytes(blob)
        if len(blob) < HEADER + 16 or blob[:1] != VERSION:
            raise Tampered("Stored personal text is not in a format this version can read.")
        sid = subject_id(subject)
        kid, nonce, body = blob[1 : 1 + KID_BYTES], blob[1 + KID_BYTES : HEADER], blob[HEADER:]
        found, cipher = self._data_key(sid, create=False)
        if found != kid:
            raise TextErased()
        try:
            return cipher.decrypt(nonce, body, _aad(kid, sid, context)).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise Tampered() from None

    def shred(self, subject: str) -> bool:
        """Destroy the subject's data key: everything sealed for it is unrecoverable.
        True when there was a key. The table removes every trace it can (SQLite: the WAL
        is checkpointed; PostgreSQL: the table is vacuumed), not only the row."""
        kid = self.table.delete(subject_id(subject))
        if kid is not None:
            with self._lock:
                self._ciphers.pop(kid, None)
        return kid is not None

    def has_key(self, subject: str) -> bool:
        return self.table.get(subject_id(subject)) is not None

    # ── master keys ──────────────────────────────────────────────────────────────────

    def status(self) -> KeyStatus:
        return KeyStatus(self.table.count_by_master(), self.keys.current.id, self.keys.source)

    def missing_master_keys(self) -> dict[str, int]:
        """Master key ids that wrap data keys here but are not configured (→ unreadable text)."""
        return {m: n for m, n in self.status().by_master.items() if self.keys.find(m) is None}

    def rewrap(self, *, batch: int = 500) -> int:
        """Re-wrap every data key not wrapped with the current master key; the data itself
        is untouched. Batches of ``batch`` rows, each its own transaction, so a crash half
        way leaves every key readable (old ones still wrapped with a key still accepted).
        Returns how many keys were re-wrapped; a missing old key raises MasterKeyMissing."""
        current = self.keys.current

        def again(sid: str, kid: bytes, mid: str, wrapped: bytes) -> bytes:
            return _wrap(current, sid, kid, self._unwrap(sid, kid, mid, wrapped))

        done = 0
        while moved := self.table.rewrap_batch(current.id, batch, again):
            done += moved
        return done

    def close(self) -> None:
        self.table.close()

    # ── internals ────────────────────────────────────────────────────────────────────

    def _data_key(self, sid: str, *, create: bool) -> tuple[bytes, AESGCM]:
        row = self.table.get(sid)
        if row is None:
            if not create:
                raise TextErased()
            kid, dek = os.urandom(KID_BYTES), AESGCM.generate_key(bit_length=256)
            master = self.keys.current
            row = self.table.add(sid, kid, master.id, _wrap(master, sid, kid, dek))
        kid, master_id, wrapped = row
        with self._lock:
            cipher = self._ciphers.get(kid)
        if cipher is None:
            cipher = AESGCM(self._unwrap(sid, kid, master_id, wrapped))
            with self._lock:
                self._ciphers[kid] = cipher
        return kid, cipher

    def _unwrap(self, sid: str, kid: bytes, master_id: str, wrapped: bytes) -> bytes:
        master = self.keys.find(master_id)
        if master is None:
            raise MasterKeyMissing(
                f"Personal text is encrypted under master key {master_id}, which is not configured "
                f"here (using {self.keys.describe()}, key {self.keys.current.id}). Set "
                f"{mk.ENV_VAR} or {mk.SETTING} to the key that was used."
            )
        try:
            return AESGCM(master.secret).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(sid, kid)
            )
        except InvalidTag:
            raise Tampered(
                f"A stored data key failed its integrity check ({self.table.where} edited or damaged)."
            ) from None


def _aad(kid: bytes, sid: str, context: str) -> bytes:
    return VERSION + kid + sid.encode("ascii") + b"\0" + context.encode("utf-8")


def _wrap_aad(sid: str, kid: bytes) -> bytes:
    return b"deptbot-data-key\0" + sid.encode("ascii") + b"\0" + kid


def _wrap(master: mk.MasterKey, sid: str, kid: bytes, dek: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master.secret).encrypt(nonce, dek, _wrap_aad(sid, kid))


# ── one vault per state folder ───────────────────────────────────────────────────────

_open: dict[Path, tuple[object, Vault]] = {}  # state folder → (its PostgreSQL Database or None, vault)
_open_lock = threading.Lock()


def vault_for(settings: Any) -> Vault:
    """The vault of ``settings`` with the configured master keys, opened once per process
    (``bot.wiring`` and every store share it). With ``DEPTBOT_DATABASE_URL`` the wrapped
    keys live in PostgreSQL, shared by every replica; else in ``<state>/keys.db``."""
    from bot.store.backend import database_for

    keys = mk.load(settings.env, mk.configured_file(_privacy_section(settings)))
    db = database_for(settings)  # the process's shared pool (a new one after close_shared)
    path = Path(settings.state_dir).resolve()
    with _open_lock:
        found = _open.get(path)
        if found is None or found[0] is not db or found[1].keys != keys:
            found = (db, _open_vault(db, path, keys))
            _open[path] = found
        return found[1]


def _open_vault(db: Any, path: Path, keys: mk.MasterKeys) -> Vault:
    if db is None:
        return Vault.in_state_dir(path, keys)
    from bot.store.pg_keys import PgKeyTable

    return Vault(keys=keys, table=PgKeyTable(db))


def vault_in(state_dir: Path) -> Vault:
    """For stores opened with only a folder (``ConversationStore.in_state_dir``): the vault
    ``vault_for`` opened for that folder, else one from the process environment and the
    default settings file (what ``deptbot serve`` would use)."""
    path = Path(state_dir).resolve()
    with _open_lock:
        found = _open.get(path)
    if found is not None:
        return found[1]
    from bot.settings import Settings

    return vault_for(Settings.load(state=str(path)))


def forget_open_vaults() -> None:
    """Tests: drop the per-process vaults (their files may be deleted)."""
    with _open_lock:
        for _, v in _open.values():
            with contextlib.suppress(StoreError, sqlite3.Error):
                v.close()
        _open.clear()


def _privacy_section(settings: Any) -> Mapping[str, object]:
    try:
        section = settings.section("privacy")
    except (KeyError, AttributeError):
        return {}
    return section if isinstance(section, Mapping) else {}
