"""The admin console's own trail (links issued, sign-ins, refreshes) is kept for
``[retention] admin_events_days`` (default 180, 0 = forever), a setting like the others,
and the console opens its store with it."""

from __future__ import annotations

import time
from pathlib import Path

from bot.settings import Settings
from bot.store.admin_sessions import AdminSessionStore
from tests.fakes import make_company

DAY = 86400.0


def _trail(path: Path, *, days: int, now: float) -> list[str]:
    store = AdminSessionStore(path=path, clock=lambda: now, event_days=days)
    try:
        return [e.event for e in store.events()]
    finally:
        store.close()


def test_events_older_than_the_setting_are_purged_on_open(tmp_path: Path) -> None:
    path = tmp_path / AdminSessionStore.FILE
    start = time.time()
    old = AdminSessionStore(path=path, clock=lambda: start)
    old.record("signin", "hank@example.com")
    old.close()
    later = start + 40 * DAY
    assert _trail(path, days=0, now=later) == ["signin"]  # 0 = forever
    assert _trail(path, days=60, now=later) == ["signin"]
    assert _trail(path, days=30, now=later) == []


def test_the_setting_defaults_to_180_days_and_reaches_the_console(tmp_path: Path) -> None:
    make_company(tmp_path)
    settings = Settings.load(departments=tmp_path / "departments", state=tmp_path / "state", env={})
    assert settings.values.retention.admin_events_days == 180
    from bot.admin.web import console_store

    store = console_store(settings)
    try:
        assert store.event_days == 180
    finally:
        store.close()
