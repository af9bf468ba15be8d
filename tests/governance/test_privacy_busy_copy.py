"""A SQLite copy ``db copy`` left that another program holds open (session 20 review):

its erase failed with text meant for an abandoned copy ("nothing else opens that copy to
do it later", "could not be opened as a database": fix or delete the folder). When SQLite
says busy or locked, the copy is not broken, it is in use: the line says so, and to close
that program and run the erase again. A corrupt copy and a WAL that failed for another
reason keep their own wording.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance import privacy as privacy_mod
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.store.backend import Database
from bot.store.pg_notices import PgNotices
from tests.governance.test_privacy_erase import EMAIL
from tests.pg_fixtures import checked_url
from tests.store.test_copy_erase_gaps import _copied

IN_USE = "in use by another program"
ABANDONED = "nothing else opens that copy"


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _notices(pg_url: str) -> list[str]:
    db = Database(checked_url(pg_url))
    try:
        return [n.text for n in PgNotices(db).recent(limit=50)]
    finally:
        db.close()


def _erase(settings: object, platform: str) -> privacy_mod.Receipt:
    privacy = Privacy.for_settings(settings)
    try:
        return privacy.erase(EMAIL, platform=platform)
    finally:
        privacy.close()


def _wal_fails_in(monkeypatch: pytest.MonkeyPatch, target: Path, how: str) -> None:
    """The checkpoint of ``target`` fails: "busy" as ``checkpoint`` reports a database
    another connection holds (it returns False after its retries: a real reader would make
    the test wait the 30 s busy timeout 20 times); "error" as a damaged disk does."""
    real = privacy_mod.checkpoint

    def patched(conn: sqlite3.Connection, **kwargs: object) -> bool:
        (path,) = [row[2] for row in conn.execute("pragma database_list") if row[1] == "main"]
        if Path(path) == target:
            if how == "busy":
                return False
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn)

    monkeypatch.setattr(privacy_mod, "checkpoint", patched)


@pytest.mark.parametrize("platform", ["cli", "slack"])
def test_a_copy_held_open_says_in_use_not_abandoned(  # type: ignore[no-untyped-def]
    run, pg_url: str, platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, moved = _copied(run, pg_url)
    _wal_fails_in(monkeypatch, moved / "audit.db", "busy")
    receipt = _erase(settings, platform)
    (failed,) = receipt.failures
    assert ABANDONED not in failed, failed  # before: "(nothing else opens that copy to do it later)"
    assert "another program has it open" in failed
    if platform == "cli":
        assert "audit.db" in failed and failed.endswith("then run the erase again.")
        assert "close the program that has it open" in failed
    else:
        assert str(moved) not in failed and failed.endswith("the admins have been told.")
    assert receipt.key_shredded and receipt.removed["copied_sqlite_folders_erased"] == 1
    (notice,) = [t for t in _notices(pg_url) if "could not finish erasing" in t]
    assert IN_USE in notice and "close the program that has it open" in notice and str(moved) in notice
    assert "fix or delete" not in notice and EMAIL.lower() not in notice.lower()


def test_a_wal_that_failed_for_another_reason_keeps_the_abandoned_copy_text(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, moved = _copied(run, pg_url)
    _wal_fails_in(monkeypatch, moved / "audit.db", "error")
    (failed,) = _erase(settings, "cli").failures
    assert ABANDONED in failed and IN_USE not in failed, failed


def test_a_copy_locked_by_another_program_is_left_untouched_and_said_in_use(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real exclusive lock (a program in ``locking_mode=EXCLUSIVE``, or mid-write in a
    rollback journal): the copy's files do not open within the wait, so nothing there is
    changed, and the line says why in words the admin can act on."""
    settings, moved = _copied(run, pg_url)
    monkeypatch.setattr(privacy_mod, "OPEN_WAIT_SECONDS", 0.2, raising=False)  # the old code waits 30 s
    gc.collect()  # the test installation's own stores, left open by ``_copied``, let go of the file
    holder = sqlite3.connect(moved / "usage.db", isolation_level=None)
    try:
        holder.execute("pragma locking_mode=exclusive")
        holder.execute("begin exclusive")
        holder.execute("select count(*) from sqlite_master").fetchone()
        receipt = _erase(settings, "cli")
    finally:
        holder.close()
    (failed,) = receipt.failures
    assert "usage.db is in use by another program" in failed, (
        failed
    )  # before: "could not be opened as a database"
    assert "could not be opened as a database" not in failed
    assert "nothing there was changed" in failed and failed.endswith("then run the erase again.")
    assert receipt.key_shredded  # the live erase still ran
    (notice,) = [t for t in _notices(pg_url) if "could not finish erasing" in t]
    assert "close the program that has it open" in notice and "fix or delete" not in notice


def test_a_corrupt_copy_still_says_it_could_not_be_opened(  # type: ignore[no-untyped-def]
    run, pg_url: str
) -> None:
    settings, moved = _copied(run, pg_url)
    (moved / "cache.db").write_bytes(b"not a database at all " * 200)
    for side in ("-wal", "-shm"):
        (moved / f"cache.db{side}").unlink(missing_ok=True)
    (failed,) = _erase(settings, "cli").failures
    assert "cache.db could not be opened as a database" in failed and IN_USE not in failed, failed
    (notice,) = [t for t in _notices(pg_url) if "could not finish erasing" in t]
    assert "fix or delete that folder" in notice
