"""A bad file fails alone, and a failed refresh still narrows (issue 8, class 5).

Revoking access is a knowledge change like any other; it must reach the served index
even when another file breaks the parser or the refresh as a whole fails.
"""

from __future__ import annotations

import contextlib
import io
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase, ingest
from bot.knowledge.refresher import refresh_stale
from tests.knowledge.conftest import CountingEmbedder, scope
from tests.knowledge.test_kb_ingest import make_docx

SECRET = "# Cases\n\n## Handling\n\nInvestigation case files are kept for seven years.\n"
RESTRICT = '---\naudience: ["group:hr-admins"]\n---\n'


def outsider_docs(kb: KnowledgeBase, query: str) -> set[str]:
    return {c.doc_id for c in kb.retrieve(query, scope(), top_k=20)}


def corrupt_docx() -> bytes:
    """A Word file whose compressed body makes zlib raise (not a BadZipFile)."""
    data = bytearray(make_docx())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("word/document.xml")
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start + 5, start + 40):
        data[i] ^= 0xFF
    return bytes(data)


def test_a_file_that_crashes_the_parser_fails_alone(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path]
) -> None:
    write("cases.md", SECRET)
    write("open.md", "# Open\n\nFor everyone.\n")
    kb.refresh(dept)
    assert "hr/cases.md" in outsider_docs(kb, "investigation case files kept")
    write("cases.md", RESTRICT + SECRET)  # access revoked ...
    write("expenses.docx", corrupt_docx())  # ... in the same refresh as a file that crashes
    report = kb.refresh(dept)
    assert "hr/cases.md" not in outsider_docs(kb, "investigation case files kept")
    failed = {f.path: f.reason for f in report.failed}
    assert failed["knowledge/hr/expenses.docx"].startswith(("could not be parsed (", "not a valid Word"))
    assert report.changed == 1


class BreakableEmbedder(CountingEmbedder):
    broken = False

    def embed(self, texts: list[str]) -> np.ndarray:
        if self.broken:
            raise RuntimeError("embedding service down")
        return super().embed(texts)


def test_a_failed_refresh_still_drops_changed_and_removed_files(
    tmp_path: Path, dept: Department, write: Callable[..., Path], counting: CountingEmbedder
) -> None:
    embedder = BreakableEmbedder(counting.inner)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=embedder)
    reader = KnowledgeBase(state_dir=tmp_path / "state", embedder=counting.inner)  # queries still embed
    write("cases.md", SECRET)
    gone = write("old-cases.md", SECRET.replace("seven", "ten"))
    write("open.md", "# Open\n\n## Hours\n\nThe office opens at nine.\n")
    kb.refresh(dept)
    assert {"hr/cases.md", "hr/old-cases.md"} <= outsider_docs(kb, "investigation case files kept")
    write("cases.md", RESTRICT + SECRET)
    gone.unlink()
    embedder.broken = True
    with pytest.raises(RuntimeError):
        kb.refresh(dept)
    found = outsider_docs(reader, "investigation case files kept years")
    assert "hr/cases.md" not in found and "hr/old-cases.md" not in found
    assert "hr/open.md" in outsider_docs(reader, "when does the office open")
    assert kb.status(dept).stale
    embedder.broken = False
    kb.refresh(dept)
    admin = AccessScope(department="hr", keys=frozenset({"*", "group:hr-admins"}))
    assert "hr/cases.md" in {c.doc_id for c in kb.retrieve("investigation case files", admin, top_k=20)}


def test_one_long_line_without_sentence_breaks_does_not_hang(
    dept: Department, write: Callable[..., Path]
) -> None:
    write("blob.txt", "x" * 1_000_000)
    write("liquid.md", "# Liquid\n\n" + "{%" * 50_000 + "\n\nSome text.\n")
    (blob, liquid) = sorted(ingest.scan(dept), key=lambda s: s.rel)
    for src in (blob, liquid):
        started = time.monotonic()
        with contextlib.suppress(ingest.IngestError):
            ingest.parse_file(src, dept)
        assert time.monotonic() - started < 3, src.rel


class BrokenIndexer:
    def __init__(self) -> None:
        self.refreshed: list[str] = []

    def status(self, department: Department) -> object:
        if department.name == "broken":
            raise RuntimeError("disk on fire")
        return type("S", (), {"stale": True})()

    def refresh(self, department: Department, **_: object) -> object:
        self.refreshed.append(department.name)
        return type("R", (), {"added": 0, "changed": 0, "removed": 0, "failed": ()})()


def test_refresher_reads_the_current_departments_at_each_tick(dept: Department) -> None:
    current = [dept.model_copy(update={"name": "broken"}), dept]
    indexer = BrokenIndexer()
    done = refresh_stale(indexer, lambda: list(current))  # type: ignore[arg-type]
    assert done == ["hr"]
    current.append(dept.model_copy(update={"name": "legal"}))
    assert refresh_stale(indexer, lambda: list(current)) == ["hr", "legal"]  # type: ignore[arg-type]


def test_when_narrowing_is_impossible_nothing_is_served(
    tmp_path: Path,
    dept: Department,
    write: Callable[..., Path],
    counting: CountingEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.knowledge import index
    from bot.store.notices import MemoryNotices

    notices = MemoryNotices()
    embedder = BreakableEmbedder(counting.inner)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=embedder, notices=notices)
    write("cases.md", SECRET)
    kb.refresh(dept)
    write("cases.md", RESTRICT + SECRET)
    embedder.broken = True

    def disk_full(*args: object, **kwargs: object) -> str:
        raise OSError("No space left on device")

    monkeypatch.setattr(index, "write_version", disk_full)
    with pytest.raises(RuntimeError) as caught:
        kb.refresh(dept)
    assert kb.index_version("hr") is None  # no index rather than the revoked one
    (notice,) = notices.recent("hr")
    assert notice.kind == "refresh-failed" and "could not be narrowed (OSError)" in notice.text
    assert any("no index until the next successful refresh" in n for n in caught.value.__notes__)


def test_a_deleted_knowledge_folder_stops_being_served(tmp_path: Path) -> None:
    """Removing a folder is a way to revoke it: the old index must not keep answering."""
    import shutil

    from bot.errors import KnowledgeError
    from bot.store.notices import MemoryNotices
    from tests.fakes import make_company

    company = make_company(tmp_path)
    dept = company.department("hr")
    notices = MemoryNotices()
    kb = KnowledgeBase(state_dir=tmp_path / "state", notices=notices)
    kb.refresh(dept)
    scope = AccessScope("hr", frozenset({"*", "*@example.com"}))
    assert kb.retrieve("vacation days", scope)
    shutil.rmtree(dept.knowledge)
    with pytest.raises(KnowledgeError):
        kb.refresh(dept)
    assert kb.index_version("hr") is None
    assert any("index is not served" in n.text for n in notices.recent("hr"))
