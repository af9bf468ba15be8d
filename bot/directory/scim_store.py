"""SCIM users and groups in SQLite under the state folder: scim2-server's storage for deptbot.

scim2-server (``ScimHandler``/``ScimService``) parses every request, applies PUT and PATCH
and validates bodies with scim2-models; this module only reads and writes the resulting
resources, as its ``ScimStorage`` contract asks (the library's own contract suite runs
against it in tests/directory). What deptbot reads back is kept in columns: ``active``,
the delivery ``address`` (``scim_rows.delivery_address``) and group memberships in their own
table, so the directory sync asks SQL rather than parsing JSON. Passwords are never stored.

Thread-safe: one connection, one re-entrant lock; each SCIM operation is one
``BEGIN IMMEDIATE`` transaction, so a PATCH's read-modify-write is atomic and a
half-applied group update is never seen by the directory sync.

With ``DEPTBOT_DATABASE_URL`` the same tables are in PostgreSQL (migration 0007,
``PgScimStore``, ``open_scim_store``): an identity provider pushing to any replica changes
the groups every replica reads. The statements are written once for both engines; only
how an operation's transaction is held differs (``_transaction``, ``_ex``, ``_rows``).
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, cast

from scim2_models import (
    InvalidValueException,
    NotFoundException,
    NotImplementedException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    SearchRequest,
    UniquenessException,
)
from scim2_server.storage import ScimStorage, SearchPage

from bot.directory import scim_rows
from bot.directory.scim_rows import GROUP, TABLES, USER, version_tag
from bot.store.db import open_db

Row = Mapping[str, Any]  # a table row by column name (sqlite3.Row, or a dict from PostgreSQL)


class MemberUser(NamedTuple):
    """A user reached through a group (directly or through nested groups)."""

    id: str
    user_name: str
    active: bool
    address: str | None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class ScimStore(ScimStorage):
    """Users and groups pushed by an identity provider; thread-safe, one file per state folder."""

    FILE = "scim.sqlite3"
    NO_LIMIT: int | None = -1  # LIMIT for "all rows" (PostgreSQL: NULL)
    TAKEN: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)  # what a UNIQUE violation raises

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        # created under the process umask (the CLI sets 077)
        self._conn = open_db(self.path, scim_rows.SCHEMA, "the SCIM database")

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> ScimStore:
        return cls(Path(state_dir) / cls.FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def operation(self) -> AbstractContextManager[None]:
        """One write transaction per SCIM operation (re-entrant: the outermost one commits)."""
        return self._transaction("BEGIN IMMEDIATE")

    def _reading(self) -> AbstractContextManager[None]:
        """A consistent snapshot for reads that never waits for the write lock (WAL)."""
        return self._transaction("BEGIN")

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._conn.execute(begin)
            try:
                yield
            except BaseException:
                if self._depth == 1:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                if self._depth == 1:
                    self._conn.execute("COMMIT")
            finally:
                self._depth -= 1

    # ── ScimStorage ─────────────────────────────────────────────────────────────────

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        kind = _kind(resource_type)
        with self.operation():
            row = self._row(kind, resource_id)
            return self._resource(kind, row)

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        kinds = list(dict.fromkeys(_kind(rt) for rt in resource_types))
        start = search_request.start_index_0 or 0
        count = search_request.count
        with self.operation():
            scim_filter = search_request.filter
            if scim_filter is None:
                return self._unfiltered_page(kinds, start, count)
            found: list[Resource[Any]] = []
            for kind in kinds:
                lookup = scim_rows.indexed_lookup(kind, scim_filter) if len(kinds) == 1 else None
                candidates = (self._resource(kind, row) for row in self._candidates(kind, lookup))
                found += [r for r in candidates if scim_filter.match(r)]
            stop = None if count is None else start + count
            return SearchPage(len(found), found[start:stop])

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        kind = _kind(resource_type)
        rid, now = uuid.uuid4().hex, _now()
        with self.operation():
            values = scim_rows.columns(kind, resource)
            columns = {**values, "id": rid, "created": now, "modified": now, "version": 1}
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            self._write(f"INSERT INTO {TABLES[kind]} ({names}) VALUES ({marks})", list(columns.values()))
            if kind == GROUP:
                self._set_members(rid, resource)
            return self._resource(kind, self._row(kind, rid))

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        kind = _kind(resource_type)
        rid = cast(str, resource.id)
        with self.operation():
            row = self._row(kind, rid)
            _check_version(row, expected_version)
            columns = {**scim_rows.columns(kind, resource), "modified": _now(), "version": row["version"] + 1}
            assignments = ", ".join(f"{name} = ?" for name in columns)
            self._write(f"UPDATE {TABLES[kind]} SET {assignments} WHERE id = ?", [*columns.values(), rid])
            if kind == GROUP:
                self._set_members(rid, resource)
            return self._resource(kind, self._row(kind, rid))

    def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        kind = _kind(resource_type)
        with self.operation():
            _check_version(self._row(kind, resource_id), expected_version)
            self._ex(f"DELETE FROM {TABLES[kind]} WHERE id = ?", (resource_id,))
            # a deleted user or group leaves every group it was in (RFC 7644 §3.6 leaves this open)
            self._ex("DELETE FROM scim_members WHERE member_id = ? OR group_id = ?", (resource_id,) * 2)

    # ── what the directory sync reads ───────────────────────────────────────────────

    def groups_named(self, display_name: str) -> list[str]:
        """Ids of the groups whose displayName is exactly ``display_name`` (case-sensitive)."""
        with self._reading():
            rows = self._ex("SELECT id FROM scim_groups WHERE name = ? ORDER BY seq", (display_name,))
            return [r[0] for r in rows.fetchall()]

    def member_users(self, group_id: str) -> list[MemberUser]:
        """Every user in the group, through nested groups too (cycles are walked once)."""
        with self._reading():
            seen_groups, users, pending = {group_id}, {}, [group_id]
            while pending:
                rows = self._ex(
                    "SELECT m.member_id, m.kind, u.name, u.active, u.address FROM scim_members m "
                    "LEFT JOIN scim_users u ON u.id = m.member_id WHERE m.group_id = ?",
                    (pending.pop(),),
                ).fetchall()
                for member_id, kind, name, active, address in rows:
                    if kind == GROUP and member_id not in seen_groups:
                        seen_groups.add(member_id)
                        pending.append(member_id)
                    elif kind == USER and name is not None:
                        users[member_id] = MemberUser(member_id, name, bool(active), address)
            return list(users.values())

    # ── rows ────────────────────────────────────────────────────────────────────────

    def _ex(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement in the current operation (``?`` placeholders); a cursor."""
        return self._conn.execute(sql, params)

    def _row(self, kind: str, resource_id: str) -> Row:
        rows = self._rows(f"SELECT * FROM {TABLES[kind]} WHERE id = ?", (resource_id,))
        if not rows:
            raise NotFoundException(detail=f"{kind} {resource_id!r} not found")
        return rows[0]

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.execute(sql, params)
        cur.row_factory = sqlite3.Row
        return cast(list[Row], cur.fetchall())

    def _unfiltered_page(self, kinds: list[str], start: int, count: int | None) -> SearchPage:
        totals = [self._ex(f"SELECT count(*) FROM {TABLES[k]}").fetchone()[0] for k in kinds]
        page: list[Resource[Any]] = []
        offset, left = start, count
        for kind, total in zip(kinds, totals, strict=True):
            if offset >= total:
                offset -= total
                continue
            limit = self.NO_LIMIT if left is None else left
            rows = self._rows(f"SELECT * FROM {TABLES[kind]} ORDER BY seq LIMIT ? OFFSET ?", (limit, offset))
            page += [self._resource(kind, row) for row in rows]
            offset = 0
            if left is not None:
                left -= len(rows)
                if left <= 0:
                    break
        return SearchPage(sum(totals), page)

    def _candidates(self, kind: str, lookup: tuple[str, Any] | None) -> list[Row]:
        if lookup is None:
            return self._rows(f"SELECT * FROM {TABLES[kind]} ORDER BY seq")
        column, value = lookup
        return self._rows(f"SELECT * FROM {TABLES[kind]} WHERE {column} = ? ORDER BY seq", (value,))

    def _resource(self, kind: str, row: Row) -> Resource[Any]:
        members = []
        if kind == GROUP:
            members = self._ex(
                "SELECT member_id, kind, display FROM scim_members WHERE group_id = ? ORDER BY pos",
                (row["id"],),
            ).fetchall()
        return scim_rows.resource(kind, row, members)

    def _set_members(self, group_id: str, resource: Resource[Any]) -> None:
        """Replace the group's members; every member must be a stored user or group."""
        self._ex("DELETE FROM scim_members WHERE group_id = ?", (group_id,))
        for pos, member in enumerate(getattr(resource, "members", None) or []):
            value = member.value
            kind = self._kind_of(value) if value else None
            if kind is None:
                raise InvalidValueException(detail=f"members: no User or Group has the id {value!r}")
            self._ex(
                "INSERT INTO scim_members (group_id, member_id, kind, display, pos) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (group_id, value, kind, member.display, pos),
            )

    def _kind_of(self, resource_id: str) -> str | None:
        for kind, table in TABLES.items():
            if self._ex(f"SELECT 1 FROM {table} WHERE id = ?", (resource_id,)).fetchone():
                return kind
        return None

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        try:
            self._ex(sql, params)
        except self.TAKEN:  # name_key UNIQUE: userName is taken (case-insensitively)
            raise UniquenessException(detail="userName is already taken") from None


def open_scim_store(settings: Any) -> ScimStore:
    """The SCIM store of ``settings``: PostgreSQL with ``DEPTBOT_DATABASE_URL`` (every
    replica serves and reads the same users and groups), else ``scim.sqlite3``."""
    from bot.store.backend import database_for
    from bot.store.state import ensure_private_dir

    db = database_for(settings)
    if db is not None:
        from bot.directory.pg_scim_store import PgScimStore

        return PgScimStore(db)
    return ScimStore.in_state_dir(ensure_private_dir(Path(settings.state_dir)))


def _kind(resource_type: ResourceType) -> str:
    if resource_type.name not in TABLES:
        raise NotImplementedException(detail=f"{resource_type.name} resources are not stored")
    return cast(str, resource_type.name)


def _check_version(row: Row, expected: str | None) -> None:
    if expected is not None and expected != version_tag(row["version"]):
        raise PreconditionFailedException
