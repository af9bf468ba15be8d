"""The canary matrix with a directory group (issue 13): ``finance-admins`` — the only
audience of the restricted payroll folder — is read from a (fake) Entra ID group instead of
``groups.yaml``. Carol's access to payroll comes only from that synced group.

Everything else is real: index, hybrid retrieval, the offline router, the audit log and
answer cache (whose key carries the asker's groups, so a cached answer cannot outlive a
removal), on both backends (``db_backend``: SQLite files, or PostgreSQL tables). The sync
is driven with ``tick()`` and a fake clock: one tick is one refresh interval of the
background thread.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import pytest

from bot.config import load_company
from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.directory.sync import DirectorySync
from bot.sensitivity import PatternClassifier
from bot.store.notices import MemoryNotices
from tests.canary_world import open_stores
from tests.fakes import CANARIES, make_company
from tests.pg_fixtures import DbBackend
from tests.test_directory import GUID, SOURCED, Clock, FakeSource

PAYROLL = "payroll salary band L3 and payroll dates code"
TTL, GRACE = 300.0, 120.0


class World:
    def __init__(self, root: Path, backend: DbBackend) -> None:
        make_company(root)
        (root / "departments" / "groups.yaml").write_text(SOURCED)
        company = load_company(root / "departments")
        stores = open_stores(root, backend.env, company)
        self.backend = backend
        self.state = stores.settings.state_dir
        self.generator = stores.generator
        self.assistant = Assistant(
            company=company,
            retriever=stores.knowledge,
            indexer=stores.knowledge,
            generator=self.generator,  # type: ignore[arg-type]
            audit=stores.audit,
            classifier=PatternClassifier(),
            cache=stores.cache,
        )
        self.source = FakeSource("entra", {GUID: {"carol@example.com"}})
        self.clock = Clock()
        self.notices = MemoryNotices()
        self.sync = DirectorySync(
            {"entra": self.source},
            ttl_seconds=TTL,
            grace_seconds=GRACE,
            notices=self.notices,
            clock=self.clock,
        )

    def interval(self, seconds: float = TTL) -> None:
        """Time passes and the background thread refreshes once."""
        self.clock.advance(seconds)
        self.sync.tick(self.assistant)

    def sees_payroll(self, user: str) -> bool:
        before = len(self.generator.requests)
        answer = self.assistant.ask(Message(user_id=user, email=user, text=PAYROLL, department="finance"))
        shown = repr(asdict(answer)) + repr(self.generator.requests[before:])
        return answer.status != Status.DENIED and CANARIES["payroll"] in shown


@pytest.fixture
def world(tmp_path: Path, db_backend: DbBackend) -> World:
    return World(tmp_path, db_backend)


def test_access_only_through_a_synced_group_comes_and_goes_with_the_source(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert not world.sees_payroll("carol@example.com")  # not read yet: fail closed
    world.interval(0)
    assert world.sees_payroll("carol@example.com")  # granted by the synced group alone
    assert world.assistant.is_admin("carol@example.com", "finance")
    for user in ("dave@example.com", "alice@example.com", "grace@example.com"):
        assert not world.sees_payroll(user), user

    world.source.groups[GUID] = set()  # removed in Entra ID
    world.interval()  # within one refresh interval
    assert not world.sees_payroll("carol@example.com")
    assert not world.assistant.is_admin("carol@example.com", "finance")
    assert CANARIES["payroll"] not in caplog.text


def test_a_removed_member_never_gets_a_cached_answer(world: World) -> None:
    world.interval(0)
    assert world.sees_payroll("carol@example.com")
    assert world.sees_payroll("carol@example.com")  # the second one may come from the cache
    world.source.groups[GUID] = set()
    world.interval()
    assert not world.sees_payroll("carol@example.com")


def test_access_ends_when_the_source_goes_down_after_the_grace(world: World) -> None:
    world.interval(0)
    world.source.down = "HTTP 503 from Microsoft Graph"
    world.interval()
    assert world.sees_payroll("carol@example.com")  # the last list, inside the grace (documented)
    world.interval(world.sync.next_wait())  # the thread wakes when the grace ends
    assert not world.sees_payroll("carol@example.com")
    for _ in range(3):
        world.interval()
    assert [n.kind for n in world.notices.items] == ["directory-unreadable"]  # told once

    world.source.down = None
    world.interval()
    assert world.sees_payroll("carol@example.com")
    assert [n.kind for n in world.notices.items] == ["directory-unreadable", "directory-recovered"]


def test_a_group_deleted_at_the_source_grants_nothing(world: World) -> None:
    world.interval(0)
    del world.source.groups[GUID]
    world.interval()
    world.interval(world.sync.next_wait())
    assert not world.sees_payroll("carol@example.com")
    assert "group not found" in world.notices.items[0].text


def test_nothing_restricted_is_stored_for_someone_the_directory_left_out(world: World) -> None:
    world.source.groups[GUID] = {"dave@example.com"}
    world.interval(0)
    assert not world.sees_payroll("carol@example.com")
    stored = world.backend.dump(world.state)
    assert CANARIES["payroll"] not in stored
