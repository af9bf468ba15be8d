"""A WAL truncation that another reader blocks gives up in seconds, not minutes.

``vault.checkpoint`` retries a busy ``wal_checkpoint(TRUNCATE)``; each try used to wait out
the connection's whole busy timeout (30 s from ``bot.store.db.connect``), so an erase that
met a copy someone had open in a sqlite3 shell held its thread ~10 minutes per file before
saying "in use". Each try now waits briefly, and the connection's own timeout is restored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.governance.vault import checkpoint
from bot.store.db import connect


@pytest.mark.timeout(20)
def test_a_blocked_checkpoint_gives_up_quickly_and_restores_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("INSERT INTO t VALUES ('row')")
    conn.commit()
    reader = sqlite3.connect(str(path), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # holds a snapshot: TRUNCATE must wait for it
    conn.execute("INSERT INTO t VALUES ('another')")
    conn.commit()
    (before,) = conn.execute("PRAGMA busy_timeout").fetchone()
    try:
        assert checkpoint(conn, tries=3) is False
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (before,)
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert checkpoint(conn) is True
    conn.close()
