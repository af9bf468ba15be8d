"""``deptbot keys init|rotate|status``: a new key file, and rotation that re-wraps every
data key (the sealed text is not rewritten) while keeping everything readable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.governance import keys as mk
from bot.governance.vault import Vault, forget_open_vaults


@pytest.fixture(autouse=True)
def _fresh_vaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(mk.ENV_VAR, raising=False)
    yield
    forget_open_vaults()


def _sealed_rows(state: Path) -> list[bytes]:
    conn = sqlite3.connect(state / "keys.db")
    return [bytes(r[0]) for r in conn.execute("select wrapped from subject_keys order by subject_id")]


def test_init_writes_a_private_key_file_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "etc" / "master.key"
    state = tmp_path / "state"
    assert main(["--state", str(state), "keys", "init", "--file", str(key_file)]) == 0
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = key_file.read_text()
    assert "DEPTBOT_PRIVACY__MASTER_KEY_FILE" in capsys.readouterr().out  # not in effect yet: says how
    assert main(["--state", str(state), "keys", "init", "--file", str(key_file)]) == 1
    assert "never overwrites" in capsys.readouterr().err
    assert key_file.read_text() == first
    assert main(["--state", str(state), "keys", "init"]) == 2  # nowhere to write: asks


def test_init_on_the_configured_file_rewraps_builtin_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    blob = Vault.in_state_dir(state, mk.load({}, None)).seal("a@example.com", "before init", "c")
    key_file = tmp_path / "master.key"
    monkeypatch.setenv("DEPTBOT_PRIVACY__MASTER_KEY_FILE", str(key_file))
    assert main(["--state", str(state), "keys", "init"]) == 0
    keys = mk.load({}, key_file)
    vault = Vault.in_state_dir(state, keys)
    assert vault.status().by_master == {keys.current.id: 1}
    assert vault.open("a@example.com", blob, "c") == "before init"


def test_rotate_rewraps_data_keys_and_keeps_text_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state, key_file = tmp_path / "state", tmp_path / "master.key"
    mk.write_new_file(key_file, [mk.generate()])
    monkeypatch.setenv("DEPTBOT_PRIVACY__MASTER_KEY_FILE", str(key_file))
    old = mk.load({}, key_file)
    vault = Vault.in_state_dir(state, old)
    blobs = {f"p{i}@example.com": vault.seal(f"p{i}@example.com", f"text {i}", "c") for i in range(7)}
    wrapped_before = _sealed_rows(state)
    data_before = dict(blobs)

    assert main(["--state", str(state), "keys", "rotate", "--batch", "3"]) == 0
    new = mk.load({}, key_file)
    assert new.current.id != old.current.id
    assert len(new.keys) == 1  # the old key left the file once nothing used it
    after = Vault.in_state_dir(state, new)
    assert after.status().by_master == {new.current.id: 7}
    assert _sealed_rows(state) != wrapped_before  # keys re-wrapped…
    for person, blob in data_before.items():  # …the sealed text untouched and readable
        assert after.open(person, blob, "c") == f"text {person[1]}"
    # the old key alone no longer opens anything
    with pytest.raises(Exception, match="not configured"):
        Vault.in_state_dir(state, old).open("p0@example.com", blobs["p0@example.com"], "c")
    assert "Re-wrapped 7" in capsys.readouterr().out


def test_an_interrupted_rotation_stays_readable_and_can_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 1 of a rotation writes [new, old]; a crash before the re-wrap ends must lose nothing."""
    state, key_file = tmp_path / "state", tmp_path / "master.key"
    old_text = mk.generate()
    mk.write_new_file(key_file, [old_text])
    blob = Vault.in_state_dir(state, mk.load({}, key_file)).seal("a@example.com", "kept", "c")
    mk.replace_file(key_file, [mk.generate(), old_text])  # as rotate leaves it mid-way
    mid = Vault.in_state_dir(state, mk.load({}, key_file))
    assert mid.open("a@example.com", blob, "c") == "kept"  # old key id still accepted
    monkeypatch.setenv("DEPTBOT_PRIVACY__MASTER_KEY_FILE", str(key_file))
    assert main(["--state", str(state), "keys", "rotate"]) == 0
    final = mk.load({}, key_file)
    assert Vault.in_state_dir(state, final).open("a@example.com", blob, "c") == "kept"


def test_rotate_with_keys_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    old, new = mk.generate(), mk.generate()
    blob = Vault.in_state_dir(state, mk.load({mk.ENV_VAR: old}, None)).seal("a@example.com", "env", "c")
    monkeypatch.setenv(mk.ENV_VAR, f"{new},{old}")
    assert main(["--state", str(state), "keys", "rotate"]) == 0
    only_new = mk.load({mk.ENV_VAR: new}, None)
    assert Vault.in_state_dir(state, only_new).open("a@example.com", blob, "c") == "env"


def test_status_names_missing_master_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    Vault.in_state_dir(state, mk.load({mk.ENV_VAR: mk.generate()}, None)).seal("a@example.com", "x", "c")
    monkeypatch.setenv(mk.ENV_VAR, mk.generate())
    assert main(["--state", str(state), "keys", "status"]) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_check_warns_about_the_builtin_key_and_flags_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fakes import make_company

    make_company(tmp_path)
    base = ["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state")]
    assert main([*base, "check"]) == 0
    assert "built-in default key; run `deptbot keys init`" in capsys.readouterr().out

    Vault.in_state_dir(tmp_path / "state", mk.load({mk.ENV_VAR: mk.generate()}, None)).seal(
        "a@x.com", "t", "c"
    )
    monkeypatch.setenv(mk.ENV_VAR, mk.generate())  # another key: that text cannot be read here
    assert main([*base, "check"]) == 2
    out = capsys.readouterr()
    assert "not configured: that text cannot be read" in out.err and "built-in" not in out.out


def test_a_replaced_key_file_is_private_even_over_a_stale_temp_file(tmp_path: Path) -> None:
    """A leftover ``.tmp`` sibling with a wider mode must not carry the new key out."""
    from bot.governance.keys import replace_file, write_new_file

    path = tmp_path / "keys" / "master.key"
    write_new_file(path, ["a" * 43 + "="])
    assert path.parent.stat().st_mode & 0o777 == 0o700 and path.stat().st_mode & 0o777 == 0o600
    stale = path.with_name(path.name + ".tmp")
    stale.write_text("old")
    stale.chmod(0o644)
    replace_file(path, ["b" * 43 + "="])
    assert path.stat().st_mode & 0o777 == 0o600
