"""A recorded ``db copy`` copy belongs to a state folder (its ``state-id``), not to a host
name: replicas can share one (containers, cloned VMs, "localhost"), and ``deptbot check``
on replica B then forgot replica A's copy record, so later erases stopped naming a copy
that still held the person's data. A record is forgotten only from its own state folder,
never on a missing or unreadable id, and a record from before the ids (migration 0009)
never on its own."""

from __future__ import annotations

import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance.keys import generate
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database
from tests.governance.test_privacy_erase import EMAIL, _canary_activity, _world
from tests.pg_fixtures import checked_url

HOST = "localhost"  # what both replicas are called


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _copied(run, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> tuple[dict[str, str], Path, Path]:  # type: ignore[no-untyped-def]
    """Replica A's SQLite state copied into PostgreSQL by `db copy`: (keys, A's state
    folder, the copy's folder). Every later call runs on a host called ``HOST`` too."""
    root: Path = run.root
    keys = {"DEPTBOT_MASTER_KEY": generate(), "DEPTBOT_AUDIT_KEY": "5a" * 32}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    settings, assistant, convo, notices = _world(root, keys)
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    monkeypatch.setattr(socket, "gethostname", lambda: HOST)
    code, _, err = run("db", "copy", "--to", pg_url)
    assert code == 0, err
    (moved,) = (settings.state_dir / "copied-to-postgresql").iterdir()
    forget_open_vaults()
    return keys, settings.state_dir, moved


def _rows(pg_url: str) -> list[tuple[str, str, str | None]]:
    db = Database(checked_url(pg_url))
    try:
        with db.tx() as t:
            return [tuple(r) for r in t.execute("select host, path, state_id from state_copies").fetchall()]
    finally:
        db.close()


def test_a_replica_with_the_same_host_name_never_forgets_anothers_copy(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, state_a, moved = _copied(run, monkeypatch, pg_url)
    mode = stat.S_IMODE((state_a / "state-id").stat().st_mode)
    assert mode == 0o600, oct(mode)
    monkeypatch.setenv(ENV_VAR, pg_url)
    state_b = run.root / "state-b"  # replica B: the same host name, its own state folder
    monkeypatch.setenv("DEPTBOT_STATE", str(state_b))
    away = run.root / "replica-a-disk"  # A's files are on A's machine, not visible from B
    state_a.rename(away)
    from bot.store.pg_copy import ensure_state_id

    state_b.mkdir(mode=0o700)
    assert ensure_state_id(state_b) != (away / "state-id").read_text().strip()  # B has its own id
    _code, out, err = run("check")
    assert "forgot the SQLite copy" not in out, out  # before: "forgot the SQLite copy at … on localhost"
    assert f"warning: the SQLite copy on {HOST} at {moved.resolve()}" in out, out + err
    assert len(_rows(pg_url)) == 1
    other = Settings.load(departments=run.root / "departments", state=state_b, env={ENV_VAR: pg_url, **keys})
    privacy = Privacy.for_settings(other)
    receipt = privacy.erase(EMAIL)  # so an erase on B still names A's copy
    privacy.close()
    assert [n for n in receipt.notes if str(moved.resolve()) in n], receipt.notes
    away.rename(state_a)

    monkeypatch.setenv("DEPTBOT_STATE", str(state_a))  # back on A: deleted, then forgotten
    shutil.rmtree(moved)
    _code, out, err = run("check")
    assert f"forgot the SQLite copy at {moved.resolve()} on {HOST}" in out, out + err
    assert _rows(pg_url) == []


def test_a_replica_at_the_same_path_with_its_own_id_never_forgets_or_takes_anothers_copy(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Containers: replica A and B both keep their state at the same path on the same host
    name, each on its own volume. Only the ids tell them apart: B's check must not forget
    A's copy (its recorded path is in B's copies folder as B resolves it, and missing
    there), and B's erase must not take a folder at that path for its own."""
    from bot.store.pg_copy import ensure_state_id

    keys, state_a, moved = _copied(run, monkeypatch, pg_url)
    monkeypatch.setenv(ENV_VAR, pg_url)
    volume_a = run.root / "volume-a"
    state_a.rename(volume_a)  # A's volume unmounted; B's is mounted at the same path
    state_a.mkdir(mode=0o700)
    id_b = ensure_state_id(state_a)
    assert id_b != (volume_a / "state-id").read_text().strip()
    _code, out, _err = run("check")
    assert "forgot the SQLite copy" not in out, out  # a host-name-only comparison forgets it here
    assert len(_rows(pg_url)) == 1

    # B's volume has a copy folder at that very path (B's own, erased as local files), and
    # A's copy on A's volume is still out of reach: the receipt must say so
    (state_a / "copied-to-postgresql").mkdir(mode=0o700)
    shutil.copytree(volume_a / "copied-to-postgresql" / moved.name, moved)
    other = Settings.load(departments=run.root / "departments", state=state_a, env={ENV_VAR: pg_url, **keys})
    privacy = Privacy.for_settings(other)
    try:
        receipt = privacy.erase(EMAIL)
    finally:
        privacy.close()
    assert receipt.removed.get("copied_sqlite_folders_erased") == 1
    assert receipt.missed == 1, receipt.notes  # a host-name-only here() took A's record for B's folder
    assert [n for n in receipt.notes if str(moved.resolve()) in n and "could not be reached" in n]


@pytest.mark.parametrize("damage", ["missing", "unreadable"])
def test_a_missing_or_unreadable_state_id_forgets_nothing(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    from bot.errors import StoreError
    from bot.store.pg_copy import ensure_state_id

    _, state_a, moved = _copied(run, monkeypatch, pg_url)
    made = (state_a / "state-id").read_text()
    if damage == "missing":
        (state_a / "state-id").unlink()
    else:
        (state_a / "state-id").write_text("not an id\n")
        with pytest.raises(StoreError, match="never replaced"):
            ensure_state_id(state_a)  # and never made anew over it
        assert (state_a / "state-id").read_text() == "not an id\n"
    monkeypatch.setenv(ENV_VAR, pg_url)
    shutil.rmtree(moved)
    _code, out, err = run("check")
    assert "forgot the SQLite copy" not in out and f"warning: the SQLite copy on {HOST}" in out, out + err
    assert [r[2] for r in _rows(pg_url)] == [made.strip()]


def test_a_record_from_before_the_ids_is_kept_with_a_hint_or_adopted_where_its_folder_is(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0009's rows have no id: never forgotten automatically (fail closed), warned about
    with the way to clear them; a check on the host whose state folder holds the copy
    files the record under that folder, so deleting it and checking forgets it again."""
    _, state_a, moved = _copied(run, monkeypatch, pg_url)
    db = Database(checked_url(pg_url))
    try:
        with db.tx() as t:
            t.execute("update state_copies set state_id = null")  # as migration 0010 left it
            t.execute(
                "insert into state_copies (host, path, at) values (?, ?, ?)",
                ["old-host", "/srv/gone/copied-to-postgresql/20250101T000000Z", 1.7e9],
            )
    finally:
        db.close()
    monkeypatch.setenv(ENV_VAR, pg_url)
    monkeypatch.setenv("DEPTBOT_STATE", str(run.root / "state-b"))  # not where the copy is
    _code, out, err = run("check")
    assert "forgot the SQLite copy" not in out, out
    assert "predates state folder ids" in out and "delete from state_copies where host = 'old-host'" in out
    assert sorted(r[2] is None for r in _rows(pg_url)) == [True, True]  # B adopted nothing

    monkeypatch.setenv("DEPTBOT_STATE", str(state_a))
    _code, out, err = run("check")  # A holds the copy: filed under A's id
    rows = {r[1]: r[2] for r in _rows(pg_url)}
    assert rows[str(moved.resolve())] == (state_a / "state-id").read_text().strip()
    assert rows["/srv/gone/copied-to-postgresql/20250101T000000Z"] is None
    shutil.rmtree(moved)
    _code, out, err = run("check")
    assert f"forgot the SQLite copy at {moved.resolve()}" in out, out + err
    assert [r[0] for r in _rows(pg_url)] == ["old-host"]  # the other stays, warned about


def test_the_state_id_is_made_once_and_kept(tmp_path: Path) -> None:
    from bot.store.pg_copy import ensure_state_id, read_state_id

    assert read_state_id(tmp_path) is None  # reading never makes one
    assert not (tmp_path / "state-id").exists()
    first = ensure_state_id(tmp_path)
    assert ensure_state_id(tmp_path) == first == read_state_id(tmp_path)
    assert len(first) == 32 and int(first, 16) >= 0


def test_a_failed_write_leaves_no_empty_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The id was created (O_EXCL), then written: a full disk or a crash in between left
    an empty ``state-id``, which is never replaced, so every later ``db copy`` failed."""
    import errno
    import os

    from bot.errors import StoreError
    from bot.store.pg_copy import ensure_state_id

    def full(*args: object, **kwargs: object) -> object:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "write", full)
        m.setattr(os, "fdopen", full)
        with pytest.raises(StoreError, match="Could not create"):  # before: a bare OSError
            ensure_state_id(tmp_path)
    assert list(tmp_path.iterdir()) == []  # before: an empty state-id, never replaced
    assert len(ensure_state_id(tmp_path)) == 32


def test_check_never_creates_the_id_and_adoption_failing_still_lists(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check`` (often run as root) made the id while adopting a record from before 0010:
    a root-owned 0600 file the service cannot read. Only ``db copy`` makes it now. And a
    failing adoption no longer hides the list of copies."""
    from bot.errors import StoreError
    from bot.store import pg_copy

    _, state_a, moved = _copied(run, monkeypatch, pg_url)
    (state_a / "state-id").unlink()
    db = Database(checked_url(pg_url))
    try:
        with db.tx() as t:
            t.execute("update state_copies set state_id = null")  # as 0010 left a 0009 record
    finally:
        db.close()
    monkeypatch.setenv(ENV_VAR, pg_url)
    _code, out, err = run("check")
    assert not (state_a / "state-id").exists()  # before: made by check
    assert f"warning: the SQLite copy on {HOST} at {moved.resolve()}" in out, out + err
    assert [r[2] for r in _rows(pg_url)] == [None]

    def refused(db: Database, state_dir: Path) -> list[object]:
        raise StoreError("Could not file the copies' records under this state folder.")

    monkeypatch.setattr(pg_copy, "adopt_old_records", refused)
    _code, out, err = run("check")
    assert "could not be filed" in out, out + err
    assert f"warning: the SQLite copy on {HOST} at {moved.resolve()}" in out, out  # before: hidden
