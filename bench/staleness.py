"""Staleness off the request path: request latency on a 1,000-file department, before/after.

    python -m bench.staleness [--files 1000] [--queries 60]

Before: a request that pays the staleness check (``indexer.status`` walks every file) —
what one request per department per minute paid. After: a request in ``deptbot serve``
(``check_staleness=False``: the knowledge watcher owns staleness). Also prints what the
watcher costs instead: one poll tick (directory stats + file budget) and how long an edit
takes to reach the index through the poll fallback and through filesystem events.
Writes only to a temp folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

from bot.config import load_company
from bot.core.pipeline import Assistant
from bot.core.types import Message
from bot.knowledge import KnowledgeBase
from bot.knowledge.watcher import FolderTree, KnowledgeWatcher, events_available
from bot.llm.extractive import ExtractiveGenerator
from tests.fakes import MemoryAudit

TOPICS = ["vacation", "expenses", "laptops", "travel", "payroll", "security", "parking", "training"]


def _write(folder: Path, files: int) -> None:
    for i in range(files):
        topic = TOPICS[i % len(TOPICS)]
        sub = folder / f"area-{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc-{i:04d}.md").write_text(
            f"# {topic.title()} note {i}\n\n## Rules\n\nThe {topic} rule number {i} says employees "
            f"should follow procedure {i * 7} and ask the {topic} desk for help within {i % 30} days.\n"
        )


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deptbot-bench-") as tmp:
        root = Path(tmp)
        folder = root / "knowledge" / "hr"
        _write(folder, args.files)
        deps = root / "departments"
        deps.mkdir()
        (deps / "hr.yaml").write_text(
            textwrap.dedent("""\
            title: HR
            knowledge: ../knowledge/hr
            ask: ["*@example.com"]
            admins: ["admin@example.com"]
            """)
        )
        company = load_company(deps)
        dept = company.department("hr")
        kb = KnowledgeBase(state_dir=root / "state")
        kb.refresh(dept)
        message = Message(
            user_id="a@example.com", email="a@example.com", text="vacation rules", department="hr"
        )

        def assistant(check: bool) -> Assistant:
            return Assistant(
                company=company,
                retriever=kb,
                indexer=kb,
                generator=ExtractiveGenerator(),
                audit=MemoryAudit(),
                check_staleness=check,
            )

        watched = assistant(False)
        watched.ask(message)  # warm up
        before, after = [], []
        for _ in range(args.queries):
            fresh = assistant(True)  # its first request checks staleness: today's once-a-minute request
            t0 = time.perf_counter()
            fresh.ask(message)
            before.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            watched.ask(message)
            after.append(time.perf_counter() - t0)

        tree = FolderTree(folder)
        ticks = []
        for _ in range(20):
            t0 = time.perf_counter()
            tree.tick(budget=2000)
            ticks.append(time.perf_counter() - t0)

        pickup: dict[str, float] = {}
        for mode in ["poll", "events"] if events_available() else ["poll"]:
            w = KnowledgeWatcher(
                indexer=kb, departments=lambda: list(company), mode=mode, poll_seconds=5, debounce_seconds=2
            ).start()
            time.sleep(0.5)
            target = folder / "area-03" / "doc-0003.md"
            target.write_text(target.read_text() + f"\nEdited ({mode}).\n")
            t0 = time.perf_counter()
            while not w.refreshes and time.perf_counter() - t0 < 30:
                time.sleep(0.02)
            pickup[mode] = time.perf_counter() - t0
            w.stop()

    print(f"department: {args.files} files; {args.queries} requests each; median latency")
    print(f"{'request':<52}{'median ms':>12}{'p95 ms':>10}")
    for name, samples in [
        ("before: request paying the staleness scan", before),
        ("after: watched request (serve; no folder stat)", after),
    ]:
        p95 = sorted(samples)[int(0.95 * (len(samples) - 1))] * 1000
        print(f"{name:<52}{_median_ms(samples):>12.1f}{p95:>10.1f}")
    print(f"{'watcher poll tick (dirs + 2000-file budget)':<52}{_median_ms(ticks):>12.1f}")
    for mode, seconds in pickup.items():
        print(f"{'edit → refreshed, ' + mode + ' (poll 5 s, debounce 2 s)':<52}{seconds * 1000:>12.0f}")


if __name__ == "__main__":
    main()
