"""Lease locks in the state folder: one holder at a time, renewal, release, expiry of a
crashed holder's lease, and — with real processes — a scheduled job that runs once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from bot.ops.locks import LeaseLocks
from tests.fakes import make_company
from tests.ops.helpers import EVALS, Clock, company_with, make_operations

ROOT = Path(__file__).resolve().parents[2]


def test_one_holder_at_a_time_then_release(tmp_path: Path) -> None:
    clock = Clock()
    a = LeaseLocks.in_state_dir(tmp_path, clock=clock.time)
    b = LeaseLocks.in_state_dir(tmp_path, clock=clock.time)  # another process's connection
    lease = a.acquire("dept:hr", 60)
    assert lease is not None
    assert b.acquire("dept:hr", 60) is None
    assert a.acquire("dept:hr", 60) is None  # not re-entrant: another thread of one process waits too
    assert b.holder("dept:hr") == lease.holder
    assert b.acquire("dept:finance", 60) is not None  # names are independent
    a.release(lease)
    assert b.acquire("dept:hr", 60) is not None


def test_a_crashed_holders_lease_lapses_and_renewal_keeps_it(tmp_path: Path) -> None:
    clock = Clock()
    a = LeaseLocks.in_state_dir(tmp_path, clock=clock.time)
    b = LeaseLocks.in_state_dir(tmp_path, clock=clock.time)
    lease = a.acquire("job", 60)
    assert lease is not None
    clock.advance(seconds=50)
    renewed = a.renew(lease, 60)  # a live holder renews before expiry
    assert renewed is not None
    clock.advance(seconds=50)
    assert b.acquire("job", 60) is None  # 100 s after taking it, still held thanks to renewal
    clock.advance(seconds=11)  # the holder "crashed": no renewal for 61 s
    taken = b.acquire("job", 60)
    assert taken is not None and taken.holder != lease.holder
    assert a.renew(renewed, 60) is None  # the old holder learns it lost the lease
    a.release(renewed)  # releasing a lost lease does not free the new holder's
    assert a.holder("job") == taken.holder


def test_held_renews_while_the_block_runs(tmp_path: Path) -> None:
    locks = LeaseLocks.in_state_dir(tmp_path)
    other = LeaseLocks.in_state_dir(tmp_path)
    with locks.held("slow", 0.3) as lease:  # renewed every 0.1 s
        assert lease is not None
        time.sleep(0.5)  # longer than the lease itself
        assert other.acquire("slow", 0.3) is None
    assert other.acquire("slow", 0.3) is not None  # released at the end


def test_held_yields_none_when_busy_and_can_wait(tmp_path: Path) -> None:
    locks = LeaseLocks.in_state_dir(tmp_path)
    first = locks.acquire("dept:hr", 60)
    assert first is not None
    with locks.held("dept:hr", 60) as lease:
        assert lease is None
    threading.Timer(0.2, locks.release, args=[first]).start()
    with locks.held("dept:hr", 60, wait=5, poll=0.05) as lease:
        assert lease is not None


def test_claim_slot_once_per_window(tmp_path: Path) -> None:
    clock = Clock()
    a = LeaseLocks.in_state_dir(tmp_path, clock=clock.time)
    b = LeaseLocks.in_state_dir(tmp_path, clock=clock.time)
    assert a.claim_slot("refresh:hr", 3600)
    clock.advance(seconds=90)  # the other process fires a little later
    assert not b.claim_slot("refresh:hr", 3600)
    assert b.claim_slot("refresh:finance", 3600)
    clock.advance(hours=1)
    assert b.claim_slot("refresh:hr", 3600)


RACER = """
import sys, time
from pathlib import Path
from bot.config import load_company
from tests.ops.helpers import SlowRefresher, make_operations

root, go = Path(sys.argv[1]), Path(sys.argv[2])
company = load_company(root / "departments")
kit = make_operations(company, root / "state", refresher=SlowRefresher(0.3, log_file=root / "ran.log"))
kit.operations.sync(company)
while not go.exists():
    time.sleep(0.01)
print("ran" if kit.operations.scheduled_refresh("hr") else "skipped", flush=True)
"""


def test_two_processes_race_for_one_scheduled_refresh_and_it_runs_once(tmp_path: Path) -> None:
    make_company(tmp_path)
    company_with(tmp_path, {"hr": "refresh: 60\n" + EVALS})
    script = tmp_path / "racer.py"
    script.write_text(textwrap.dedent(RACER))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.05)
    deadline = time.monotonic() + 60
    ready = False
    while not ready and time.monotonic() < deadline:  # both imported and waiting (ops.sqlite3 made)
        ready = (tmp_path / "state" / "ops.sqlite3").exists()
        time.sleep(0.05)
    time.sleep(1.0)
    go.write_text("go")
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    said = sorted(o.strip() for o, _ in outs)
    assert said == ["ran", "skipped"]
    assert (tmp_path / "ran.log").read_text().splitlines() == ["refresh hr"]
    kit = make_operations(company_with(tmp_path, {}), tmp_path / "state")
    [run] = kit.runs.recent("hr")  # the evals after it were recorded once, too
    assert run.trigger == "schedule"
