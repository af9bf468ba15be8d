"""ANN retrieval above the size threshold: same answers as exact search, never an invisible chunk.

The threshold is set to 1 chunk here so a tiny department takes the ANN path; with so few
chunks every IVF list is probed, so results must equal exact search. The canary word is
in a restricted document only: no outsider query — not even the canary itself, whose
nearest vector IS the restricted chunk — may return it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.knowledge import KnowledgeBase, ann
from bot.knowledge.embedders import Embedder
from bot.knowledge.segments import Segment

CANARY = "vexillarium"
OUTSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:engineering"}))
INSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:finance-admins"}))
TOPICS = ("vacation", "laptops", "pension", "travel", "parking", "hiring", "security", "training")
QUERIES = (
    "how many vacation days do I get",
    "laptop replacement",
    "pension plan contribution",
    CANARY,
    f"the {CANARY} ledger of salaries",
    "security badge lost",
)


def _department(tmp_path: Path) -> Department:
    folder = tmp_path / "repo" / "knowledge" / "hr"
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"t{i:02d}.md").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"t{i:02d}.md").write_text(
            f"# {topic.title()} {i}\n\n## Rules\n\nTeam {i} {topic} rules: ask first, then file the "
            f"{topic} form.\n\n## Notes\n\nContractors of team {i} follow their agency's {topic} rules.\n",
            encoding="utf-8",
        )
    (folder / "finance").mkdir()
    (folder / "finance" / "_access.yaml").write_text(
        "audience: ['group:finance-admins']\nclassification: confidential\n", encoding="utf-8"
    )
    (folder / "finance" / "ledger.md").write_text(
        f"# Ledger\n\n## {CANARY.title()}\n\nThe {CANARY} ledger of salaries: {CANARY} {CANARY}.\n",
        encoding="utf-8",
    )
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


@pytest.fixture
def built(tmp_path: Path, wordllama: Embedder) -> tuple[KnowledgeBase, KnowledgeBase]:
    """(ANN reader, exact reader) over the same index, written with ANN segments."""
    ann_kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    ann_kb.indexer.ann_threshold = 1
    ann_kb.reader.ann_threshold = 1
    ann_kb.indexer.build_memory_bytes = 60_000  # several segments, each with its own ANN
    ann_kb.refresh(_department(tmp_path))
    exact_kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    exact_kb.reader.ann_threshold = 10**9
    return ann_kb, exact_kb


def test_the_ann_path_is_taken_and_agrees_with_exact_search(
    built: tuple[KnowledgeBase, KnowledgeBase], monkeypatch: pytest.MonkeyPatch
) -> None:
    ann_kb, exact_kb = built
    index = ann_kb.reader.loaded("hr")
    assert index is not None and index.use_ann and len(index.segments) >= 2
    assert all(s.ann is not None for s in index.segments)
    calls = []
    real = ann.search
    monkeypatch.setattr(ann, "search", lambda *a, **k: calls.append(1) or real(*a, **k))
    # so few chunks that ``ann.plan`` would score them exactly: make it search the index
    monkeypatch.setattr(ann, "plan", lambda index, n_visible, n_rows: int(index.nprobe))
    for scope in (OUTSIDER, INSIDER):
        for q in QUERIES:
            got = [(c.chunk_id, c.score) for c in ann_kb.retrieve(q, scope, top_k=8)]
            want = [(c.chunk_id, c.score) for c in exact_kb.retrieve(q, scope, top_k=8)]
            assert [c for c, _ in got] == [c for c, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-4)
    assert calls


def test_no_outsider_query_reaches_the_restricted_document(
    built: tuple[KnowledgeBase, KnowledgeBase],
) -> None:
    ann_kb, _ = built
    assert any(CANARY in c.text for c in ann_kb.retrieve(CANARY, INSIDER, top_k=3))
    for q in QUERIES:
        for chunk in ann_kb.retrieve(q, OUTSIDER, top_k=100):
            assert CANARY not in chunk.text and "finance/" not in chunk.doc_id
    index = ann_kb.reader.loaded("hr")
    assert index is not None
    mask = index.mask(OUTSIDER)
    qvec = ann_kb.reader._embedder_named(index.embedder).embed([CANARY])[0]
    cands = index.ann_candidates(qvec, mask, 100)
    assert len(cands) == int(mask.sum()) and mask[cands].all()  # everything visible, nothing else


def test_filtered_search_returns_only_visible_rows_and_falls_back_when_few(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(20, 32))
    vectors = centers[rng.integers(0, 20, 4000)] + 0.3 * rng.normal(size=(4000, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ann.build(vectors.astype(np.float16))
    query = vectors[0].astype(np.float32)
    nearest = np.argsort(-(vectors @ query))[:50]
    visible = np.ones(4000, dtype=bool)
    visible[nearest] = False  # hide the 50 nearest rows: the ANN must look past them
    found = ann.search(index, query, 20, visible)
    assert len(found) == 20 and visible[found].all()
    exact = np.argsort(-np.where(visible, vectors @ query, -np.inf))[:20]
    assert len(set(found.tolist()) & set(exact.tolist())) >= 18
    rare = np.zeros(4000, dtype=bool)
    rare[rng.choice(4000, 5, replace=False)] = True  # 5 visible rows spread over the lists
    few = ann.search(index, query, 20, rare)
    assert rare[few].all() and len(few) <= 5


def test_a_segment_with_too_few_ann_hits_is_scored_exactly(
    built: tuple[KnowledgeBase, KnowledgeBase], monkeypatch: pytest.MonkeyPatch
) -> None:
    ann_kb, _ = built
    index = ann_kb.reader.loaded("hr")
    assert index is not None
    monkeypatch.setattr(ann, "search", lambda *a, **k: np.zeros(0, np.int64))  # finds nothing
    mask = index.mask(INSIDER)
    qvec = ann_kb.reader._embedder_named(index.embedder).embed(["pension"])[0]
    cands = index.ann_candidates(qvec, mask, 10)
    exact = np.argsort(-index.cosines(qvec, mask), kind="stable")
    per_segment = sum(
        min(10, int(mask[a:b].sum())) for a, b in zip(index.bases[:-1], index.bases[1:], strict=True)
    )
    assert len(cands) == per_segment and mask[cands].all()
    assert exact[0] in cands
    assert isinstance(index.segments[0], Segment)


def test_merged_segments_carry_their_ann_index(
    tmp_path: Path, built: tuple[KnowledgeBase, KnowledgeBase], wordllama: Embedder
) -> None:
    ann_kb, exact_kb = built
    folder = tmp_path / "repo" / "knowledge" / "hr"
    before = {s.path.name for s in ann_kb.reader.loaded("hr").segments}  # type: ignore[union-attr]
    for i in range(0, 40, 3):  # enough changed documents to push segments past the tombstone share
        (folder / f"t{i:02d}.md").write_text(f"# Changed {i}\n\nTeam {i} now files every request online.\n")
    ann_kb.refresh(_department_only(folder))
    index = ann_kb.reader.loaded("hr")
    assert index is not None and index.use_ann
    assert before - {s.path.name for s in index.segments}  # some segments were merged away
    merged = [s for s in index.segments if s.path.name not in before]
    assert merged and all(s.ann is not None for s in merged)
    assert all((s.path / ann.FILE).is_file() for s in index.segments)
    for q in QUERIES:
        got = [c.chunk_id for c in ann_kb.retrieve(q, OUTSIDER, top_k=8)]
        assert got == [c.chunk_id for c in exact_kb.retrieve(q, OUTSIDER, top_k=8)]
        assert not any("finance/" in c for c in got)


def _department_only(folder: Path) -> Department:
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


def test_segments_written_before_the_threshold_get_an_ann_index_too(
    tmp_path: Path, wordllama: Embedder
) -> None:
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    kb.indexer.build_memory_bytes = 60_000  # a streamed build: the first segments come first
    kb.indexer.ann_threshold = kb.reader.ann_threshold = 40  # crossed halfway through the build
    report = kb.refresh(_department(tmp_path))
    assert report.chunks >= 2 * 40
    index = kb.reader.loaded("hr")
    assert index is not None and index.use_ann and len(index.segments) >= 3
    assert all(s.ann is not None for s in index.segments)


def test_a_narrow_scope_finds_the_same_dense_top_10_as_exact_search(tmp_path: Path) -> None:
    """A filtered IVF search only sees visible chunks in the lists it probes; with a mask
    showing 10 % of a segment, the default probes returned a full but wrong top 10
    (recall@10 0.75 at 200k chunks). ``ann.plan`` sends such a mask to exact scoring of the
    visible chunks, or probes more lists, so the ANN path agrees with exact search."""
    from bench.ann import SyntheticEmbedder, _unit, top10, write_synthetic
    from bot.knowledge.index import dept_dir
    from bot.knowledge.retrieve import IndexReader

    rng = np.random.default_rng(7)
    n = 20_000
    centres, _ = write_synthetic(dept_dir(tmp_path, "big"), n, rng, 1)
    embedder = SyntheticEmbedder()
    exact = IndexReader(state_dir=tmp_path, embedder_named=lambda _: embedder, ann_threshold=n + 1)
    fast = IndexReader(state_dir=tmp_path, embedder_named=lambda _: embedder, ann_threshold=1)
    loaded = fast.loaded("big")
    assert loaded is not None and loaded.use_ann
    narrow = AccessScope(department="big", keys=frozenset({"group:finance"}))  # 10 % of the chunks
    found = 0
    for i in range(20):
        doc = centres[rng.integers(0, len(centres))][None]  # about any document, mostly invisible ones
        vec = _unit(doc + 0.35 * _unit(rng.normal(size=(1, 256))))[0]
        ask = (f"q{i}", [f"w{i}"], vec)
        want = top10(exact, narrow, ask, "dense")
        found += len(want & top10(fast, narrow, ask, "dense"))
    assert found == 20 * 10


def test_plan_goes_exact_for_few_visible_chunks_and_probes_more_lists_under_a_mask() -> None:
    class Ivf:
        nlist, nprobe = 2000, 100  # a 1M-chunk segment: each probe scans ~500 codes

    assert ann.plan(Ivf(), 0, 1_000_000) == 0
    assert ann.plan(Ivf(), 50_000, 1_000_000) == 0  # no more than the probes scan: exact
    assert ann.plan(Ivf(), 1_000_000, 1_000_000) == 100  # all visible: the index's own probes
    assert ann.plan(Ivf(), 900_000, 1_000_000) == 124  # 100 / 0.9²
    assert ann.plan(Ivf(), 100_000, 1_000_000) == 2000  # 100 / 0.1² = 10,000: every list
