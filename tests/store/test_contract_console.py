"""The admin console's links, sessions, failed sign-ins and trail: the same contract on
SQLite (``admin-sessions.sqlite3``) and PostgreSQL (``DEPTBOT_DATABASE_URL``). A link
redeems once however many handles (replicas) race for it; a privacy request finds and
erases the console rows in PostgreSQL, and in a console file left from before the switch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance import keys as mk
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.admin_sessions import FAILURE_WINDOW, AdminSessionStore, open_console_store
from bot.store.backend import ENV_VAR, Database
from tests.governance.test_privacy_erase import BYSTANDER, EMAIL, _world
from tests.store.conftest import Backend


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def _store(backend: Backend, clock: Clock | None = None, **kw: int) -> AdminSessionStore:
    """A new opening each call: another process's (or replica's) handle."""
    clock = clock or Clock()
    if backend.db is None:
        return AdminSessionStore.in_state_dir(backend.home, clock=clock, **kw)
    from bot.store.pg_admin import PgAdminSessionStore

    return PgAdminSessionStore(backend.db, clock=clock, **kw)


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def test_a_link_redeems_once_before_it_expires(backend: Backend) -> None:
    clock = Clock()
    a, b = _store(backend, clock), _store(backend, clock)
    token = a.create_link("hank@example.com", 600)
    assert b.link_valid(token) and not b.link_valid(token + "x")
    assert b.redeem(token) == "hank@example.com"
    assert a.redeem(token) is None and not a.link_valid(token)  # used up, on every handle
    late = a.create_link("hank@example.com", 600)
    clock.t += 601
    assert not b.link_valid(late) and b.redeem(late) is None


def test_sessions_end_when_idle_absolute_or_signed_out(backend: Backend) -> None:
    clock = Clock()
    a, b = _store(backend, clock), _store(backend, clock)
    sid = a.open_session("hank@example.com", absolute=3600)
    seen = b.session(sid, idle=1800)
    assert seen is not None and seen.email == "hank@example.com"
    clock.t += 1700
    assert b.session(sid, idle=1800) is not None  # the idle clock restarts on each request
    clock.t += 1700
    assert a.session(sid, idle=1800) is not None
    clock.t += 300  # 3700 s after it opened
    assert a.session(sid, idle=1800) is None
    other = a.open_session("hank@example.com", absolute=3600)
    clock.t += 1801
    assert b.session(other, idle=1800) is None  # idle too long
    third = a.open_session("hank@example.com", absolute=3600)
    assert b.sign_out(third) and not b.sign_out(third)
    assert a.session(third, idle=1800) is None


def test_failures_count_per_client_in_the_window_and_events_newest_first(backend: Backend) -> None:
    clock = Clock()
    a, b = _store(backend, clock), _store(backend, clock)
    assert a.failed("10.0.0.1") == 1
    assert b.failed("10.0.0.1") == 2 and b.failed("10.0.0.2") == 1
    clock.t += FAILURE_WINDOW + 1
    assert a.failures("10.0.0.1") == 0
    for event in ("link", "signin", "refresh"):  # one instant: insertion order decides
        a.record(event, "hank@example.com", "hr", "x")
    assert [e.event for e in b.events()] == ["refresh", "signin", "link"]
    assert b.events(1)[0].department == "hr"


def test_old_events_go_after_event_days_on_open(backend: Backend) -> None:
    clock = Clock()
    _store(backend, clock).record("signin", "hank@example.com")
    clock.t += 3 * 86400
    assert [e.event for e in _store(backend, clock, event_days=5).events()] == ["signin"]
    assert _store(backend, clock, event_days=2).events() == []


def test_handles_racing_for_one_link_let_exactly_one_sign_in(backend: Backend) -> None:
    a = _store(backend)
    tokens = [a.create_link(f"admin{i}@example.com", 600) for i in range(20)]
    handles = [_store(backend) for _ in range(4)]
    won: list[str] = []
    start = threading.Barrier(len(handles))
    lock = threading.Lock()

    def race(store: AdminSessionStore) -> None:
        start.wait()
        for token in tokens:
            email = store.redeem(token)
            if email is not None:
                with lock:
                    won.append(email)

    threads = [threading.Thread(target=race, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(won) == sorted(f"admin{i}@example.com" for i in range(20))


def test_a_link_from_one_replica_signs_in_on_the_other(tmp_path: Path, pg_url: str) -> None:
    a = Settings(departments_dir=Path("."), state_dir=tmp_path / "a", env={ENV_VAR: pg_url})
    b = Settings(departments_dir=Path("."), state_dir=tmp_path / "b", env={ENV_VAR: pg_url})
    token = open_console_store(a).create_link("hank@example.com", 600)
    assert open_console_store(b).redeem(token) == "hank@example.com"
    sid = open_console_store(b).open_session("hank@example.com", absolute=3600)
    assert open_console_store(a).session(sid, idle=600) is not None
    assert not (tmp_path / "a" / AdminSessionStore.FILE).exists()


def test_privacy_covers_the_console_in_postgres_and_a_leftover_file(
    tmp_path: Path, pg_url: str, pg_db: Database
) -> None:
    env = {ENV_VAR: pg_url, mk.ENV_VAR: mk.generate(), "DEPTBOT_AUDIT_KEY": "5a" * 32}  # shared chain key
    settings, _, _, _ = _world(tmp_path, env)
    shared = open_console_store(settings)
    person = EMAIL.lower()
    token = shared.create_link(person, 600)
    assert shared.redeem(token) == person
    shared.open_session(person, absolute=3600)
    shared.record("signin", person)
    shared.record("refresh", person, "hr", "started")
    shared.record("signin", BYSTANDER)
    leftover = AdminSessionStore.in_state_dir(settings.state_dir)  # from before the switch
    leftover.record("link", person, detail="cli")
    leftover.close()

    privacy = Privacy.for_settings(settings)
    export = privacy.export(EMAIL, record=False)
    console = export.data["admin_console"]
    assert sorted(e["event"] for e in console["events"]) == ["link", "refresh", "signin"]
    assert len(console["sessions"]) == 1 and len(console["links"]) == 1
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert receipt.removed["admin_events_pseudonymized"] == 3
    assert receipt.removed["admin_sessions"] == 1 and receipt.removed["admin_links"] == 1
    backend = Backend("postgres", tmp_path, pg_db)
    for table, column in (("events", '"user"'), ("sessions", "email"), ("links", "email")):
        assert backend.sql("", f"select count(*) from {table} where lower({column}) = ?", [person]) == [(0,)]
    assert [e.user for e in shared.events()] == [BYSTANDER, receipt.pseudonym, receipt.pseudonym]
    assert person.encode() not in (settings.state_dir / AdminSessionStore.FILE).read_bytes()
