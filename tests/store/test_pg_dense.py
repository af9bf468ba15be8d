"""Dense candidates from pgvector (``bot.knowledge.pg_dense``) against a real PostgreSQL 16 +
pgvector 0.6.2 (pgserver): the same chunks as exact search, the access filter in the SQL,
no trust in short HNSW results, a ConfigError without a database, and a refusal when the
database is down.

The rows are written here straight from a real index version (``publish_rows``), in the
layout ``0005_knowledge.sql`` defines, so these tests do not depend on the publisher.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.errors import ConfigError, StoreError
from bot.knowledge import KnowledgeBase
from bot.knowledge import pg_dense as pg_dense_module
from bot.knowledge.embedders import Embedder, get_embedder
from bot.knowledge.pg_dense import SEARCH_FAILED, PgDense, Plan, create_vector_indexes, dense_source, plan
from bot.knowledge.retrieve import LoadedIndex
from bot.knowledge.signatures import signature_of_entry
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database, PoolLimits, database_url
from bot.wiring import build_knowledge

from .conftest import PgServer

CANARY = "vexillarium"
OUTSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:engineering"}))
INSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:finance-admins"}))
FINANCE_ONLY = AccessScope(department="hr", keys=frozenset({"group:finance-admins"}))
TRAVEL_ONLY = AccessScope(department="hr", keys=frozenset({"group:travel-desk"}))
SCOPES = (OUTSIDER, INSIDER, FINANCE_ONLY, TRAVEL_ONLY)
TOPICS = ("vacation", "laptops", "pension", "travel", "parking", "hiring", "security", "training")
QUERIES = (
    "how many vacation days do I get",
    "laptop replacement",
    "pension plan contribution",
    "travel booking rules",
    CANARY,
    f"the {CANARY} ledger of salaries",
)
POOL = 20  # candidates per list: smaller than the visible chunks, so HNSW has to choose


@pytest.fixture(scope="module")
def wordllama() -> Embedder:
    emb = get_embedder("wordllama")
    emb.embed(["warm up"])
    return emb


def _write_department(tmp_path: Path) -> Department:
    folder = tmp_path / "repo" / "knowledge" / "hr"
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        path = folder / f"t{i:02d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
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
    (folder / "travel").mkdir()
    (folder / "travel" / "_access.yaml").write_text("audience: ['group:travel-desk']\n", encoding="utf-8")
    for i in range(6):
        (folder / "travel" / f"desk{i}.md").write_text(
            f"# Desk {i}\n\n## Booking\n\nThe travel desk books trains for team {i}; hotels need a "
            f"quote.\n\n## Refunds\n\nRefund {i} of travel costs within 30 days.\n",
            encoding="utf-8",
        )
    return Department(name="hr", title="HR", knowledge=folder, classification=Classification.INTERNAL)


def publish_rows(db: Database, index: LoadedIndex, department: str) -> int:
    """Every segment of ``index`` as kb_segments / kb_documents / kb_chunks rows (what the
    publisher writes: segment folder name, chunk number inside it, audience signature);
    tombstoned documents stay in their segment, as on disk. Returns the chunk rows."""
    rows = 0
    with db.tx() as c:
        for seg in index.segments:
            name = seg.path.name
            c.execute(
                "insert into kb_segments values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    department,
                    name,
                    seg.embedder,
                    seg.dim,
                    seg.n,
                    len(seg.docs),
                    json.dumps(seg.meta),
                    time.time(),
                ],
            )
            sigs = [signature_of_entry(d) for d in seg.docs]
            for no, doc in enumerate(seg.docs):
                c.execute(
                    "insert into kb_documents values (?, ?, ?, ?, ?, ?)",
                    [department, name, no, doc.get("path", ""), sigs[no], json.dumps(doc)],
                )
            for local in range(seg.n):
                doc_no = int(seg.chunk_doc[local])
                vec = np.asarray(seg.dense[local], dtype=np.float32)
                c.execute(
                    "insert into kb_chunks values (?, ?, ?, ?, ?, ?, ?, ?::vector)",
                    [
                        department,
                        name,
                        local,
                        doc_no,
                        sigs[doc_no],
                        seg.anchors[local],
                        seg.text(local),
                        "[" + ",".join(repr(float(x)) for x in vec) + "]",
                    ],
                )
                rows += 1
    return rows


def _db(url: str, **limits: Any) -> Database:
    parsed = database_url({ENV_VAR: url})
    assert parsed is not None
    return Database(parsed, PoolLimits(**limits) if limits else None)


@pytest.fixture
def readers(
    tmp_path: Path, wordllama: Embedder, pg_db: Database
) -> Iterator[tuple[KnowledgeBase, KnowledgeBase]]:
    """(pgvector reader, exact reader) over one version with several segments and a
    tombstoned document, its rows in the test's database."""
    dept = _write_department(tmp_path)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama, candidates=POOL)
    kb.indexer.build_memory_bytes = 60_000  # several segments
    kb.refresh(dept)
    changed = dept.knowledge / "t03.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nTravel changes apply.\n", encoding="utf-8")
    kb.refresh(dept)  # t03's old chunks are tombstoned in their segment
    kb.reader.ann_threshold = 1  # a tiny department takes the candidate path
    kb.reader.use_dense(PgDense(pg_db, exact_visible=0))  # and the HNSW path, however few visible
    index = kb.reader.loaded("hr")
    assert index is not None and index.use_ann and len(index.segments) >= 2
    assert index.live < index.n, "the second refresh should tombstone t03's first chunks"
    assert publish_rows(pg_db, index, "hr") == index.n
    create_vector_indexes(pg_db, concurrently=False)  # `deptbot db vector-index`
    exact = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama, candidates=POOL)
    exact.reader.ann_threshold = 10**9
    yield kb, exact


