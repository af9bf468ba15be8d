"""``deptbot db copy`` of a version-1 Teams state file (text kept in plain, before sealing):
the file is opened first so its own migration seals the text, and PostgreSQL only ever
gets sealed bytes; a plain value in a sealed column is refused rather than copied."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.governance.chain import AuditKey
from bot.governance.vault import forget_open_vaults
from bot.store.backend import Database
from bot.store.pg_copy import _value, copy_state
from tests.pg_fixtures import checked_url

CANARY = "my salary is zebrafinch"
V1 = """
CREATE TABLE teams_history (key TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, text BLOB NOT NULL,
  label INTEGER, at REAL NOT NULL, PRIMARY KEY (key, seq));
CREATE TABLE teams_replies (message_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, payload TEXT,
  at REAL NOT NULL);
CREATE TABLE teams_references (key TEXT PRIMARY KEY, reference TEXT NOT NULL, at REAL NOT NULL);
"""


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def test_plain_teams_text_is_sealed_before_it_is_copied(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    state = tmp_path / "state"
    state.mkdir()
    c = sqlite3.connect(state / "teams-state.sqlite3")
    c.executescript(V1)
    c.execute(
        "insert into teams_history values (?, 1, 'user', ?, null, ?)",
        ['["c","29:alice"]', CANARY, time.time()],
    )
    c.commit()
    c.close()
    db = Database(checked_url(pg_url))
    try:
        rep = copy_state(state, db, key=AuditKey(b"k" * 32, "environment"))
        assert rep.rows["teams_history"] == 1 and rep.rows["subject_keys"] == 1  # its key came along
        with db.tx() as t:
            (text,) = t.execute("select text from teams_history").fetchone()
    finally:
        db.close()
    assert CANARY.encode() not in bytes(text)


def test_a_plain_value_in_a_sealed_column_is_refused() -> None:
    with pytest.raises(StoreError, match="never sealed"):
        _value("teams_history", "text", CANARY)
    assert _value("feedback", "reason", "") == b""  # the empty comment, as before
