"""Per-person data keys (``bot.governance.vault``) on both backends, and why PostgreSQL
must hold them: two replicas share one audit log, so a question sealed on one must open
on the other, and an erase on one must shred the key for both."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.cli import main
from bot.governance import keys as mk
from bot.governance.vault import MasterKeyMissing, TextErased, forget_open_vaults, vault_for
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database

from .conftest import Backend


@pytest.fixture(autouse=True)
def _fresh_vaults(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv(mk.ENV_VAR, raising=False)
    yield
    forget_open_vaults()


def _keys(*secrets: str) -> mk.MasterKeys:
    return mk.MasterKeys(tuple(mk.MasterKey.of(mk.decode(s, where="test")) for s in secrets), "environment")


def test_seal_open_shred(backend: Backend) -> None:
    vault = backend.vault()
    blob = vault.seal("Ann@Example.com", "my salary question", "request_text:r1")
    assert b"salary" not in blob
    assert vault.open("ann@example.com", blob, "request_text:r1") == "my salary question"
    with pytest.raises(Exception, match="integrity"):
        vault.open("ann@example.com", blob, "request_text:r2")  # moved to another row
    assert vault.has_key("ann@example.com") and vault.status().total == 1
    assert vault.shred("ANN@example.com") and not vault.shred("ann@example.com")
    with pytest.raises(TextErased):
        vault.open("ann@example.com", blob, "request_text:r1")
    assert vault.status().total == 0
    fresh = vault.seal("ann@example.com", "after the erase", "c")  # a new key, unrelated to the old
    assert vault.open("ann@example.com", fresh, "c") == "after the erase"


def test_threads_creating_one_subjects_key_agree(backend: Backend) -> None:
    vault = backend.vault()
    with ThreadPoolExecutor(8) as pool:
        blobs = list(pool.map(lambda n: vault.seal("bob@example.com", f"q{n}", "c"), range(24)))
    assert {b[1:9] for b in blobs} == {blobs[0][1:9]}  # one data key id for every blob
    assert [vault.open("bob@example.com", b, "c") for b in blobs] == [f"q{n}" for n in range(24)]


def test_rewrap_moves_every_key_to_the_current_master_key(backend: Backend) -> None:
    old, new = mk.generate(), mk.generate()
    vault = backend.vault(_keys(old))
    blobs = {f"p{n}@x": vault.seal(f"p{n}@x", f"text {n}", "c") for n in range(5)}
    rotated = backend.vault(_keys(new, old))
    assert rotated.status().unknown == {mk.key_id(mk.decode(old, where="t")): 5}
    assert rotated.rewrap(batch=2) == 5 and rotated.rewrap() == 0
    only_new = backend.vault(_keys(new))
    assert only_new.missing_master_keys() == {} and only_new.status().total == 5
    for person, blob in blobs.items():
        assert only_new.open(person, blob, "c") == f"text {person[1]}"
    stranger = backend.vault(_keys(mk.generate()))
    with pytest.raises(MasterKeyMissing):
        stranger.open("p0@x", blobs["p0@x"], "c")


def _replica(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(departments_dir=Path("."), state_dir=tmp_path / name, env={ENV_VAR: url})


def test_text_sealed_on_one_replica_opens_on_another_and_an_erase_reaches_both(
    tmp_path: Path, pg_url: str
) -> None:
    """The bug this fixes: each replica kept its own keys.db, so B could not open the
    question A sealed into the shared audit log, and an erase on B left A's key alive."""
    a = vault_for(_replica(tmp_path, "machine-a", pg_url))
    b = vault_for(_replica(tmp_path, "machine-b", pg_url))
    blob = a.seal("ann@example.com", "where is the payslip?", "request_text:r1")
    assert b.open("ann@example.com", blob, "request_text:r1") == "where is the payslip?"
    assert b.shred("ann@example.com")
    with pytest.raises(TextErased):
        a.open("ann@example.com", blob, "request_text:r1")
    assert not (tmp_path / "machine-a" / "keys.db").exists()  # nothing personal left on a machine
    assert not (tmp_path / "machine-b" / "keys.db").exists()


def test_shredding_on_postgres_leaves_no_copy_of_the_wrapped_key_in_the_table_file(
    pg_db: Database, tmp_path: Path
) -> None:
    backend = Backend("postgres", tmp_path, pg_db)
    vault = backend.vault()
    vault.seal("ann@example.com", "x", "c")
    (wrapped,) = backend.sql("", "select wrapped from subject_keys")[0]
    before = backend.sql("", "select pg_relation_filepath('subject_keys')")[0][0]
    assert vault.shred("ann@example.com")
    after = backend.sql("", "select pg_relation_filepath('subject_keys')")[0][0]
    assert after != before  # VACUUM FULL rewrote the table: the old file (with the row) is gone
    assert backend.sql("", "select count(*) from subject_keys where wrapped = ?", [bytes(wrapped)]) == [(0,)]


def test_keys_status_and_rotate_commands_on_postgres(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = mk.generate(), mk.generate()
    monkeypatch.setenv(ENV_VAR, pg_url)
    state = tmp_path / "state"
    vault = vault_for(Settings.load(state=tmp_path / "a", env={ENV_VAR: pg_url, mk.ENV_VAR: old}))
    blob = vault.seal("ann@example.com", "text", "c")
    monkeypatch.setenv(mk.ENV_VAR, f"{new},{old}")
    assert main(["--state", str(state), "keys", "status"]) == 0
    out = capsys.readouterr().out
    assert f"1 under {mk.key_id(mk.decode(old, where='t'))}" in out
    assert main(["--state", str(state), "keys", "rotate"]) == 0
    assert "Re-wrapped 1 data key(s)" in capsys.readouterr().out
    forget_open_vaults()
    monkeypatch.setenv(mk.ENV_VAR, new)
    assert main(["--state", str(state), "keys", "status"]) == 0
    assert f"1 under {mk.key_id(mk.decode(new, where='t'))}" in capsys.readouterr().out
    other = vault_for(Settings.load(state=tmp_path / "b", env={ENV_VAR: pg_url, mk.ENV_VAR: new}))
    assert other.open("ann@example.com", blob, "c") == "text"
    assert not (state / "keys.db").exists()


def test_check_reports_postgres_keys_under_a_master_key_not_configured_here(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``deptbot check`` reads the shared key table (not a keys.db that is not there)."""
    from tests.fakes import make_company

    make_company(tmp_path)
    elsewhere = mk.generate()
    vault_for(Settings.load(state=tmp_path / "other", env={ENV_VAR: pg_url, mk.ENV_VAR: elsewhere})).seal(
        "ann@example.com", "text", "c"
    )
    monkeypatch.setenv(ENV_VAR, pg_url)
    monkeypatch.setenv(mk.ENV_VAR, mk.generate())  # this replica was given another key
    args = ["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state"), "check"]
    assert main(args) == 2
    err = capsys.readouterr().err
    kid = mk.key_id(mk.decode(elsewhere, where="t"))
    assert f"(subject_keys): keys: 1 data key(s) are wrapped with master key {kid}" in err
