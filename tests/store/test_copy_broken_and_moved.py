"""Review findings on the SQLite copies ``db copy`` leaves (session 20):

- a file in a copy folder that is not a database (``Thumbs.db``, a garbage ``cache.db``)
  raised a bare ``sqlite3.DatabaseError`` out of the erase: a traceback, the person's live
  data key never destroyed, no receipt. Unrelated names are never opened now; a copy whose
  own files do not open is left untouched and listed as FAILED (the admins get a notice
  with its path), and the live erase, the key's destruction and the second pass still run;
- ``check`` forgot a copy whose recorded path was missing although the folder had only
  been tidied into ``copied-to-postgresql/archive/`` or was reached by another path (a
  container's mount point), so later erases stopped naming it; and the erase did not look
  below the first level of ``copied-to-postgresql``.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.store.backend import ENV_VAR, Database
from bot.store.pg_notices import PgNotices
from tests.governance.test_privacy_erase import EMAIL, _files, _holding
from tests.pg_fixtures import checked_url
from tests.store.test_copy_erase_gaps import _copied

GARBAGE = b"this is not a database, just some bytes" * 100


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _pg(pg_url: str, sql: str) -> list[tuple[object, ...]]:
    db = Database(checked_url(pg_url))
    try:
        with db.tx() as t:
            return [tuple(r) for r in t.execute(sql).fetchall()]
    finally:
        db.close()


def _databases(folder: Path) -> dict[Path, bytes]:
    """The copy's database files (not the -wal/-shm a reader may leave beside them)."""
    return {p: raw for p, raw in _files(folder).items() if not p.name.endswith(("-wal", "-shm"))}


def _notices(pg_url: str) -> list[str]:
    db = Database(checked_url(pg_url))
    try:
        return [n.text for n in PgNotices(db).recent(limit=50)]
    finally:
        db.close()


