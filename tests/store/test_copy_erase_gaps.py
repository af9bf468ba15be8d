"""Two gaps in how an erase on PostgreSQL covers the SQLite copies ``db copy`` left:

- a folder counted as a copy only while it held ``audit.db`` or ``keys.db``, so a copy
  left with only ``usage.db`` (e-mail in plain text) or only the Teams state was neither
  erased nor exported. Any file ``db copy`` moves (``pg_copy.MOVED``) makes it one now;
- a copy's own erase receipt was dropped, so a copy whose WAL could not be truncated
  (nothing ever opens a copy again to do it later) still gave a clean receipt and exit 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance import privacy as privacy_mod
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR
from tests.governance.test_privacy_erase import EMAIL, _canary_activity, _files, _holding, _world


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _copied(run, pg_url: str) -> tuple[Settings, Path]:  # type: ignore[no-untyped-def]
    """A SQLite installation with the canary's activity, copied by `db copy`: the
    PostgreSQL settings of that state folder, and the copy's folder."""
    root: Path = run.root
    settings, assistant, convo, notices = _world(root, {})
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    code, _, err = run("db", "copy", "--to", pg_url)
    assert code == 0, err
    (moved,) = (settings.state_dir / "copied-to-postgresql").iterdir()
    forget_open_vaults()
    pg = Settings.load(departments=root / "departments", state=settings.state_dir, env={ENV_VAR: pg_url})
    return pg, moved


def _keep_only(folder: Path, name: str) -> None:
    for p in folder.iterdir():
        if p.name.removesuffix("-wal").removesuffix("-shm") != name:
            p.unlink()


def test_a_copy_left_with_only_usage_db_is_exported_and_erased(run, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    settings, moved = _copied(run, pg_url)
    _keep_only(moved, "usage.db")
    assert _holding(_files(moved), EMAIL)  # usage rows name the person in plain text
    privacy = Privacy.for_settings(settings)
    export = privacy.export(EMAIL, record=False)
    (copy,) = export.data["sqlite_copies"]
    assert copy["folder"] == str(moved) and copy["usage"]["attempts"]
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert _holding(_files(moved), EMAIL) == []  # before: ['usage.db']
    assert receipt.removed["copied_sqlite_folders_erased"] == 1
    assert receipt.removed["usage_rows_pseudonymized_in_sqlite_copies"] >= 1
    assert sorted(p.name for p in moved.iterdir() if p.suffix == ".db") == ["usage.db"]  # nothing made up


def test_a_copy_left_with_only_the_teams_state_is_erased(run, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    settings, moved = _copied(run, pg_url)
    _keep_only(moved, "teams-state.sqlite3")

    def turns() -> int:
        conn = sqlite3.connect(moved / "teams-state.sqlite3")
        try:
            return int(conn.execute("select count(*) from teams_history").fetchone()[0])
        finally:
            conn.close()

    assert turns() == 2
    privacy = Privacy.for_settings(settings)
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert turns() == 0  # before: 2, the folder was not counted as a copy
    assert receipt.removed["teams_history_in_sqlite_copies"] == 2 and receipt.complete


def test_a_copy_whose_erase_did_not_complete_fails_the_receipt_and_the_cli(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy's audit.db WAL cannot be truncated (a reader held it): its receipt said so,
    and the overall one dropped it: "clean", exit 0."""
    settings, moved = _copied(run, pg_url)
    real = privacy_mod.checkpoint

    def busy_in_the_copy(conn: sqlite3.Connection, **kwargs: object) -> bool:
        (path,) = [row[2] for row in conn.execute("pragma database_list") if row[1] == "main"]
        if Path(path) == moved / "audit.db":
            return False
        return real(conn)

    monkeypatch.setattr(privacy_mod, "checkpoint", busy_in_the_copy)
    monkeypatch.setenv(ENV_VAR, pg_url)
    code, out, err = run("privacy", "erase", EMAIL, "--yes")
    assert code != 0, out + err  # before: 0
    failed = [line for line in out.splitlines() if line.startswith("FAILED:")]
    assert failed and str(moved) in failed[0] and "WAL" in failed[0], out
    assert "copied sqlite folders erased: 1" in out  # the rest was still erased

    forget_open_vaults()
    privacy = Privacy.for_settings(settings)
    receipt = privacy.erase(EMAIL, platform="teams")  # chat: said without the folder's path
    privacy.close()
    assert not receipt.complete and str(moved) not in " ".join(receipt.lines())
