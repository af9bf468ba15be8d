"""Segmented indexes: a refresh writes only what changed, and never changes what anyone sees.

The reference is always a fresh full build of the same files in another state folder:
whatever segments, tombstones and merges a department went through, every scope must
get the same chunks with the same scores (BM25 statistics are summed over the live
chunks of all segments, per scope), and a restricted document must never reach an
outsider.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder
from bot.knowledge.index import MERGE_DEAD_SHARE, current_version, read_meta

CANARY = "quixotrel"
OUTSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:engineering"}))
INSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:finance-admins"}))
TOPICS = ("vacation", "laptops", "pension", "travel", "parking", "hiring", "security", "training")
QUERIES = (
    "how many vacation days do I get",
    "laptop replacement policy",
    "pension contribution",
    f"{CANARY} payroll table",
    CANARY,
    "travel reimbursement for trains",
    "parking permit",
)


def _doc(i: int, edition: int = 0) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"# {topic.title()} guide {i}\n\n## Rules\n\nThe {topic} rules of team {i} (edition {edition}). "
        f"Ask your manager about {topic} before the end of the month; {topic} requests need a form.\n\n"
        f"## Exceptions\n\nException {i}: contractors follow the {topic} rules of their agency.\n"
    )


def _files() -> dict[str, str]:
    files = {f"team{i:02d}.md": _doc(i) for i in range(24)}
    files["finance/_access.yaml"] = "audience: ['group:finance-admins']\nclassification: confidential\n"
    files["finance/payroll.md"] = (
        f"# Payroll\n\n## {CANARY.title()} table\n\n"
        f"The {CANARY} table lists every salary and vacation payout.\n"
    )
    return files


def _dept(folder: Path) -> Department:
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


def _write(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _kb(state: Path, embedder: Embedder, *, memory_mb: float | None = None) -> KnowledgeBase:
    kb = KnowledgeBase(state_dir=state, embedder=embedder)
    if memory_mb is not None:
        kb.indexer.build_memory_bytes = int(memory_mb * 2**20)
    return kb


def _answers(kb: KnowledgeBase) -> list[list[tuple[str, float]]]:
    return [
        [(c.chunk_id, c.score) for c in kb.retrieve(q, scope, top_k=6)]
        for scope in (OUTSIDER, INSIDER)
        for q in QUERIES
    ]


def _fresh(tmp_path: Path, folder: Path, embedder: Embedder) -> list[list[tuple[str, float]]]:
    state = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    kb = _kb(state, embedder)
    kb.refresh(_dept(folder))
    assert len(_manifest(kb)["segments"]) == 1
    return _answers(kb)


def _same(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> None:
    for g, w in zip(got, want, strict=True):
        assert [c for c, _ in g] == [c for c, _ in w]
        assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=2e-4)


def _manifest(kb: KnowledgeBase) -> dict[str, object]:
    root = kb.indexer.root("hr")
    version = current_version(root)
    assert version is not None
    return read_meta(root / "versions" / version)


def _no_canary_for_outsiders(kb: KnowledgeBase) -> None:
    for q in QUERIES:
        for chunk in kb.retrieve(q, OUTSIDER, top_k=50):
            assert CANARY not in chunk.text and "finance/" not in chunk.doc_id


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "repo" / "knowledge" / "hr"
    _write(path, _files())
    return path


def test_one_changed_file_writes_one_small_segment_and_keeps_the_rest(
    tmp_path: Path, folder: Path, wordllama: Embedder
) -> None:
    kb = _kb(tmp_path / "state", wordllama)
    kb.refresh(_dept(folder))
    (old,) = _manifest(kb)["segments"]  # type: ignore[misc]
    seg = kb.indexer.root("hr") / "segments" / old["name"]
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in seg.rglob("*") if p.is_file()}
    size = sum(p.stat().st_size for p in seg.rglob("*") if p.is_file())

    (folder / "team03.md").write_text(_doc(3, edition=1), encoding="utf-8")
    report = kb.refresh(_dept(folder))

    assert report.changed == 1 and report.unchanged == 24
    first, second = _manifest(kb)["segments"]  # type: ignore[misc]
    assert first["name"] == old["name"] and len(first["dead"]) == 1  # tombstoned, not rewritten
    assert second["documents"] == 1
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in seg.rglob("*") if p.is_file()}
    assert after == before
    assert 0 < kb.indexer.bytes_written < size
    _same(_answers(kb), _fresh(tmp_path, folder, wordllama))
    assert any("edition 1" in c.text for c in kb.retrieve("travel rules of team 3", OUTSIDER, top_k=3))
    assert not any(
        "edition 0" in c.text and "team 3" in c.text for q in QUERIES for c in kb.retrieve(q, INSIDER)
    )


def test_changes_removals_and_revocations_read_like_a_fresh_build(
    tmp_path: Path, folder: Path, wordllama: Embedder
) -> None:
    kb = _kb(tmp_path / "state", wordllama)
    dept = _dept(folder)
    kb.refresh(dept)
    (folder / "team01.md").write_text(_doc(1, edition=2) + f"\nA {CANARY} note.\n", encoding="utf-8")
    kb.refresh(dept)
    (folder / "team02.md").unlink()
    _write(folder, {"team99.md": _doc(99)})
    kb.refresh(dept)
    # revoke: team01 (now holding the canary word) moves behind the finance access file
    shutil.move(folder / "team01.md", folder / "finance" / "team01.md")
    kb.refresh(dept)
    assert len(_manifest(kb)["segments"]) >= 2  # type: ignore[arg-type]
    _same(_answers(kb), _fresh(tmp_path, folder, wordllama))
    _no_canary_for_outsiders(kb)


def test_a_build_streams_into_segments_under_the_memory_ceiling(
    tmp_path: Path, folder: Path, wordllama: Embedder
) -> None:
    kb = _kb(tmp_path / "state", wordllama, memory_mb=0.03)  # a few documents per batch
    report = kb.refresh(_dept(folder))
    manifest = _manifest(kb)
    segments = manifest["segments"]
    assert len(segments) >= 4  # type: ignore[arg-type]
    assert sum(s["chunks"] for s in segments) == report.chunks == manifest["chunks"]  # type: ignore[attr-defined]
    _same(_answers(kb), _fresh(tmp_path, folder, wordllama))
    _no_canary_for_outsiders(kb)


def test_tombstones_past_the_share_are_merged_away(tmp_path: Path, folder: Path, wordllama: Embedder) -> None:
    kb = _kb(tmp_path / "state", wordllama)
    dept = _dept(folder)
    kb.refresh(dept)
    (first,) = _manifest(kb)["segments"]  # type: ignore[misc]
    for i in range(int(26 * MERGE_DEAD_SHARE) + 1):
        (folder / f"team{i:02d}.md").write_text(_doc(i, edition=5), encoding="utf-8")
        kb.refresh(dept)
    segments = _manifest(kb)["segments"]
    assert first["name"] not in [s["name"] for s in segments]  # type: ignore[attr-defined]
    assert all(s["dead_chunks"] <= MERGE_DEAD_SHARE * s["chunks"] for s in segments)  # type: ignore[attr-defined]
    on_disk = {p.name for p in (kb.indexer.root("hr") / "segments").iterdir()}
    listed = {s["name"] for s in segments}  # type: ignore[attr-defined]
    previous = set()
    for v in (kb.indexer.root("hr") / "versions").iterdir():
        previous |= {s["name"] for s in read_meta(v).get("segments", [])}
    assert listed <= on_disk <= listed | previous  # nothing unlisted survives collection
    _same(_answers(kb), _fresh(tmp_path, folder, wordllama))
    _no_canary_for_outsiders(kb)


def test_a_version_from_before_segments_is_read_then_adopted_by_hard_links(
    tmp_path: Path, folder: Path, wordllama: Embedder
) -> None:
    kb = _kb(tmp_path / "state", wordllama)
    dept = _dept(folder)
    kb.refresh(dept)
    root = kb.indexer.root("hr")
    manifest = _manifest(kb)
    (seg,) = manifest["segments"]  # type: ignore[misc]
    legacy = root / "versions" / "20250101T000000.000000-legacy"
    shutil.copytree(root / "segments" / seg["name"], legacy)
    shutil.copy(root / "versions" / str(manifest["version"]) / "files.json", legacy / "files.json")
    meta = json.loads((legacy / "meta.json").read_text(encoding="utf-8"))
    meta.pop("segment")
    (legacy / "meta.json").write_text(json.dumps({**meta, "version": legacy.name}), encoding="utf-8")
    (root / "CURRENT").write_text(legacy.name, encoding="utf-8")
    shutil.rmtree(root / "segments")
    shutil.rmtree(root / "versions" / str(manifest["version"]))

    reader = _kb(tmp_path / "state", wordllama)
    _same(_answers(reader), _fresh(tmp_path, folder, wordllama))

    (folder / "team05.md").write_text(_doc(5, edition=3), encoding="utf-8")
    kb.refresh(dept)
    adopted, _new = _manifest(kb)["segments"]  # type: ignore[misc]
    dense = root / "segments" / adopted["name"] / "dense.npy"
    assert dense.stat().st_ino == (legacy / "dense.npy").stat().st_ino  # linked, not copied
    _same(_answers(kb), _fresh(tmp_path, folder, wordllama))