def test_a_foreign_file_in_a_copy_is_never_opened(run, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _settings, moved = _copied(run, pg_url)
    (moved / "Thumbs.db").write_bytes(GARBAGE)  # a file manager's, not the copy's
    monkeypatch.setenv(ENV_VAR, pg_url)
    code, out, err = run("privacy", "erase", EMAIL, "--yes")
    assert code == 0, out + err  # before: sqlite3.DatabaseError out of the checkpoint
    assert "FAILED" not in out and "copied sqlite folders erased: 1" in out
    assert (moved / "Thumbs.db").read_bytes() == GARBAGE
    assert _holding(_files(moved), EMAIL) == []


@pytest.mark.parametrize("platform", ["cli", "slack"])
def test_a_corrupt_copy_fails_alone_and_the_live_key_is_still_destroyed(  # type: ignore[no-untyped-def]
    run, pg_url: str, platform: str
) -> None:
    settings, moved = _copied(run, pg_url)
    (moved / "cache.db").write_bytes(GARBAGE)  # a copy's own file, damaged
    for side in ("-wal", "-shm"):
        (moved / f"cache.db{side}").unlink(missing_ok=True)
    before = _databases(moved)
    keys_before = _pg(pg_url, "select count(*) from subject_keys")[0][0]
    privacy = Privacy.for_settings(settings)
    try:
        receipt = privacy.erase(EMAIL, platform=platform)  # before: sqlite3.DatabaseError
    finally:
        privacy.close()
    assert receipt.key_shredded
    assert _pg(pg_url, "select count(*) from subject_keys")[0][0] < keys_before  # the live keys went
    assert receipt.removed["audit_rows_pseudonymized"] >= 4  # the live erase ran
    assert not receipt.complete
    (failed,) = receipt.failures
    assert "did not run" in failed
    assert (str(moved) in failed) == (platform == "cli")  # chat never sees a server path
    assert _databases(moved) == before  # a copy that does not open is left as it is, not half-erased
    (notice,) = [t for t in _notices(pg_url) if "could not finish erasing" in t]
    assert str(moved) in notice and receipt.request_id in notice
    assert EMAIL.lower() not in notice.lower()


def test_cli_erase_with_a_corrupt_copy_exits_1_with_a_receipt(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings, moved = _copied(run, pg_url)
    (moved / "usage.db").write_bytes(GARBAGE)
    for side in ("-wal", "-shm"):
        (moved / f"usage.db{side}").unlink(missing_ok=True)
    monkeypatch.setenv(ENV_VAR, pg_url)
    code, out, err = run("privacy", "erase", EMAIL, "--yes")
    assert code == 1, out + err
    assert "Data key destroyed: yes" in out and "Traceback" not in out + err
    assert any(line.startswith("FAILED:") and str(moved) in line for line in out.splitlines()), out


def test_check_keeps_a_copy_tidied_into_a_subfolder_and_erase_finds_it(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings, moved = _copied(run, pg_url)
    archive = moved.parent / "archive"
    archive.mkdir()
    tidied = archive / moved.name
    moved.rename(tidied)
    monkeypatch.setenv(ENV_VAR, pg_url)
    _code, out, err = run("check")
    assert "forgot the SQLite copy" not in out, out  # before: forgotten, the copy still there
    assert "warning: the SQLite copy on" in out and str(moved.resolve()) in out, out + err
    assert len(_pg(pg_url, "select path from state_copies")) == 1
    assert _holding(_files(tidied), EMAIL)
    code, out, err = run("privacy", "erase", EMAIL, "--yes")
    assert code == 0, out + err  # reached: the same folder, by its name, under this state folder
    assert "copied sqlite folders erased: 1" in out and "could not be reached" not in out, out
    assert _holding(_files(tidied), EMAIL) == []  # before: audit.db and usage.db still named them

    tidied.parent.rename(moved.parent / "deleted-later")  # still there under another name: kept
    _code, out, err = run("check")
    assert "forgot the SQLite copy" not in out, out
    shutil.rmtree(moved.parent / "deleted-later")
    _code, out, err = run("check")
    assert f"forgot the SQLite copy at {moved.resolve()}" in out, out + err


def test_check_keeps_a_copy_whose_state_folder_is_reached_by_another_path(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``db copy`` ran with the state at one path (a container's /data/state); ``check``
    runs with the same folder at another (the host's /srv/deptbot/state)."""
    settings, moved = _copied(run, pg_url)
    elsewhere = run.root / "mounted-here"
    settings.state_dir.rename(elsewhere)
    monkeypatch.setenv(ENV_VAR, pg_url)
    monkeypatch.setenv("DEPTBOT_STATE", str(elsewhere))
    _code, out, err = run("check")
    assert "forgot the SQLite copy" not in out, out  # before: forgotten, the copy still there
    assert str(moved.resolve()) in out, out + err
    assert len(_pg(pg_url, "select path from state_copies")) == 1


def test_an_export_with_a_corrupt_copy_says_so_and_exits_incomplete(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings, moved = _copied(run, pg_url)
    (moved / "cache.db").write_bytes(GARBAGE)
    for side in ("-wal", "-shm"):
        (moved / f"cache.db{side}").unlink(missing_ok=True)
    monkeypatch.setenv(ENV_VAR, pg_url)
    code, out, err = run("privacy", "export", EMAIL, "--out", str(run.root / "export.json"))
    assert code == 4, out + err  # before: sqlite3.DatabaseError out of the export
    assert f"at {moved} could not be read" in out and "4 questions" in out, out


@pytest.mark.parametrize("platform", ["cli", "slack"])
def test_a_copy_erase_that_fails_midway_tells_chat_the_admins_know(  # type: ignore[no-untyped-def]
    run, pg_url: str, platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person in chat cannot mend a copy on a server: their receipt says the admins were
    told (they are: a notice), the CLI's says to run the erase again."""
    settings, _ = _copied(run, pg_url)
    real = Privacy._erase

    def breaks_in_copies(self: Privacy, *a: object, **k: object) -> object:
        if k.get("record") is False:  # only the erase inside a copy
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Privacy, "_erase", breaks_in_copies)
    privacy = Privacy.for_settings(settings)
    try:
        receipt = privacy.erase(EMAIL, platform=platform)
    finally:
        privacy.close()
    (failed,) = receipt.failures
    assert "did not complete" in failed and receipt.key_shredded
    if platform == "cli":
        assert failed.endswith("run the erase again.")
    else:
        assert failed.endswith("the admins have been told.") and "run the erase" not in failed
