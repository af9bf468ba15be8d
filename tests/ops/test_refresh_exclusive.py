"""One no-overlap rule for every refresh of a department, wherever it starts: the admin
console and ``/kb refresh`` (``Assistant.refresh``), the knowledge watcher
(``refresh_if_stale``), ``deptbot index`` and the schedule (``Operations.refresh``) all go
through ``KnowledgeBase.refresh``, which holds the department's lease (``bot.ops.locks``)
around the index's own lock. A refresh already running → the second is told "already
refreshing" (``RefreshBusy``) instead of running twice after it; the schedule's own lease
is re-entrant on its thread, and nothing waits for the lease while holding the index lock,
so the two locks cannot deadlock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Company, Department
from bot.core.pipeline import Assistant
from bot.errors import RefreshBusy
from bot.knowledge import KnowledgeBase
from bot.knowledge.refresher import refresh_if_stale
from bot.observability import ObservedIndexer
from bot.store.notices import MemoryNotices
from tests.fakes import MemoryAudit, make_company
from tests.ops.helpers import EVALS, Clock, company_with, make_operations

ADMIN = "hank@example.com"  # administers hr in the fakes' company


class Gate:
    """A progress callback that holds the refresh it is given to until ``release``."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, done: int, total: int, current: str) -> None:
        self.started.set()
        assert self.release.wait(20)


@pytest.fixture
def company(tmp_path: Path) -> Company:
    make_company(tmp_path)
    return company_with(tmp_path, {"hr": EVALS})


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    yield KnowledgeBase(state_dir=tmp_path / "state")


def _running(kb: KnowledgeBase, dept: Department) -> tuple[threading.Thread, Gate, list[Any]]:
    gate, out = Gate(), []
    first = threading.Thread(target=lambda: out.append(kb.refresh(dept, progress=gate)), daemon=True)
    first.start()
    assert gate.started.wait(20)
    return first, gate, out


def test_every_path_is_told_already_refreshing_while_one_runs(
    tmp_path: Path, company: Company, kb: KnowledgeBase
) -> None:
    hr = company.department("hr")
    first, gate, out = _running(kb, hr)
    audit = MemoryAudit()
    assistant = Assistant(company=company, retriever=kb, indexer=kb, generator=None, audit=audit)  # type: ignore[arg-type]
    notices = MemoryNotices()
    kit = make_operations(company, tmp_path / "state", clock=Clock(datetime.now(UTC)), refresher=kb)  # type: ignore[arg-type]
    try:
        with pytest.raises(RefreshBusy) as direct:  # deptbot index, the start-up refresh
            kb.refresh(hr)
        assert "already refreshing" in direct.value.user_message and hr.title in direct.value.user_message
        with pytest.raises(RefreshBusy):  # /kb refresh in Slack or Teams, and the admin console
            assistant.refresh("hr", user=ADMIN)
        assert refresh_if_stale(ObservedIndexer(kb, []), hr, notices) is False  # the watcher
        assert notices.items == []  # busy is not a failure: no "refresh failed" notice
        assert kit.operations.refresh("hr", trigger="schedule") is False  # the schedule skips
        kb.refresh(company.department("finance"))  # other departments are not held up
    finally:
        gate.release.set()
        first.join(20)
    assert not first.is_alive() and len(out) == 1 and out[0].added >= 1
    # once it finished, the next refresh runs (nothing left stuck)
    assert assistant.refresh("hr", user=ADMIN).department == "hr"
    assert [e.status for e in audit.entries] == ["refresh", "refresh"]


def test_a_busy_refresh_is_not_counted_as_one_that_ran(company: Company, kb: KnowledgeBase) -> None:
    hr = company.department("hr")
    first, gate, _ = _running(kb, hr)
    heard: list[tuple[str, bool]] = []

    class Listener:
        def answered(self, *a: object) -> None: ...
        def feedback(self, *a: object) -> None: ...
        def refreshed(self, department: str, seconds: float, ok: bool) -> None:
            heard.append((department, ok))

    try:
        with pytest.raises(RefreshBusy):
            ObservedIndexer(kb, [Listener()]).refresh(hr)  # type: ignore[list-item]
    finally:
        gate.release.set()
        first.join(20)
    assert heard == []  # no "refresh failed" alert, no evals queued, /metrics unchanged


