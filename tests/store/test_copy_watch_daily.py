"""The watch over copies ``deptbot db copy`` left (``OldCopyWatch``) is its own daily job,
once a day across replicas: it used to be listed as a retention "store", so each retention
run called it once per retention kind (text, history, replies, cache, ...) every day."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.governance import retention as retention_mod
from bot.settings import Settings
from bot.store import pg_copy
from bot.store.backend import Database
from tests.fakes import make_company
from tests.pg_fixtures import checked_url

KEY = "5a" * 32


def _settings(root: Path, state: str, url: str) -> Settings:
    file = root / "settings.toml"
    file.write_text("[retention]\ntext_days = 30\ncache_days = 7\naudit_days = 3650\n")
    env = {"DEPTBOT_AUDIT_KEY": KEY, "DEPTBOT_DATABASE_URL": url}
    return Settings.load(departments=root / "departments", state=root / state, settings_file=file, env=env)


def test_two_replicas_look_at_the_copies_once_a_day(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.audit import start_governance_jobs
    from bot.wiring import open_audit_log, open_usage_store

    db = Database(checked_url(pg_url))
    try:
        with db.tx() as t:  # a copy recorded 40 days ago: older than the 7-day cache setting
            t.execute(
                "insert into state_copies (host, path, at) values (?, ?, ?)",
                [
                    "replica-a",
                    str(tmp_path / "state-a" / "copied-to-postgresql" / "old"),
                    time.time() - 40 * 86400,
                ],
            )
    finally:
        db.close()
    looks: list[bool] = []
    lock = threading.Lock()
    real = pg_copy.recorded_copies

    def counting(db: Any, *, unwarned: bool = False) -> Any:
        with lock:
            looks.append(unwarned)
        return real(db, unwarned=unwarned)

    monkeypatch.setattr(pg_copy, "recorded_copies", counting)
    monkeypatch.setattr(
        retention_mod, "start_daily", functools.partial(retention_mod.start_daily, first_delay=0)
    )
    make_company(tmp_path)
    replicas = [_settings(tmp_path, name, pg_url) for name in ("state-a", "state-b")]
    wired = [
        SimpleNamespace(audit=open_audit_log(s), usage=open_usage_store(s), cache=None) for s in replicas
    ]
    schedulers = [start_governance_jobs(s, w) for s, w in zip(replicas, wired, strict=True)]  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not looks:
            time.sleep(0.05)
        time.sleep(1.5)  # every job of both servers was due at start
    finally:
        for scheduler in schedulers:
            assert scheduler is not None
            scheduler.shutdown(wait=True)
    assert looks.count(True) == 1, looks  # before: 7, once per retention kind
    db = Database(checked_url(pg_url))
    try:
        from bot.store.pg_notices import PgNotices

        found = [n for n in PgNotices(db).recent() if n.kind == "retention"]
    finally:
        db.close()
    assert len(found) == 1 and "replica-a" in found[0].text
