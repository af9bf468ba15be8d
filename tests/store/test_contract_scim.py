"""The SCIM store behaves the same on SQLite (``scim.sqlite3``) and on PostgreSQL (migration
0007, shared by every replica): scim2-server's own storage contract suite, what the
directory sync reads, uniqueness under concurrent pushes, and two replicas seeing one
directory."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from scim2_models import ScimProvider, UniquenessException
from scim2_server.testing import ScimStorageContract

from bot.directory.scim import ScimGroupSource
from bot.directory.scim_schema import PROVIDER, model
from bot.directory.scim_store import ScimStore, open_scim_store
from bot.directory.source import SourceError
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database
from tests.directory.test_scim_store import GROUPS, USERS, add_group, add_user

from .conftest import Backend


def _open(backend: Backend) -> ScimStore:
    if backend.db is None:
        return ScimStore.in_state_dir(backend.home)
    from bot.directory.pg_scim_store import PgScimStore

    return PgScimStore(backend.db)


class TestScimStoreContractOnPostgres(ScimStorageContract):
    """Every rule scim2-server asks of a storage, on PostgreSQL (tests/directory runs the
    same suite on the SQLite file)."""

    @pytest.fixture
    def provider(self) -> ScimProvider:
        return PROVIDER

    @pytest.fixture
    def storage(self, pg_db: Database) -> ScimStore:
        from bot.directory.pg_scim_store import PgScimStore

        return PgScimStore(pg_db)


@pytest.fixture
def store(backend: Backend) -> ScimStore:
    return _open(backend)


def test_nested_groups_active_members_and_addresses(store: ScimStore) -> None:
    a, b = add_user(store, "a@example.com"), add_user(store, "b@example.com")
    gone = add_user(store, "gone@example.com", active=False)
    inner = add_group(store, "inner", b, gone)
    outer = add_group(store, "outer", a, inner)
    store.update(  # a cycle: inner ⊃ outer
        GROUPS,
        model("Group").model_validate(
            {"id": inner, "displayName": "inner", "members": [{"value": b}, {"value": outer}]}
        ),
    )
    source = ScimGroupSource(store=store)
    assert source.members("outer") == source.members("inner") == {"a@example.com", "b@example.com"}
    add_group(store, "Ops", add_user(store, "just-a-login"))
    with pytest.raises(SourceError, match="has no e-mail address"):
        source.members("Ops")
    store.delete(USERS, a)
    assert source.members("outer") == {"b@example.com"}


def test_a_user_name_is_taken_once_under_concurrent_pushes(store: ScimStore) -> None:
    def create(n: int) -> str:
        try:
            add_user(store, "Same@Example.com")
            return "created"
        except UniquenessException:
            return "taken"

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(create, range(6)))
    assert sorted(results) == ["created"] + ["taken"] * 5
    add_group(store, "G", add_user(store, "other@example.com"))  # the store goes on working


def test_two_replicas_share_one_directory_on_postgres(pg_db: Database, pg_url: str, tmp_path: Path) -> None:
    from bot.directory.pg_scim_store import PgScimStore

    pushed_to_a = PgScimStore(pg_db)
    add_group(pushed_to_a, "HR", add_user(pushed_to_a, "alice@example.com"))
    settings = Settings(departments_dir=Path("."), state_dir=tmp_path / "b", env={ENV_VAR: pg_url})
    on_b = open_scim_store(settings)  # what wiring and the SCIM endpoint open on replica B
    assert isinstance(on_b, PgScimStore)
    assert ScimGroupSource(store=on_b).members("HR") == {"alice@example.com"}
    assert not (tmp_path / "b" / ScimStore.FILE).exists()


def test_the_sqlite_default_is_unchanged(tmp_path: Path) -> None:
    store = open_scim_store(Settings(departments_dir=Path("."), state_dir=tmp_path / "s", env={}))
    assert type(store) is ScimStore and (tmp_path / "s" / ScimStore.FILE).exists()
    store.close()
