"""ScimStore: scim2-server's own storage contract suite, then what the directory sync reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from scim2_models import ScimProvider
from scim2_server.testing import ScimStorageContract

from bot.directory.scim import ScimGroupSource
from bot.directory.scim_schema import PROVIDER, model
from bot.directory.scim_store import ScimStore
from bot.directory.source import SourceError


class TestScimStoreContract(ScimStorageContract):
    """Every rule scim2-server asks of a storage, on the SQLite file (sorting and cursors
    are skipped by the suite itself because deptbot does not announce them)."""

    @pytest.fixture
    def provider(self) -> ScimProvider:
        return PROVIDER

    @pytest.fixture
    def storage(self, tmp_path: Path) -> ScimStore:
        return ScimStore.in_state_dir(tmp_path)


# ── what ScimGroupSource reads ──────────────────────────────────────────────────────

USERS = next(rt for rt in PROVIDER.resource_types if rt.id == "User")
GROUPS = next(rt for rt in PROVIDER.resource_types if rt.id == "Group")


@pytest.fixture
def store(tmp_path: Path) -> ScimStore:
    return ScimStore.in_state_dir(tmp_path)


def add_user(
    store: ScimStore, user_name: str, *, emails: list[dict] | None = None, active: bool | None = True
) -> str:
    body: dict = {"userName": user_name, "emails": emails or []}
    if active is not None:
        body["active"] = active
    return str(store.create(USERS, model("User").model_validate(body)).id)


def add_group(store: ScimStore, name: str, *members: str) -> str:
    group = model("Group").model_validate({"displayName": name, "members": [{"value": m} for m in members]})
    return str(store.create(GROUPS, group).id)


def test_only_active_members_count(store: ScimStore) -> None:
    alice = add_user(store, "alice@example.com")
    bob = add_user(store, "bob@example.com", active=False)
    never_said = add_user(store, "nobody@example.com", active=None)  # no ``active``: not taken as yes
    add_group(store, "HR", alice, bob, never_said)
    assert ScimGroupSource(store=store).members("HR") == {"alice@example.com"}


def test_primary_email_then_work_then_first_then_user_name(store: ScimStore) -> None:
    cases = {
        "p": (
            [{"value": "home@x.example", "type": "home"}, {"value": "P@X.example", "primary": True}],
            "p@x.example",
        ),
        "w": (
            [{"value": "home@x.example", "type": "home"}, {"value": "work@x.example", "type": "work"}],
            "work@x.example",
        ),
        "f": ([{"value": "first@x.example"}, {"value": "second@x.example"}], "first@x.example"),
        "u@x.example": ([], "u@x.example"),
        "bad": ([{"value": "not an address", "primary": True}, {"value": "ok@x.example"}], "ok@x.example"),
    }
    for user_name, (emails, expected) in cases.items():
        uid = add_user(store, user_name, emails=emails)
        add_group(store, f"g-{user_name}", uid)
        assert ScimGroupSource(store=store).members(f"g-{user_name}") == {expected}, user_name


def test_an_active_member_without_an_address_makes_the_group_unreadable(store: ScimStore) -> None:
    uid = add_user(store, "just-a-login")
    add_group(store, "Ops", add_user(store, "ok@example.com"), uid)
    with pytest.raises(SourceError, match=f"SCIM user {uid} has no e-mail address"):
        ScimGroupSource(store=store).members("Ops")
    store.update(
        USERS, model("User").model_validate({"id": uid, "userName": "just-a-login", "active": False})
    )
    assert ScimGroupSource(store=store).members("Ops") == {"ok@example.com"}  # inactive: not needed


def test_unknown_ambiguous_and_case_mismatched_groups_are_errors(store: ScimStore) -> None:
    source = ScimGroupSource(store=store)
    with pytest.raises(SourceError, match="group not found") as caught:
        source.members("Nobody")
    assert caught.value.reason == "group not found"
    add_group(store, "Finance")
    with pytest.raises(SourceError, match="group not found"):
        source.members("finance")
    add_group(store, "Finance")  # Entra allows two groups with one name
    with pytest.raises(SourceError, match="2 SCIM groups have this displayName"):
        source.members("Finance")


def test_nested_groups_are_followed_and_cycles_end(store: ScimStore) -> None:
    a, b = add_user(store, "a@example.com"), add_user(store, "b@example.com")
    inner = add_group(store, "inner", b)
    outer = add_group(store, "outer", a, inner)
    # close the loop: inner ⊃ outer
    store.update(
        GROUPS,
        model("Group").model_validate(
            {"id": inner, "displayName": "inner", "members": [{"value": b}, {"value": outer}]}
        ),
    )
    source = ScimGroupSource(store=store)
    assert source.members("outer") == source.members("inner") == {"a@example.com", "b@example.com"}


def test_deleting_a_user_or_group_removes_its_memberships(store: ScimStore) -> None:
    a, b = add_user(store, "a@example.com"), add_user(store, "b@example.com")
    inner = add_group(store, "inner", b)
    outer = add_group(store, "outer", a, inner)
    store.delete(USERS, a)
    store.delete(GROUPS, inner)
    assert ScimGroupSource(store=store).members("outer") == frozenset()
    assert store.get(GROUPS, outer).members in (None, [])  # type: ignore[attr-defined]


def test_an_unreadable_database_is_a_source_error(tmp_path: Path) -> None:
    store = ScimStore.in_state_dir(tmp_path)
    add_group(store, "HR")
    store.close()
    with pytest.raises(SourceError, match="cannot be read"):
        ScimGroupSource(store=store).members("HR")


def test_the_store_is_thread_safe_and_shares_the_file(store: ScimStore) -> None:
    members = [add_user(store, f"u{n}@example.com") for n in range(20)]
    gid = add_group(store, "All")
    group_model = model("Group")

    def toggle(n: int) -> None:
        chosen = members[: n % len(members) + 1]
        with store.operation():
            store.update(
                GROUPS,
                group_model.model_validate(
                    {"id": gid, "displayName": "All", "members": [{"value": m} for m in chosen]}
                ),
            )

    reader = ScimStore(store.path)  # the directory sync's own connection, as wiring opens it

    def read(n: int) -> int:
        return len(ScimGroupSource(store=store if n % 2 else reader).members("All"))

    with ThreadPoolExecutor(8) as pool:
        writes = [pool.submit(toggle, n) for n in range(40)]
        reads = [pool.submit(read, n) for n in range(40)]
        sizes = [f.result() for f in reads]
        for f in writes:
            f.result()
    assert all(0 <= s <= 20 for s in sizes)


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    store = ScimStore.in_state_dir(tmp_path)
    add_group(store, "HR", add_user(store, "alice@example.com"))
    store.close()
    assert ScimGroupSource(store=ScimStore(tmp_path / "scim.sqlite3")).members("HR") == {"alice@example.com"}
