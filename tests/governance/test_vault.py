"""The vault: sealed text round-trips, fails loudly when the key, the row or the bytes are
wrong, and is gone for good once a subject's data key is shredded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.governance import keys as mk
from bot.governance.vault import (
    MasterKeyMissing,
    Tampered,
    TextErased,
    Vault,
    forget_open_vaults,
    subject_id,
    vault_for,
)
from bot.settings import Settings


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _keys(*texts: str) -> mk.MasterKeys:
    return mk.load({mk.ENV_VAR: ",".join(texts)}, None)


def test_round_trip_and_blob_format(tmp_path: Path) -> None:
    vault = Vault.in_state_dir(tmp_path, _keys(mk.generate()))
    blob = vault.seal("Alice@Example.com", "How many vacation days — ünïcode?", "request_text:r1")
    assert isinstance(blob, bytes) and blob[:1] == b"\x01"
    assert b"vacation" not in blob
    assert vault.open("alice@example.com", blob, "request_text:r1") == "How many vacation days — ünïcode?"
    # the same text twice gives different blobs (random nonce)
    assert vault.seal("alice@example.com", "x", "c") != vault.seal("alice@example.com", "x", "c")


def test_subjects_are_not_stored_in_clear(tmp_path: Path) -> None:
    vault = Vault.in_state_dir(tmp_path, _keys(mk.generate()))
    vault.seal("carol.secret@example.com", "text", "c")
    vault.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"carol.secret" not in raw
    conn = sqlite3.connect(tmp_path / "keys.db")
    assert conn.execute("select subject_id from subject_keys").fetchone()[0] == subject_id(
        "carol.secret@example.com"
    )


def test_wrong_master_key_is_a_clear_error_never_plaintext(tmp_path: Path) -> None:
    right, wrong = mk.generate(), mk.generate()
    blob = Vault.in_state_dir(tmp_path, _keys(right)).seal("a@example.com", "secret words", "t:1")
    other = Vault.in_state_dir(tmp_path, _keys(wrong))
    with pytest.raises(MasterKeyMissing) as err:
        other.open("a@example.com", blob, "t:1")
    assert isinstance(err.value, StoreError)
    assert mk.key_id(mk.decode(right, where="t")) in err.value.user_message  # names the key it needs
    assert "secret words" not in err.value.user_message
    with pytest.raises(MasterKeyMissing):  # sealing more text for that person fails too
        other.seal("a@example.com", "more", "t:2")


def test_tampered_or_moved_ciphertext_fails(tmp_path: Path) -> None:
    vault = Vault.in_state_dir(tmp_path, _keys(mk.generate()))
    blob = vault.seal("a@example.com", "the question", "request_text:r1")
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(Tampered):
        vault.open("a@example.com", bytes(flipped), "request_text:r1")
    with pytest.raises(Tampered):  # copied to another row
        vault.open("a@example.com", blob, "request_text:r2")
    vault.seal("b@example.com", "other", "c")
    with pytest.raises((Tampered, TextErased)):  # shown as someone else's
        vault.open("b@example.com", blob, "request_text:r1")
    with pytest.raises(Tampered):
        vault.open("a@example.com", "the question", "request_text:r1")  # plaintext is refused
    with pytest.raises(Tampered):
        vault.open("a@example.com", b"\x02" + blob[1:], "request_text:r1")


def test_tampered_wrapped_key_fails(tmp_path: Path) -> None:
    vault = Vault.in_state_dir(tmp_path, _keys(mk.generate()))
    blob = vault.seal("a@example.com", "x", "c")
    conn = sqlite3.connect(tmp_path / "keys.db")
    wrapped = bytearray(conn.execute("select wrapped from subject_keys").fetchone()[0])
    wrapped[-1] ^= 1
    conn.execute("update subject_keys set wrapped = ?", [bytes(wrapped)])
    conn.commit()
    fresh = Vault.in_state_dir(tmp_path, vault.keys)  # no unwrapped key cached
    with pytest.raises(Tampered):
        fresh.open("a@example.com", blob, "c")


def test_shred_makes_text_unrecoverable_in_every_process(tmp_path: Path) -> None:
    keys = _keys(mk.generate())
    vault, other = Vault.in_state_dir(tmp_path, keys), Vault.in_state_dir(tmp_path, keys)
    blob = vault.seal("a@example.com", "text", "c")
    assert other.open("a@example.com", blob, "c") == "text"  # other has the key cached now
    assert vault.shred("A@example.com") is True
    assert vault.shred("a@example.com") is False
    for v in (vault, other):
        with pytest.raises(TextErased):
            v.open("a@example.com", blob, "c")
    # a new key for the same person does not open the old text
    vault.seal("a@example.com", "new", "c")
    with pytest.raises(TextErased):
        other.open("a@example.com", blob, "c")


def test_builtin_key_when_nothing_is_configured(tmp_path: Path) -> None:
    settings = Settings.load(state=tmp_path, env={})
    vault = vault_for(settings)
    assert vault.keys.is_builtin and vault.keys.source == "built-in"
    assert (
        vault.open("a@example.com", vault.seal("a@example.com", "works offline", "c"), "c") == "works offline"
    )


def test_key_file_setting_is_used(tmp_path: Path) -> None:
    key_file = tmp_path / "secret" / "master.key"
    mk.write_new_file(key_file, [mk.generate()])
    assert key_file.stat().st_mode & 0o777 == 0o600
    settings = Settings.load(
        state=tmp_path / "state", env={"DEPTBOT_PRIVACY__MASTER_KEY_FILE": str(key_file)}
    )
    vault = vault_for(settings)
    assert vault.keys.source == "file" and not vault.keys.is_builtin
    with pytest.raises(StoreError):
        mk.write_new_file(key_file, [mk.generate()])  # never overwritten


def test_a_bad_key_is_a_config_error_naming_where(tmp_path: Path) -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=mk.ENV_VAR):
        mk.load({mk.ENV_VAR: "not-a-key"}, None)
    with pytest.raises(ConfigError, match="does not exist"):
        mk.load({}, tmp_path / "missing.key")
