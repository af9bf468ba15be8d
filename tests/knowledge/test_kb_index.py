"""Index: incremental refresh, crash safety, status, garbage collection."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.types import Classification
from bot.errors import ProviderUnavailable
from bot.knowledge import KnowledgeBase, check_embedder_allowed
from tests.knowledge.conftest import TIME_OFF, CountingEmbedder, scope

LAPTOPS = "# Laptops\n\n## Replacement\n\nLaptops are replaced every four years by IT.\n"
PAYROLL = "# Payroll\n\n## Pay day\n\nSalaries are paid on the 25th of each month.\n"


def docs_of(kb: KnowledgeBase, query: str) -> set[str]:
    return {c.doc_id for c in kb.retrieve(query, scope(), top_k=20)}


def test_first_build_reports_files_and_chunks(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path]
) -> None:
    write("time-off.md", TIME_OFF)
    write("it/laptops.md", LAPTOPS)
    write("broken.pdf", b"%PDF-1.4 garbage")
    seen: list[tuple[int, int, str]] = []
    report = kb.refresh(dept, progress=lambda done, total, name: seen.append((done, total, name)))
    assert (report.added, report.changed, report.removed, report.unchanged) == (2, 0, 0, 0)
    assert [f.reason for f in report.failed] == ["not a valid PDF"]
    assert report.failed[0].path == "knowledge/hr/broken.pdf"
    assert report.chunks == 4 and report.version
    assert report.total_files == 3
    assert seen[-1] == (3, 3, "") and {name for _, _, name in seen[:-1]} == {
        "time-off.md",
        "it/laptops.md",
        "broken.pdf",
    }
    status = kb.status(dept)
    assert status.version == report.version and not status.stale
    assert (status.documents, status.chunks) == (2, 4)
    assert kb.index_version("hr") == report.version


def test_incremental_refresh_reembeds_only_changed_file(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path], counting: CountingEmbedder
) -> None:
    write("time-off.md", TIME_OFF)
    laptops = write("it/laptops.md", LAPTOPS)
    write("payroll.md", PAYROLL)
    first = kb.refresh(dept)
    assert "hr/it/laptops.md" in docs_of(kb, "laptop replacement")

    # unchanged: no new version, nothing embedded
    counting.texts.clear()
    again = kb.refresh(dept)
    assert (again.unchanged, again.version, counting.texts) == (3, first.version, [])

    # touched but same content: still unchanged (content hash decides)
    os.utime(laptops, ns=(laptops.stat().st_atime_ns, laptops.stat().st_mtime_ns + 5_000_000_000))
    touched = kb.refresh(dept)
    assert (touched.unchanged, touched.changed, counting.texts) == (3, 0, [])

    laptops.write_text(LAPTOPS.replace("four", "three"), encoding="utf-8")
    assert kb.status(dept).stale
    changed = kb.refresh(dept)
    assert (changed.added, changed.changed, changed.removed, changed.unchanged) == (0, 1, 0, 2)
    assert len(counting.texts) == 1 and "three years" in counting.texts[0]
    assert not kb.status(dept).stale
    top = kb.retrieve("how often are laptops replaced", scope(), top_k=1)[0]
    assert "three years" in top.text and top.doc_id == "hr/it/laptops.md"

    counting.texts.clear()
    laptops.unlink()
    removed = kb.refresh(dept)
    assert (removed.removed, removed.unchanged, counting.texts) == (1, 2, [])
    assert "hr/it/laptops.md" not in docs_of(kb, "laptop replacement")
    assert removed.chunks == changed.chunks - 1


def test_crash_mid_build_keeps_previous_version(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path], tmp_path: Path
) -> None:
    write("time-off.md", TIME_OFF)
    good = kb.refresh(dept)
    write("payroll.md", PAYROLL)
    write("it/laptops.md", LAPTOPS)

    def explode(done: int, total: int, name: str) -> None:
        if done == 1:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        kb.refresh(dept, progress=explode)
    assert kb.index_version("hr") == good.version
    assert "hr/time-off.md" in docs_of(kb, "annual vacation days")

    def crash() -> None:
        raise KeyboardInterrupt

    kb.indexer.before_switch = crash  # version written and fsynced, pointer not switched
    with pytest.raises(KeyboardInterrupt):
        kb.refresh(dept)
    assert kb.index_version("hr") == good.version
    assert docs_of(kb, "salaries paid") <= {"hr/time-off.md"}

    kb.indexer.before_switch = None
    recovered = kb.refresh(dept)
    assert recovered.added == 2 and kb.index_version("hr") == recovered.version
    versions = tmp_path / "state" / "indexes" / "hr" / "versions"
    assert sorted(p.name for p in versions.iterdir()) == sorted([good.version, recovered.version])


def test_old_versions_are_collected(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path], tmp_path: Path
) -> None:
    path = write("payroll.md", PAYROLL)
    made = []
    for day in ("25th", "26th", "27th"):
        path.write_text(PAYROLL.replace("25th", day), encoding="utf-8")
        made.append(kb.refresh(dept).version)
    versions = tmp_path / "state" / "indexes" / "hr" / "versions"
    assert sorted(p.name for p in versions.iterdir()) == sorted(made[1:])


def test_concurrent_refreshes_do_not_interleave(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path]
) -> None:
    write("time-off.md", TIME_OFF)
    write("payroll.md", PAYROLL)
    reports = []
    # the index's own lock, beneath KnowledgeBase.refresh's "already refreshing" rule
    # (tests/ops/test_refresh_exclusive.py): two Indexer refreshes queue, never interleave
    threads = [threading.Thread(target=lambda: reports.append(kb.indexer.refresh(dept))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted((r.added, r.unchanged) for r in reports) == [(0, 2), (2, 0)]
    assert reports[0].version == reports[1].version


def test_access_file_change_reindexes_documents_below(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path]
) -> None:
    write("pay/payroll.md", PAYROLL)
    kb.refresh(dept)
    assert "hr/pay/payroll.md" in docs_of(kb, "salaries paid")
    write("pay/_access.yaml", "audience: ['group:payroll']\n")
    assert kb.status(dept).stale
    report = kb.refresh(dept)
    assert report.changed == 1
    assert "hr/pay/payroll.md" not in docs_of(kb, "salaries paid")


class CloudEmbedder:
    name = "cloud"
    dim = 4
    is_cloud = True


def test_cloud_embedders_only_for_public_or_internal() -> None:
    check_embedder_allowed(CloudEmbedder(), Classification.INTERNAL)  # type: ignore[arg-type]
    with pytest.raises(ProviderUnavailable):
        check_embedder_allowed(CloudEmbedder(), Classification.CONFIDENTIAL)  # type: ignore[arg-type]
    check_embedder_allowed("wordllama", Classification.RESTRICTED)
