"""The operations jobs: schedules follow the configuration, refresh + evals never overlap
per department, evals are recorded after every refresh and compared with the run before."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bot.observability import ObservedIndexer
from bot.reload import ConfigWatcher
from bot.store.notices import MemoryNotices
from tests.fakes import make_company
from tests.ops.helpers import EVALS, T0, SlowRefresher, company_with, make_operations, run_of


def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_jobs_follow_the_configuration_and_reloads(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": 'refresh: "0 6 * * 1-5"\n', "finance": "refresh: 30\n"})
    kit = make_operations(company, tmp_path / "state")
    ops = kit.operations.start()
    try:
        jobs = ops.jobs()
        assert "cron[" in jobs["refresh:hr"] and "day_of_week='mon,tue,wed,thu,fri'" in jobs["refresh:hr"]
        assert "interval[0:30:00]" in jobs["refresh:finance"]
        assert "refresh:eng" not in jobs and "ops:alerts" in jobs and "ops:digest" in jobs
        assert ops in kit.observers  # refreshes elsewhere reach it

        class Live:  # what the config watcher reconfigures
            def __init__(self) -> None:
                self.company = company

            def reconfigure(self, new) -> None:  # type: ignore[no-untyped-def]
                self.company = new

        live = Live()
        watcher = ConfigWatcher(
            assistant=live,
            root=tmp_path / "departments",
            notices=MemoryNotices(),
            interval=0,
            on_applied=ops.sync,
        )
        watcher.poll()
        hr = tmp_path / "departments" / "hr.yaml"
        hr.write_text(hr.read_text().replace('refresh: "0 6 * * 1-5"', "refresh: 45"))
        fin = tmp_path / "departments" / "finance.yaml"
        fin.write_text(fin.read_text().replace("refresh: 30\n", ""))
        eng = tmp_path / "departments" / "eng.yaml"
        eng.write_text(eng.read_text() + "refresh: 720\n")
        assert watcher.poll()
        jobs = ops.jobs()
        assert "interval[0:45:00]" in jobs["refresh:hr"]  # rescheduled
        assert "refresh:finance" not in jobs  # removed
        assert "interval[12:00:00]" in jobs["refresh:eng"]  # added
        assert ops.scheduled == {"hr": 45, "eng": 720}
    finally:
        ops.stop()
    assert kit.operations not in kit.observers


def test_a_scheduled_refresh_records_its_evals(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": "refresh: 60\n" + EVALS})
    kit = make_operations(company, tmp_path / "state")
    kit.operations.sync(company)
    assert kit.operations.scheduled_refresh("hr")
    assert kit.refresher.calls == ["hr"] and kit.evaluate.asked == [("hr", "schedule")]
    [run] = kit.runs.recent("hr")
    assert run.trigger == "schedule" and run.time == T0
    assert not kit.operations.scheduled_refresh("hr")  # this occurrence already ran


def test_refresh_and_evals_never_overlap_per_department(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": "refresh: 60\n" + EVALS, "finance": "refresh: 60\n"})
    kit = make_operations(company, tmp_path / "state", refresher=SlowRefresher(0.3))
    results: list[bool] = []

    def go(name: str) -> None:
        results.append(kit.operations.refresh(name, trigger="schedule"))

    threads = [threading.Thread(target=go, args=(n,)) for n in ("hr", "hr", "hr", "finance")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kit.refresher.max_active == {"hr": 1, "finance": 1}
    assert sorted(results) == [False, False, True, True]  # one hr refresh ran; the others were busy
    assert kit.refresher.calls.count("hr") == 1 and kit.refresher.calls.count("finance") == 1


def test_evals_after_a_refresh_elsewhere_wait_for_the_department(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": EVALS})
    kit = make_operations(company, tmp_path / "state")
    ops = kit.operations.start()
    try:
        busy = kit.locks.acquire("dept:hr", 60)  # e.g. a refresh in another process
        assert busy is not None
        # /kb refresh and the knowledge watcher refresh through an ObservedIndexer
        ObservedIndexer(SlowRefresher(), kit.observers).refresh(company.department("hr"))
        time.sleep(0.3)
        assert kit.evaluate.asked == []  # waiting for the department
        kit.locks.release(busy)
        _wait(lambda: len(kit.runs.recent("hr")) == 1)
        assert kit.runs.recent("hr")[0].trigger == "refresh"
        assert kit.evaluate.asked == [("hr", "refresh")]
        # a department without evals: nothing is queued
        ObservedIndexer(SlowRefresher(), kit.observers).refresh(company.department("finance"))
        time.sleep(0.2)
        assert kit.evaluate.asked == [("hr", "refresh")]
    finally:
        ops.stop()


def test_a_queued_duplicate_is_not_run_twice(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": EVALS})
    kit = make_operations(company, tmp_path / "state")
    requested = T0
    assert kit.operations.evals_after_refresh("hr", requested)
    assert not kit.operations.evals_after_refresh("hr", requested)  # a run newer than the refresh exists
    assert len(kit.runs.recent("hr")) == 1


def test_a_regression_after_a_refresh_alerts_the_admins(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": "refresh: 60\n" + EVALS})
    kit = make_operations(company, tmp_path / "state")
    kit.operations.sync(company)
    kit.runs.record(run_of("hr", T0.replace(hour=6), "manual"))
    kit.evaluate.results.append(
        {"fact_hit": 0.5, "passed": False, "below": ("fact hit 50% < 80%",), "failed_cases": ("q1", "q2")}
    )
    assert kit.operations.refresh("hr", trigger="schedule")
    [posted] = kit.delivery.posted
    assert posted.kind == "eval-regression" and posted.department == "hr"
    assert "fact hit 100% → 50%" in posted.text and "now below its thresholds" in posted.text
    assert "Failing cases: 2 of 4" in posted.text and "What to do" in posted.text
    assert "q1" not in posted.text
    restarted = make_operations(company, tmp_path / "state")
    restarted.evaluate.results.append({"fact_hit": 0.2, "passed": False, "below": ("fact hit 20% < 80%",)})
    restarted.runs.record(run_of("hr", T0, "manual"))
    assert restarted.operations.refresh("hr", trigger="refresh")
    assert restarted.delivery.posted == []  # one eval-regression alert per day


def test_a_failed_scheduled_refresh_alerts_once_a_day(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": "refresh: 60\n" + EVALS})
    kit = make_operations(company, tmp_path / "state", refresher=SlowRefresher(fail=True))
    assert not kit.operations.refresh("hr", trigger="schedule")
    assert not kit.operations.refresh("hr", trigger="schedule")
    assert [p.kind for p in kit.delivery.posted] == ["refresh-failed"]
    assert "OSError" in kit.delivery.posted[0].text and "disk gone" not in kit.delivery.posted[0].text
    assert kit.evaluate.asked == []  # no evals of a failed refresh
    restarted = make_operations(company, tmp_path / "state", refresher=SlowRefresher(fail=True))
    assert not restarted.operations.refresh("hr", trigger="schedule")
    assert restarted.delivery.posted == []  # told already today, by the process before


def test_slow_evals_never_hold_up_the_refresh_that_queued_them(tmp_path: Path) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": EVALS})
    kit = make_operations(company, tmp_path / "state")
    kit.evaluate.seconds = 1.0
    ops = kit.operations.start()
    try:
        started = time.monotonic()
        ObservedIndexer(SlowRefresher(), kit.observers).refresh(company.department("hr"))
        assert time.monotonic() - started < 0.5  # the person's /kb refresh is answered at once
        _wait(lambda: len(kit.runs.recent("hr")) == 1)
    finally:
        ops.stop()
