"""Privacy requests fail closed (SQLite): the data key is shredded last, an export never
hides a store it could not read, and a CLI erase says when a per-process memory cache is
out of its reach. (The PostgreSQL halves are in tests/store/test_privacy_fail_closed_pg.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StoreError
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults, vault_for
from bot.settings import Settings
from tests.governance.test_privacy_erase import EMAIL, QUESTIONS, _ask, _world


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def test_a_question_recorded_during_an_erase_is_not_left_readable(tmp_path: Path) -> None:
    """A question arriving while the erase runs (here: just after the audit rows were
    pseudonymized, the worst moment) is caught by the erase's second pass over requests
    recorded since it began: its audit row is pseudonymized, its text and cached answer
    deleted, and its key (made or not) shredded. Shredding first let it make a fresh key and
    keep its text; one pass left its row naming the e-mail and its answer in the cache."""
    import sqlite3

    settings, assistant, _, _ = _world(tmp_path, {})
    _ask(assistant, EMAIL, QUESTIONS[0])
    privacy = Privacy.for_settings(settings)
    pseudonymize = privacy.audit.pseudonymize
    late: list[Any] = []

    def meanwhile(person: str) -> int:
        n = pseudonymize(person)
        if not late:  # once (the second pass pseudonymizes again)
            late.append(_ask(assistant, EMAIL, QUESTIONS[1]))  # another request, mid-erase
        return n

    privacy.audit.pseudonymize = meanwhile  # type: ignore[method-assign]
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert late and receipt.key_shredded
    rid = late[0].request_id
    vault = vault_for(settings)
    assert not vault.has_key(EMAIL)  # no key survives to open the late question with
    state = settings.state_dir
    audit = sqlite3.connect(state / "audit.db")
    try:
        assert audit.execute('select "user" from requests where request_id = ?', [rid]).fetchall() == [
            (receipt.pseudonym,)
        ]
        assert audit.execute("select * from request_text where request_id = ?", [rid]).fetchall() == []
    finally:
        audit.close()
    cache = sqlite3.connect(state / "cache.db")
    try:
        assert cache.execute("select key from answers where request_id = ?", [rid]).fetchall() == []
    finally:
        cache.close()
    export = Privacy.for_settings(settings).export(EMAIL, record=False)
    assert export.data["questions"] == [] and export.counts["audit_rows"] == 0


def test_export_fails_when_the_key_store_cannot_be_read(tmp_path: Path) -> None:
    """An outage (the key table does not answer) fails the export with a clear message,
    instead of an export that looks complete with every question marked unreadable."""
    settings, assistant, _, _ = _world(tmp_path, {})
    _ask(assistant, EMAIL, QUESTIONS[0])
    privacy = Privacy.for_settings(settings)

    def down(sid: str) -> Any:
        raise StoreError("Cannot reach the database at postgresql://db/deptbot (DEPTBOT_DATABASE_URL).")

    privacy.vault.table.get = down  # type: ignore[method-assign]
    with pytest.raises(StoreError) as err:
        privacy.export(EMAIL, record=False)
    assert "privacy export was not made" in err.value.user_message
    assert "Cannot reach the database" in err.value.user_message


def test_export_marks_only_a_genuinely_unreadable_row(tmp_path: Path) -> None:
    """A row whose key was shredded (or that fails its integrity check) is the one case
    marked unreadable; the rest of the export is still given."""
    settings, assistant, _, _ = _world(tmp_path, {})
    _ask(assistant, EMAIL, QUESTIONS[0])
    vault_for(settings).shred(EMAIL)  # e.g. an erase interrupted after the shred
    export = Privacy.for_settings(settings).export(EMAIL, record=False)
    assert export.counts["audit_rows"] == 1
    assert export.data["questions"][0]["question"] == {
        "unreadable": "This text was erased (privacy request)."
    }


def _memory_settings(tmp_path: Path) -> Settings:
    (tmp_path / "settings.toml").write_text('[cache]\nbackend = "memory"\nttl_seconds = 7200\n')
    settings, _, _, _ = _world(tmp_path, {})
    return Settings.load(
        departments=settings.departments_dir,
        state=settings.state_dir,
        env={},
        settings_file=tmp_path / "settings.toml",
    )


def test_cli_erase_receipt_names_a_memory_cache_it_cannot_reach(tmp_path: Path) -> None:
    settings = _memory_settings(tmp_path)
    privacy = Privacy.for_settings(settings)
    lines = "\n".join(privacy.erase(EMAIL).lines())
    assert 'backend = "memory"' in lines and "up to 2 hours" in lines and "restart" in lines
    chat = "\n".join(privacy.erase(EMAIL, platform="slack").lines())  # chat empties its own
    assert "memory" not in chat
    privacy.close()


def test_sqlite_cache_receipt_has_no_memory_note(tmp_path: Path) -> None:
    settings, _, _, _ = _world(tmp_path, {})
    privacy = Privacy.for_settings(settings)
    assert "memory" not in "\n".join(privacy.erase(EMAIL).lines())
    privacy.close()
