"""The knowledge watcher: changes on disk reach the index in the background, a burst is one
refresh, and requests in a watched process never scan folders."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Company, Department
from bot.core.pipeline import Assistant
from bot.core.ports import IndexStatus
from bot.core.types import Message
from bot.knowledge import KnowledgeBase
from bot.knowledge.watcher import FolderTree, KnowledgeWatcher, events_available
from bot.llm.extractive import ExtractiveGenerator
from tests.fakes import FakeIndexer, MemoryAudit, make_company

MODES = [
    "poll",
    pytest.param("events", marks=pytest.mark.skipif(not events_available(), reason="no watchfiles")),
]


class CountingIndexer(FakeIndexer):
    """Stale exactly when a file changed since the last refresh (a signature of the folder)."""

    def __init__(self) -> None:
        super().__init__()
        self.status_calls = 0
        self.built: dict[str, object] = {}
        self.lock = threading.Lock()

    @staticmethod
    def _sig(dept: Department) -> object:
        return sorted(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in dept.knowledge.rglob("*") if p.is_file()
        )

    def status(self, department: Department) -> IndexStatus:
        with self.lock:
            self.status_calls += 1
        stale = self.built.get(department.name) != self._sig(department)
        return IndexStatus(department=department.name, version="v1", stale=stale)

    def refresh(self, department: Department, **kw: object):  # type: ignore[no-untyped-def]
        self.built[department.name] = self._sig(department)
        return super().refresh(department, **kw)  # type: ignore[arg-type]


def wait_for(check: Callable[[], bool], seconds: float = 8.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "not within the time limit"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def company(tmp_path: Path) -> Company:
    return make_company(tmp_path)


def watcher(indexer: object, company: Company, mode: str, **kw: object) -> KnowledgeWatcher:
    options: dict[str, object] = {"poll_seconds": 0.1, "debounce_seconds": 0.3, **kw}
    return KnowledgeWatcher(
        indexer=indexer,  # type: ignore[arg-type]
        departments=lambda: list(company),
        mode=mode,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_file_changed_while_the_watcher_runs_is_refreshed_within_seconds(
    company: Company, mode: str
) -> None:
    indexer = CountingIndexer()
    for dept in company:
        indexer.refresh(dept)
    indexer.refreshed.clear()
    w = watcher(indexer, company, mode).start()
    try:
        assert w.running_mode == mode
        time.sleep(0.5)
        assert indexer.refreshed == [] and indexer.status_calls == 0  # nothing changed: no scans
        path = company.departments["hr"].knowledge / "time-off.md"
        path.write_text(path.read_text() + "\nEdited in place.\n")  # same directory mtime
        took = wait_for(lambda: indexer.refreshed == ["hr"])
        assert took < 5
        assert w.refreshes == ["hr"]
    finally:
        w.stop()


@pytest.mark.parametrize("mode", MODES)
def test_a_burst_of_changes_is_one_refresh(company: Company, mode: str) -> None:
    indexer = CountingIndexer()
    w = watcher(indexer, company, mode, debounce_seconds=0.6).start()
    try:
        time.sleep(0.3)
        folder = company.departments["finance"].knowledge
        for i in range(30):
            (folder / f"note-{i}.md").write_text(f"# Note {i}\n\nBody {i}.\n")
            time.sleep(0.01)
        wait_for(lambda: indexer.refreshed == ["finance"])
        time.sleep(1.0)  # nothing more comes
        assert indexer.refreshed == ["finance"] and w.idle
    finally:
        w.stop()


def test_poll_stats_directories_and_a_budget_of_files(tmp_path: Path) -> None:
    root = tmp_path / "k"
    (root / "sub").mkdir(parents=True)
    files = [root / "sub" / f"f{i}.md" for i in range(10)]
    for f in files:
        f.write_text("x")
    tree = FolderTree(root)
    assert tree.files == 10
    assert tree.tick(budget=0) == (False, 0)
    (root / "sub" / "new.md").write_text("y")  # a new file: its directory's mtime changes
    assert tree.tick(budget=0)[0] is True and tree.files == 11
    past = time.time() - 100
    os.utime(files[7], (past, past))  # an in-place change: only the file's own stat shows it
    seen = [tree.tick(budget=3)[0] for _ in range(4)]  # 11 files, 3 a tick: all within 4 ticks
    assert seen.count(True) == 1
    import shutil

    shutil.rmtree(root / "sub")
    assert tree.tick(budget=3)[0] is True and tree.files == 0


def test_a_watched_assistant_never_scans_on_requests(company: Company) -> None:
    indexer = CountingIndexer()

    class Retriever:
        def __init__(self) -> None:
            from tests.fakes import FakeRetriever, chunks_from_folder

            self.inner = FakeRetriever([c for d in company for c in chunks_from_folder(d)])
            self.inner.version = None  # type: ignore[assignment]  # no index yet

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    retriever = Retriever()
    a = Assistant(
        company=company,
        retriever=retriever,  # type: ignore[arg-type]
        indexer=indexer,
        generator=ExtractiveGenerator(),
        audit=MemoryAudit(),
        check_staleness=False,
    )
    message = Message(
        user_id="alice@example.com", email="alice@example.com", text="vacation days", department="hr"
    )
    a.ask(message)  # a missing index is built on first use, without a staleness scan
    assert indexer.refreshed == ["hr"] and indexer.status_calls == 0
    retriever.inner.version = "v1"  # type: ignore[assignment]
    for _ in range(3):
        a.ask(message)
    a.ask(
        Message(user_id="alice@example.com", email="alice@example.com", text="vacation days")
    )  # auto-routed
    assert indexer.refreshed == ["hr"] and indexer.status_calls == 0


def test_removing_an_audience_applied_by_the_watcher_is_visible_to_the_next_request(
    tmp_path: Path, company: Company
) -> None:
    kb = KnowledgeBase(state_dir=tmp_path / "state")
    for dept in company:
        kb.refresh(dept)
    a = Assistant(
        company=company,
        retriever=kb,
        indexer=kb,
        generator=ExtractiveGenerator(),
        audit=MemoryAudit(),
        check_staleness=False,
    )
    question = Message(
        user_id="alice@example.com",
        email="alice@example.com",
        text="How are workplace investigations handled?",
        department="hr",
    )
    before = a.ask(question)  # alice is not an hr-admin
    assert "Investigations process" not in {c.title for c in before.citations}
    assert "14 days" not in before.text
    w = watcher(kb, company, "poll").start()
    try:
        doc = company.departments["hr"].knowledge / "investigations.md"
        doc.write_text(doc.read_text().replace('audience: ["group:hr-admins"]\n', ""))
        wait_for(lambda: w.refreshes == ["hr"])
    finally:
        w.stop()
    answer = a.ask(question)
    assert "14 days" in answer.text
    assert "Investigations process" in {c.title for c in answer.citations}


def test_a_reconfigured_department_is_checked_and_a_failure_is_told(tmp_path: Path, company: Company) -> None:
    current = list(company)

    class Notices:
        def __init__(self) -> None:
            self.items: list[tuple[str | None, str, str]] = []

        def notify(self, department: str | None, kind: str, text: str) -> bool:
            self.items.append((department, kind, text))
            return True

    class Failing(CountingIndexer):
        def status(self, department: Department) -> IndexStatus:
            if department.name == "legal":
                raise RuntimeError("disk on fire")
            return super().status(department)

    indexer, notices = Failing(), Notices()
    for dept in current:
        indexer.refresh(dept)
    indexer.refreshed.clear()
    w = KnowledgeWatcher(
        indexer=indexer,
        departments=lambda: list(current),
        notices=notices,
        mode="poll",
        poll_seconds=0.1,
        debounce_seconds=0.2,
    ).start()
    try:
        moved = tmp_path / "knowledge" / "hr2"
        moved.mkdir()
        (moved / "a.md").write_text("# A\n\nText.\n")
        hr = company.departments["hr"]
        current[current.index(hr)] = hr.model_copy(update={"knowledge": moved})
        current.append(hr.model_copy(update={"name": "legal"}))
        wait_for(lambda: indexer.refreshed == ["hr"] and any(n[1] == "refresh-failed" for n in notices.items))
    finally:
        w.stop()