def test_the_schedule_refreshes_through_the_same_rule_without_refusing_itself(
    tmp_path: Path, company: Company, kb: KnowledgeBase
) -> None:
    kit = make_operations(company, tmp_path / "state", clock=Clock(datetime.now(UTC)), refresher=kb)  # type: ignore[arg-type]
    assert kit.operations.refresh("hr", trigger="schedule") is True  # its lease is re-entrant
    assert kit.evaluate.asked == [("hr", "schedule")]
    assert kit.locks.holder("dept:hr") is None  # released afterwards


def test_threads_from_every_path_never_overlap_or_deadlock(
    tmp_path: Path, company: Company, kb: KnowledgeBase
) -> None:
    """Console, chat, watcher and schedule at once, many times: at most one refresh of hr
    runs at any moment, every thread finishes (no deadlock between the lease and the index
    lock), and each call either refreshed or was told the department was busy."""
    hr = company.department("hr")
    kb.refresh(hr)  # built once; later refreshes are quick and incremental
    kit = make_operations(company, tmp_path / "state", clock=Clock(datetime.now(UTC)), refresher=kb)  # type: ignore[arg-type]
    assistant = Assistant(company=company, retriever=kb, indexer=kb, generator=None, audit=MemoryAudit())  # type: ignore[arg-type]
    inner = kb.indexer.refresh
    active, most, lock = [0], [0], threading.Lock()

    def counted(dept: Department, **kw: Any) -> Any:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.02)
            return inner(dept, **kw)
        finally:
            with lock:
                active[0] -= 1

    kb.indexer.refresh = counted  # type: ignore[method-assign]
    outcomes: list[str] = []

    def console() -> str:
        try:
            assistant.refresh("hr", user=ADMIN)
            return "ran"
        except RefreshBusy:
            return "busy"

    def schedule() -> str:
        return "ran" if kit.operations.refresh("hr", trigger="schedule") else "busy"

    def watcher() -> str:
        (hr.knowledge / "touch.md").write_text(f"# Touched\n\n{time.time()}\n")
        return "ran" if refresh_if_stale(kb, hr) else "busy-or-fresh"

    def evals() -> str:
        return "ran" if kit.operations.evals_after_refresh("hr", datetime.now(UTC)) else "skipped"

    def worker(fn: Any) -> None:
        for _ in range(6):
            result = fn()
            with lock:
                outcomes.append(result)

    paths = (console, schedule, watcher, evals)
    threads = [threading.Thread(target=worker, args=(f,), daemon=True) for f in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a refresh path deadlocked"
    assert most[0] == 1
    assert len(outcomes) == 24 and "ran" in outcomes
    assert kit.locks.holder("dept:hr") is None


def test_deptbot_index_skips_a_department_refreshing_elsewhere(
    tmp_path: Path, company: Company, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.ops.locks import LeaseLocks

    state = tmp_path / "state"
    elsewhere = LeaseLocks.in_state_dir(state)  # e.g. the server's scheduled refresh of hr
    lease = elsewhere.acquire("dept:hr", 60)
    assert lease is not None
    try:
        code = main(["--departments", str(tmp_path / "departments"), "--state", str(state), "index"])
    finally:
        elsewhere.release(lease)
    out, err = capsys.readouterr()
    assert code == 1 and "already refreshing" in err
    assert "finance" in out.lower()  # the other departments were indexed
    assert KnowledgeBase(state_dir=state).index_version("hr") is None


def test_a_question_during_a_refresh_is_answered_from_the_current_index(
    tmp_path: Path, company: Company, kb: KnowledgeBase
) -> None:
    """A one-shot ``deptbot ask`` checks staleness first; while a refresh runs elsewhere it
    answers from the served index instead of failing (only a missing index has to wait)."""
    from bot.core.types import Message, Status
    from bot.llm.extractive import ExtractiveGenerator

    hr = company.department("hr")
    kb.refresh(hr)
    (hr.knowledge / "new.md").write_text("# New\n\nA new policy.\n")  # now stale
    first, gate, _ = _running(kb, hr)
    try:
        assistant = Assistant(
            company=company, retriever=kb, indexer=kb, generator=ExtractiveGenerator(), audit=MemoryAudit()
        )
        question = "How many vacation days?"
        answer = assistant.ask(
            Message(user_id=ADMIN, email=ADMIN, text=question, platform="cli", department="hr")
        )
        assert answer.status is not Status.ERROR
    finally:
        gate.release.set()
        first.join(20)
