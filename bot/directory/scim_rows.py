"""How a SCIM resource is laid out in SQLite: tables, columns, and the way back.

The whole resource (less ``id``, ``meta``, ``password`` and group ``members``) is kept as
JSON; what deptbot and the indexes need is kept in columns next to it: ``name`` and
``name_key`` (userName or displayName, and the form filters compare), ``external_key``,
and for users ``active`` and the delivery ``address``. Members live in their own table so
that deleting a user can drop its memberships and the directory sync can join.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, cast

from scim2_models import Resource, ScimFilter
from scim2_models.path import CompareOperator, Comparison, LogicalExpr, LogicalOperator

from bot.directory.scim_schema import comparable, model

USER, GROUP = "User", "Group"
TABLES = {USER: "scim_users", GROUP: "scim_groups"}
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
# attributes an ``eq`` filter finds through an index: lower-case attribute name → column
_INDEXED = {
    USER: {"id": "id", "username": "name_key", "externalid": "external_key"},
    GROUP: {"id": "id", "displayname": "name_key", "externalid": "external_key"},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS scim_users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE,  -- userName; unique as RFC 7643 says
    external_key TEXT, active INTEGER NOT NULL, address TEXT,
    created TEXT NOT NULL, modified TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scim_users_external ON scim_users(external_key);
CREATE TABLE IF NOT EXISTS scim_groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL, name_key TEXT NOT NULL,  -- displayName; not unique (Entra allows twins)
    external_key TEXT,
    created TEXT NOT NULL, modified TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scim_groups_name ON scim_groups(name);
CREATE INDEX IF NOT EXISTS scim_groups_name_key ON scim_groups(name_key);
CREATE INDEX IF NOT EXISTS scim_groups_external ON scim_groups(external_key);
CREATE TABLE IF NOT EXISTS scim_members (
    group_id TEXT NOT NULL, member_id TEXT NOT NULL, kind TEXT NOT NULL, display TEXT,
    pos INTEGER NOT NULL, PRIMARY KEY (group_id, member_id)
);
CREATE INDEX IF NOT EXISTS scim_members_member ON scim_members(member_id);
"""


def delivery_address(user: Resource[Any]) -> str | None:
    """The lower-case e-mail deptbot knows this user by, or None.

    The ``primary`` e-mail; when none is marked primary (Entra's default mapping sends a
    single ``work`` e-mail without the flag), the first ``work`` one, then the first one;
    failing all of those, ``userName`` when it is an address.
    """
    emails = list(getattr(user, "emails", None) or [])
    primary = [e for e in emails if e.primary]
    work = [e for e in emails if (e.type or "").lower() == "work"]
    for candidate in [e.value for e in primary + work + emails] + [getattr(user, "user_name", None)]:
        if isinstance(candidate, str) and _ADDRESS.fullmatch(candidate.strip()):
            return candidate.strip().lower()
    return None


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def columns(kind: str, resource: Resource[Any]) -> dict[str, Any]:
    """The columns of a resource, but id, dates and version (members: see ``ScimStore``)."""
    body = resource.model_dump(mode="json", exclude={"id", "meta", "password", "members"})
    external = getattr(resource, "external_id", None)
    values: dict[str, Any] = {
        "external_key": None if external is None else comparable(kind, "externalId", external),
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }
    if kind == USER:
        name = cast(str, getattr(resource, "user_name", None) or "")
        values.update(
            name=name,
            name_key=comparable(USER, "userName", name),
            active=1 if getattr(resource, "active", None) is True else 0,
            address=delivery_address(resource),
        )
    else:
        name = cast(str, getattr(resource, "display_name", None) or "")
        values.update(name=name, name_key=comparable(GROUP, "displayName", name))
    return values


def resource(kind: str, row: Mapping[str, Any], members: list[tuple[str, str, str | None]]) -> Resource[Any]:
    """The resource a row holds; ``members`` are (id, kind, display) rows of a group."""
    body = json.loads(row["body"])
    body["id"] = row["id"]
    body["meta"] = {
        "resourceType": kind,
        "created": row["created"],
        "lastModified": row["modified"],
        "version": version_tag(row["version"]),
    }
    if members:  # references relative to the SCIM root: scim2-server turns them into URLs
        body["members"] = [
            {"value": mid, "$ref": f"{mkind}s/{mid}", "type": mkind, "display": display}
            for mid, mkind, display in members
        ]
    return cast(Resource[Any], model(kind).model_validate(body))


def indexed_lookup(kind: str, scim_filter: ScimFilter[Any] | None) -> tuple[str, Any] | None:
    """(column, value) for an ``eq`` on an indexed attribute, alone or in an ``and``: the rows
    it finds are a superset of the matches, and ``ScimFilter.match`` decides after."""
    node = scim_filter.ast if scim_filter is not None else None
    terms = node.terms if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_ else (node,)
    for term in terms:
        if not (
            isinstance(term, Comparison) and term.op == CompareOperator.eq and isinstance(term.value, str)
        ):
            continue
        path = term.attr_path
        column = _INDEXED[kind].get(path.attr.lower()) if path.sub_attr is None else None
        if column is None or (path.uri and not path.uri.endswith(f":{kind}")):
            continue
        return column, term.value if column == "id" else comparable(kind, path.attr, term.value)
    return None
