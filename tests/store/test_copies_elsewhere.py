"""A SQLite copy ``deptbot db copy`` left on one replica's host is recorded in PostgreSQL:
an erase run on another host (its own state folder) cannot reach it, and says so in its
receipt and an admin notice instead of looking complete; ``deptbot check`` warns while it
is recorded and forgets the record once, on its own host, the folder is deleted."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance.keys import generate
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR
from tests.governance.test_privacy_erase import (
    EMAIL,
    _canary_activity,
    _files,
    _holding,
    _world,
)
from tests.pg_fixtures import checked_url


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def test_an_erase_on_another_host_names_the_copy_it_could_not_reach(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root: Path = run.root
    keys = {"DEPTBOT_MASTER_KEY": generate(), "DEPTBOT_AUDIT_KEY": "5a" * 32}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    settings, assistant, convo, notices = _world(root, keys)  # replica A, still on SQLite
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    host = {"name": "replica-a"}
    monkeypatch.setattr(socket, "gethostname", lambda: host["name"])
    code, _, err = run("db", "copy", "--to", pg_url)
    assert code == 0, err
    (moved,) = (settings.state_dir / "copied-to-postgresql").iterdir()

    host["name"] = "replica-b"  # the erase runs on another replica, with its own state folder
    forget_open_vaults()
    other = Settings.load(
        departments=root / "departments", state=root / "state-b", env={ENV_VAR: pg_url, **keys}
    )
    privacy = Privacy.for_settings(other)
    receipt = privacy.erase(EMAIL)
    assert privacy.export(EMAIL, record=False).data["questions"] == []  # the rest is erased
    privacy.close()
    (note,) = [n for n in receipt.notes if "replica-a" in n]
    assert str(moved.resolve()) in note and "still holds" in note and "deptbot privacy erase" in note
    assert EMAIL not in note
    assert any(f"Note: {note}" == line for line in receipt.lines())
    from bot.store.backend import Database
    from bot.store.pg_notices import PgNotices

    db = Database(checked_url(pg_url))
    try:
        texts = [n.text for n in PgNotices(db).recent()]
    finally:
        db.close()
    assert any("replica-a" in t and str(moved.resolve()) in t for t in texts), texts
    assert _holding(_files(moved), EMAIL)  # true: out of this host's reach

    host["name"] = "replica-a"  # back on the copy's host: check warns, until the folder goes
    monkeypatch.setenv(ENV_VAR, pg_url)
    code, out, err = run("check")
    assert f"warning: the SQLite copy on replica-a at {moved.resolve()}" in out, out + err
    shutil.rmtree(moved)
    code, out, err = run("check")
    assert f"forgot the SQLite copy at {moved.resolve()} on replica-a" in out
    code, out, err = run("check")
    assert "warning: the SQLite copy" not in out and "forgot" not in out


def test_export_reads_the_copies_here_and_names_those_elsewhere(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moved ``cache.db`` and audit rows PostgreSQL's retention may purge later are the
    person's data too: an export on the copy's host includes them; one on another host
    says that a recorded copy was not read (and chat does not name the host or path)."""
    root: Path = run.root
    keys = {"DEPTBOT_MASTER_KEY": generate(), "DEPTBOT_AUDIT_KEY": "5a" * 32}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    settings, assistant, convo, notices = _world(root, keys)
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    host = {"name": "replica-a"}
    monkeypatch.setattr(socket, "gethostname", lambda: host["name"])
    assert run("db", "copy", "--to", pg_url)[0] == 0
    (moved,) = (settings.state_dir / "copied-to-postgresql").iterdir()
    forget_open_vaults()
    env = {ENV_VAR: pg_url, **keys}
    here = Settings.load(departments=root / "departments", state=settings.state_dir, env=env)
    privacy = Privacy.for_settings(here)
    export = privacy.export(EMAIL, record=False)
    privacy.close()
    (copy,) = export.data["sqlite_copies"]
    assert copy["folder"] == str(moved) and len(copy["questions"]) == 4 and copy["cached_answers"]
    assert export.counts["questions_in_sqlite_copies"] == 4 and export.notes == []

    host["name"] = "replica-b"
    forget_open_vaults()
    there = Settings.load(departments=root / "departments", state=root / "state-b", env=env)
    privacy = Privacy.for_settings(there)
    export = privacy.export(EMAIL, record=False)
    chat = privacy.export(EMAIL, record=False, platform="teams", notices=False)
    privacy.close()
    assert export.data["sqlite_copies"] == [] and export.counts["questions"] == 4
    (note,) = export.notes
    assert "replica-a" in note and str(moved.resolve()) in note and f"Note: {note}" in export.summary()
    assert "replica-a" not in str(chat.notes) and "another server" in chat.notes[0]


def test_the_watch_warns_once_when_a_copy_outlives_the_shortest_setting(tmp_path: Path, pg_url: str) -> None:
    """A copy keeps what retention purged from the live stores since: the daily job says
    so, once per copy, when the copy is older than the shortest retention setting."""
    import time

    from bot.store.backend import Database
    from bot.store.pg_copy import OldCopyWatch, record_copy
    from bot.store.pg_notices import PgNotices

    db = Database(checked_url(pg_url))
    try:
        notices = PgNotices(db)
        record_copy(db, tmp_path / "copied-to-postgresql" / "old", state_id="a" * 32)
        with db.tx() as t:
            t.execute("update state_copies set at = ?", [time.time() - 10 * 86400])  # ten days old
        record_copy(db, tmp_path / "copied-to-postgresql" / "new", state_id="a" * 32)  # within every setting
        now = time.time()
        watch = OldCopyWatch(db, notices, {"cache": 7, "text": 30, "audit": 0}, clock=lambda: now)
        assert watch.run() == 1
        assert watch.run() == 0  # the next day: no second notice
        assert OldCopyWatch(db, notices, {"text": 30}, clock=lambda: now).run() == 0  # not old for 30 days
        assert OldCopyWatch(db, notices, {}, clock=lambda: now).run() == 0  # retention off: no look
        found = [n.text for n in notices.recent() if n.kind == "retention"]
        with db.tx() as t:  # once per copy, not only once per notice's repeat window
            warned = dict(t.execute("select path, warned from state_copies").fetchall())
    finally:
        db.close()
    (text,) = found
    assert sorted(warned.values()) == [False, True]
    assert str((tmp_path / "copied-to-postgresql" / "old").resolve()) in text and "Delete that folder" in text
    assert "cache: 7 days" in text


def test_the_copy_watch_is_wired_only_on_postgresql_and_not_as_a_retention_store(
    pg_url: str, tmp_path: Path
) -> None:
    """Wiring: ``deptbot serve``'s daily jobs get the watch with the database set (its
    own job: ``test_copy_watch_daily``), and no retention store is one."""
    from bot.settings import Settings
    from bot.store.backend import ENV_VAR
    from bot.store.pg_copy import OldCopyWatch
    from bot.wiring import old_copy_watch, retention_stores

    def settings(env: dict[str, str]) -> Settings:
        file = tmp_path / "settings.toml"
        file.write_text("[retention]\ncache_days = 7\n")
        return Settings.load(departments=Path("."), state=tmp_path / "state", settings_file=file, env=env)

    pg = settings({ENV_VAR: pg_url})
    assert old_copy_watch(pg) is not None and old_copy_watch(settings({})) is None
    stores = retention_stores(pg, audit=object(), usage=object(), cache=None)  # type: ignore[arg-type]
    assert not [s for s in stores if isinstance(s, OldCopyWatch)]