def _source(kb: KnowledgeBase) -> PgDense:
    source = kb.reader.dense
    assert isinstance(source, PgDense)
    return source


def test_same_top_chunks_as_local_exact_search_for_several_scopes(
    readers: tuple[KnowledgeBase, KnowledgeBase],
) -> None:
    pg, exact = readers
    for scope in SCOPES:
        for q in QUERIES:
            got = [(c.chunk_id, c.score) for c in pg.retrieve(q, scope, top_k=8)]
            want = [(c.chunk_id, c.score) for c in exact.retrieve(q, scope, top_k=8)]
            assert [c for c, _ in got] == [c for c, _ in want], (scope.keys, q)
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    counts = _source(pg).counts
    assert counts["hnsw"] > 0  # the SQL path answered ...
    assert counts["dropped"] == 0 and counts["short"] == 0  # ... tombstones filtered in the SQL


def test_a_restricted_canary_is_never_returned_not_even_by_the_sql(
    readers: tuple[KnowledgeBase, KnowledgeBase], wordllama: Embedder, pg_db: Database
) -> None:
    pg, _ = readers
    assert any(CANARY in c.text for c in pg.retrieve(CANARY, INSIDER, top_k=3))  # the control
    for q in QUERIES:
        for chunk in pg.retrieve(q, OUTSIDER, top_k=100):
            assert CANARY not in chunk.text and "finance/" not in chunk.doc_id
    # the SQL itself: the canary's own vector, a pool and ef larger than the department
    index = pg.reader.loaded("hr")
    assert index is not None
    source = _source(pg)
    ver = source._version(index)
    qvec = wordllama.embed([CANARY])[0]
    names = [s.path.name for s in index.segments]
    for scope, sees in ((OUTSIDER, False), (INSIDER, True)):
        mask = index.mask(scope)
        sigs = source._admitted(ver, mask, int(mask.sum()))
        assert sigs is not None
        rows = source.nearest(ver, qvec, sigs, names, 1000, Plan("hnsw", ef=1000))
        with pg_db.tx() as c:
            bodies = [
                c.execute("select body from kb_chunks where segment = ? and local = ?", [s, n]).fetchone()[0]
                for s, n in rows
            ]
        assert any(CANARY in b for b in bodies) is sees, scope.keys
        if not sees:
            assert len(rows) == int(mask.sum())  # everything the outsider may see, nothing else


def test_segments_not_yet_in_the_database_are_scored_in_process(
    readers: tuple[KnowledgeBase, KnowledgeBase], pg_db: Database
) -> None:
    pg, exact = readers
    index = pg.reader.loaded("hr")
    assert index is not None
    with pg_db.tx() as c:  # the publisher has not copied the last segment yet
        c.execute("delete from kb_segments where name = ?", [index.segments[-1].path.name])
    for q in QUERIES:
        got = [c.chunk_id for c in pg.retrieve(q, OUTSIDER, top_k=8)]
        assert got == [c.chunk_id for c in exact.retrieve(q, OUTSIDER, top_k=8)], q
    counts = _source(pg).counts
    assert counts["hnsw"] == len(QUERIES) and counts["exact"] == len(QUERIES)  # one of each per query
    assert counts["short"] == 0 and counts["dropped"] == 0


