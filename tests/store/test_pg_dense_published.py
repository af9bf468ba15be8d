"""pgvector dense mode end to end: replica A publishes with the real publisher
(``PgIndexHook``), replica B syncs the version and takes its dense candidates from
pgvector (``PgDense``) — the path an installation with ``[knowledge] dense = "pgvector"``
runs. ``test_pg_dense.py`` writes its rows directly so it can test the SQL on its own; this
file proves the publisher's rows (audience signatures, segment names, chunk numbers,
vectors) are the ones that SQL filters on, so a restricted canary stays out after a real
publish and sync, and the candidates equal B's own exact search.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.knowledge import KnowledgeBase
from bot.knowledge.embedders import Embedder, get_embedder
from bot.knowledge.pg_dense import PgDense, create_vector_indexes
from bot.knowledge.pg_sync import PgIndexHook
from bot.ops.locks import LeaseLocks, ReplicaLeases
from bot.store.backend import Database
from bot.store.pg_ops import PgLeaseLocks

CANARY = "quillifant"
OUTSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:engineering"}))
INSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:payroll"}))
TOPICS = ("vacation", "laptops", "pension", "travel", "parking", "hiring")
QUERIES = (
    "how many vacation days",
    "pension plan",
    "travel refunds",
    CANARY,
    f"{CANARY} bonus pool salaries",
)
POOL = 12


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    emb = get_embedder("wordllama")
    emb.embed(["warm up"])
    return emb


def _department(tmp_path: Path) -> Department:
    folder = tmp_path / "knowledge" / "hr"
    folder.mkdir(parents=True)
    for i in range(24):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"t{i:02d}.md").write_text(
            f"# {topic.title()} {i}\n\n## Rules\n\nTeam {i} {topic} rules: ask first, then file the "
            f"{topic} form.\n",
            encoding="utf-8",
        )
    (folder / "pay").mkdir()
    (folder / "pay" / "_access.yaml").write_text("audience: ['group:payroll']\n", encoding="utf-8")
    (folder / "pay" / "board.md").write_text(
        f"# Board pay\n\n## {CANARY.title()}\n\nThe {CANARY} bonus pool for salaries is 4.2 million.\n",
        encoding="utf-8",
    )
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


def _replica(home: Path, db: Database, embedder: Embedder) -> KnowledgeBase:
    return KnowledgeBase(
        state_dir=home,
        embedder=embedder,
        candidates=POOL,
        leases=lambda: ReplicaLeases(PgLeaseLocks(db), lambda: LeaseLocks.in_state_dir(home)),
        hook=PgIndexHook(db, home),
    )


@pytest.fixture
def synced(tmp_path: Path, pg_db: Database, embedder: Embedder) -> Iterator[tuple[KnowledgeBase, PgDense]]:
    """Replica B, synced from A's publish, with pgvector dense candidates and the HNSW index."""
    dept = _department(tmp_path)
    a = _replica(tmp_path / "a", pg_db, embedder)
    b = _replica(tmp_path / "b", pg_db, embedder)
    a.refresh(dept)
    assert b.sync_published(["hr"]) == ["hr"]
    create_vector_indexes(pg_db, concurrently=False)
    b.reader.ann_threshold = 1  # a small department takes the candidate path ...
    source = PgDense(pg_db, exact_visible=0)  # ... and the HNSW path, however few are visible
    b.reader.use_dense(source)
    yield b, source
    for kb in (a, b):
        kb.guard.close()


def test_published_rows_keep_the_canary_out_of_pgvector_candidates(
    synced: tuple[KnowledgeBase, PgDense],
) -> None:
    b, source = synced
    assert any(CANARY in c.text for c in b.retrieve(CANARY, INSIDER, top_k=3))  # the control
    before = source.counts["hnsw"]
    for q in QUERIES:
        for chunk in b.retrieve(q, OUTSIDER, top_k=8):  # a pool below the visible count: HNSW
            assert CANARY not in chunk.text and not chunk.doc_id.startswith("hr/pay/"), q
    assert source.counts["hnsw"] - before == len(QUERIES)  # the SQL answered every one ...
    assert source.counts["dropped"] == 0  # ... and its filter needed no rescue by the mask


def test_published_candidates_equal_the_replica_s_own_exact_search(
    synced: tuple[KnowledgeBase, PgDense], tmp_path: Path, embedder: Embedder
) -> None:
    b, _ = synced
    exact = KnowledgeBase(state_dir=tmp_path / "b", embedder=embedder, candidates=POOL)
    exact.reader.ann_threshold = 10**9
    try:
        for scope in (OUTSIDER, INSIDER):
            for q in QUERIES:
                got = [c.chunk_id for c in b.retrieve(q, scope, top_k=6)]
                assert got == [c.chunk_id for c in exact.retrieve(q, scope, top_k=6)], (scope.keys, q)
    finally:
        exact.guard.close()
