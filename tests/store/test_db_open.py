"""Several processes opening the same new database at once (two replicas, or a CLI command
started beside ``serve``) all get it: switching a new file to WAL can fail at once with
"database is locked", because SQLite does not call the busy handler there."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from bot.store.db import open_db

SCHEMA = "create table if not exists t (a int); create index if not exists t_a on t(a);"
PROCESSES, ROUNDS = 4, 80


def _open(path: str, barrier: Barrier, results: Any) -> None:
    barrier.wait()
    try:
        open_db(Path(path), SCHEMA, "the test database").execute("insert into t values (1)")
        results.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        results.put(type(exc).__name__)


def test_processes_opening_one_new_database_together_all_succeed(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    outcomes: list[str] = []
    for n in range(ROUNDS):
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        path = str(tmp_path / f"round{n}.sqlite3")
        procs = [ctx.Process(target=_open, args=(path, barrier, results)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        outcomes += [results.get(timeout=10) for _ in procs]
    assert outcomes == ["ok"] * (PROCESSES * ROUNDS)