def test_a_row_outside_the_mask_is_dropped_and_counted(
    readers: tuple[KnowledgeBase, KnowledgeBase], wordllama: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, _ = readers
    source = _source(pg)
    index = pg.reader.loaded("hr")
    assert index is not None
    mask = index.mask(OUTSIDER)
    hidden = int(np.flatnonzero(~mask & (index.chunk_sig >= 0))[0])  # a finance or travel chunk
    seg = int(np.searchsorted(index.bases, hidden, side="right")) - 1
    real = source.nearest
    leak = (index.segments[seg].path.name, hidden - int(index.bases[seg]))
    monkeypatch.setattr(source, "nearest", lambda *a, **k: [leak, *real(*a, **k)])  # a broken filter
    qvec = wordllama.embed(["pension plan contribution"])[0]
    cands = index.ann_candidates(qvec, mask, POOL)
    assert hidden not in cands.tolist() and mask[cands].all()
    assert source.counts["dropped"] == 1


def test_a_narrow_scope_that_hnsw_returns_short_still_gets_full_recall(
    readers: tuple[KnowledgeBase, KnowledgeBase],
    wordllama: Embedder,
    pg_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg, _ = readers
    source = _source(pg)
    index = pg.reader.loaded("hr")
    assert index is not None
    q = "travel desk booking trains and hotels"
    qvec = wordllama.embed([q])[0]
    # Another department's 3,000 chunks right next to the question make the asker's share of
    # the HNSW index narrow; with pgvector 0.6.2 the scan yields its ef_search nearest rows
    # and the filter drops them all.
    rng = np.random.default_rng(3)
    noise = qvec[None, :] + 0.02 * rng.normal(size=(3000, len(qvec))).astype(np.float32)
    with pg_db.connection() as conn, conn.transaction():
        conn.execute(
            "insert into kb_segments values ('it', 'n1', 'wordllama', %s, 3000, 1, '{}', 0)", [len(qvec)]
        )
        conn.cursor().executemany(
            "insert into kb_chunks values ('it', 'n1', %s, 0, 'x', '', '', %s::vector)",
            [(i, "[" + ",".join(repr(float(x)) for x in v) + "]") for i, v in enumerate(noise)],
        )
    with pg_db.connection() as conn:  # the planner's row estimate (reltuples) counts the noise
        conn.execute("analyze kb_chunks")
    source._rows.clear()
    mask = index.mask(OUTSIDER)
    n_vis = int(mask.sum())
    visible = np.flatnonzero(mask)
    want = set(visible[np.argsort(-index.cosines_of(qvec, visible))[: min(POOL, n_vis)]].tolist())
    # the plan sends this scope (~80 chunks of 3,000+ rows) straight to the exact SQL ...
    assert (
        n_vis > POOL
        and plan(n_vis, 3000 + index.n, POOL, iterative=False, exact_visible=0).method == "exact_sql"
    )
    assert set(index.ann_candidates(qvec, mask, POOL).tolist()) == want
    assert source.counts["exact_sql"] == 1 and source.counts["hnsw"] == 0
    # ... and HNSW forced on it comes back short (asserted on the SQL), is not trusted, is redone
    monkeypatch.setattr(pg_dense_module, "plan", lambda *a, **k: Plan("hnsw", ef=40))
    ver = source._version(index)
    sigs = source._admitted(ver, mask, n_vis)
    assert sigs is not None
    names = [s.path.name for s in index.segments]
    assert len(source.nearest(ver, qvec, sigs, names, POOL, Plan("hnsw", ef=40))) < min(POOL, n_vis)
    assert set(index.ann_candidates(qvec, mask, POOL).tolist()) == want
    assert source.counts["short"] == 1 and source.counts["exact_sql"] == 2
    # ... and with more allowed in process, both go exact here
    source.exact_visible = 10**6
    assert set(index.ann_candidates(qvec, mask, POOL).tolist()) == want
    assert source.counts["exact"] == 1


def test_the_query_uses_the_dimension_s_hnsw_index(
    readers: tuple[KnowledgeBase, KnowledgeBase], wordllama: Embedder, pg_db: Database
) -> None:
    pg, _ = readers
    source = _source(pg)
    index = pg.reader.loaded("hr")
    assert index is not None
    ver = source._version(index)
    sql, params = source.query(ver, wordllama.embed(["pension"])[0], ["s"], ["x"], 10)
    with pg_db.connection() as conn, conn.transaction():
        for name in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute("select set_config(%s, 'off', true)", [name])
        text = " ".join(r[0] for r in conn.execute("explain " + sql, params).fetchall())
    assert f"kb_chunks_hnsw_{ver.dim}" in text, text


def test_plan_goes_exact_for_narrow_scopes_and_sizes_ef_for_wide_ones() -> None:
    assert plan(500, 1_000_000, 100, iterative=False).method == "exact"  # few visible
    assert plan(100_000, 1_000_000, 100, iterative=False).method == "exact_sql"  # ef would pass 1000
    wide = plan(900_000, 1_000_000, 100, iterative=False)
    assert wide.method == "hnsw" and 400 <= wide.ef <= 1000 and wide.max_scan == 0
    it = plan(100_000, 1_000_000, 100, iterative=True)  # pgvector 0.8: the scan walks on
    assert it.method == "hnsw" and it.ef <= 1000 and it.max_scan >= 2000
    assert pg_dense_module.version_tuple("0.8.0") >= (0, 8) > pg_dense_module.version_tuple("0.6.2")


def test_pgvector_without_a_database_url_is_a_config_error(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(
        departments_dir=tmp_path, state_dir=tmp_path, file={"knowledge": {"dense": "pgvector"}}
    )
    with pytest.raises(ConfigError) as err:
        dense_source(settings)
    assert err.value.field == "knowledge.dense" and ENV_VAR in err.value.problem
    with pytest.raises(ConfigError):  # what `deptbot serve` and every command wire
        build_knowledge(settings)
    local = Settings(departments_dir=tmp_path, state_dir=tmp_path)
    assert local.values.knowledge.dense == "local" and dense_source(local) is None
    with_db = Settings(
        departments_dir=tmp_path,
        state_dir=tmp_path,
        env={ENV_VAR: pg_url},
        file={"knowledge": {"dense": "pgvector"}},
    )
    assert isinstance(dense_source(with_db), PgDense)
    assert isinstance(build_knowledge(with_db).reader.dense, PgDense)


def test_database_down_refuses_the_question(
    readers: tuple[KnowledgeBase, KnowledgeBase], pg_url: str, pg_server: PgServer
) -> None:
    pg, _ = readers
    db = _db(pg_url, min_size=0, max_size=1, connect_timeout=1.0)
    try:
        pg.reader.use_dense(PgDense(db, exact_visible=0))
        assert pg.retrieve("pension plan contribution", OUTSIDER, top_k=3)  # the control
        name = pg_url.split("/")[3].split("?")[0]
        pg_server.admin(f"alter database {name} allow_connections false")
        pg_server.admin(f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'")
        with pytest.raises(StoreError) as err:
            pg.retrieve("laptop replacement", OUTSIDER, top_k=3)
        assert err.value.user_message == SEARCH_FAILED
        assert not any(s in str(err.value) for s in ("psycopg", "postgresql://", "Traceback"))
    finally:
        db.close()
        pg_server.admin(f"alter database {pg_url.split('/')[3].split('?')[0]} allow_connections true")


def test_without_the_vector_index_pgvector_mode_searches_exactly_in_sql(
    tmp_path: Path, wordllama: Embedder, pg_db: Database
) -> None:
    """0005 creates no HNSW index (publishing pays for an index only "pgvector" uses):
    until `deptbot db vector-index` runs, the mode never plans a graph walk and its
    candidates are the exact ones."""
    dept = _write_department(tmp_path)
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama, candidates=POOL)
    kb.refresh(dept)
    kb.reader.ann_threshold = 1
    source = PgDense(pg_db, exact_visible=0)
    kb.reader.use_dense(source)
    index = kb.reader.loaded("hr")
    assert index is not None
    assert publish_rows(pg_db, index, "hr") == index.n
    with pg_db.connection() as conn:
        names = [r[0] for r in conn.execute("select indexname from pg_indexes where tablename = 'kb_chunks'")]
    assert not [n for n in names if "hnsw" in n], names
    exact = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama, candidates=POOL)
    exact.reader.ann_threshold = 10**9
    for q in QUERIES:
        got = [(c.chunk_id, c.score) for c in kb.retrieve(q, INSIDER, top_k=5)]
        want = [(c.chunk_id, c.score) for c in exact.retrieve(q, INSIDER, top_k=5)]
        assert got == want
    assert source.counts["hnsw"] == 0 and source.counts["exact_sql"] == len(QUERIES)
    assert create_vector_indexes(pg_db, concurrently=True) == ["kb_chunks_hnsw_256", "kb_chunks_hnsw_384"]
    source._rows.clear()  # the row count is cached for ROWS_TTL
    kb.retrieve(QUERIES[0], INSIDER, top_k=5)
    assert source.counts["hnsw"] == 1
