"""Dense retrieval from pgvector (``bot.knowledge.pg_dense``) next to in-process faiss, same run.

    nice -n 10 python -m bench.pg_dense [--chunks 100000] [--big] [--queries 40] [--others N]
        [--m 16] [--ef-construction 64]

What it measures is deptbot's own path, not a bare SQL statement: a synthetic department
(``bench.ann.write_synthetic``: 256-d chunk-shaped vectors, 100 chunks per document, every
tenth document restricted to ``group:finance``, 12 Zipf tokens per chunk) is written in
the on-disk layout, its rows are copied into the ``0005_knowledge.sql`` tables of a
throwaway pgserver cluster (PostgreSQL 16.2, pgvector 0.6.2; the HNSW index rebuilt after
the COPY, as a bulk load should), and three ``IndexReader``s answer the same questions
through ``retrieve`` — BM25 with per-scope statistics, dense candidates, exact re-scoring,
fusion, calibration:

- ``exact``: every visible chunk scored in process (the reference);
- ``faiss``: the segments' IVF-SQ8 indexes in process (``[knowledge] dense = "local"``);
- ``pgvector``: ``PgDense`` (``dense = "pgvector"``): HNSW with the access filter in the
  SQL where :func:`bot.knowledge.pg_dense.plan` allows, an exact search where the scope is
  too narrow (in process for a few thousand visible chunks, else the exact SQL), an exact
  redo of any short result.

Per scope (``all``: everything; ``broad``: the 90 % public chunks; ``narrow``: the 10 %
restricted ones) and question kind (``in``: about a document the scope sees; ``any``:
about any document): retrieve p50/p95, recall@10 of the dense top 10 against exact, and
how the pgvector path went (HNSW searches, exact scans, short results redone). Then, at
the candidate level for the narrow scope, the alternatives the plan chose between: an
exact scan in process vs the exact SQL (HNSW off), and HNSW forced at ``ef_search`` 1000
(how often it comes back short on 0.6.2).

``--others N`` adds N rows of another department to the same HNSW index (one index per
dimension serves every department), which narrows every scope's share of it.

Default (100k chunks): 49 s on a quiet 2-core machine, about 3 minutes under load; ``--big`` (1M):
about 25 minutes (HNSW build 5 min; 13 min with ``--m 32 --ef-construction 128``).

Measured with ``--big`` (1M chunks, 40 questions per row; 25 with m=32) on the shared
2-core machine, under load from other jobs (latencies are noisy, recall is not);
recall@10 of the dense top 10 against exact, p95 of the whole ``retrieve`` in ms:

    =============  ==============  ==============  =======================
    scope (share)  faiss (local)   pgvector, 0005  pgvector, m=32 efc=128
    =============  ==============  ==============  =======================
    all   in/any   1.000 / 1.000   0.677 / 0.662   0.916 / 0.936
                   10.5 / 11.9     45.7 / 26.7     28.2 / 25.5
    broad in/any   1.000 / 0.988   0.685 / 0.675   0.920 / 0.984
                   36.9 / 24.2     16.6 / 45.3     87.4 / 23.5
    narrow in/any  1.000 / 1.000   1.000 / 1.000   1.000 / 1.000 (exact*)
                   37.7 / 45.6     552 / 794       226 / 117
    =============  ==============  ==============  =======================

    * these runs searched narrow scopes exactly in process; the plan now uses the exact
      SQL there (the candidates-level rows below measured it faster).

Exact search for reference: p95 0.6-2.3 s. The 0005 index (pgvector's m=16,
ef_construction=64) strands chunk-shaped data: even ef_search 1000 reaches recall@10
0.73-0.76 (m=32: 0.97-0.98; ef 400, what the plan uses: 0.59-0.67 vs 0.89-0.98). Narrow
scopes (10 %) cannot be served by HNSW on pgvector 0.6 (at ef 1000: recall@100 0.40-0.77,
32-60 % of results short), so they are searched exactly: the exact SQL measured p50/p95
169/205 ms ('in') and 120/160 ms ('any') against 253/678 and 173/597 ms for the same scan
in process (with m=32's run: 54/66 vs 57/164 and 59/139 vs 49/122). Conclusion: keep
``dense = "local"`` (faiss) as the default for PostgreSQL installations.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.ann import DIM, SyntheticEmbedder, _unit, write_synthetic
from bench.pgvector import Pg
from bot.core.types import AccessScope
from bot.knowledge.index import dept_dir
from bot.knowledge.pg_dense import EF_MAX, PgDense, Plan
from bot.knowledge.retrieve import IndexReader, LoadedIndex
from bot.knowledge.signatures import signature_of_entry
from bot.store.backend import Database, PoolLimits, database_url, migrate

DEPT = "big"
K = 10
POOL = 100
SCOPES = {
    "all": frozenset({"*", "group:finance"}),
    "broad": frozenset({"*"}),
    "narrow": frozenset({"group:finance"}),
}
HNSW_SQL = (
    "create index kb_chunks_hnsw_256 on kb_chunks using hnsw ((embedding::vector(256)) vector_cosine_ops) "
    "where vector_dims(embedding) = 256"
)  # as 0005_knowledge.sql


def _text(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


def copy_stream(department: str, index: LoadedIndex, extra: int, rng: np.random.Generator) -> Iterator[bytes]:
    """kb_chunks rows of every segment (and ``extra`` rows of department "other") as a
    binary COPY stream; the body is left empty (only the vectors matter here)."""
    vec_head = struct.pack(">ihh", 4 + 4 * DIM, DIM, 0)
    yield b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    for seg in index.segments:
        head = struct.pack(">h", 8) + _text(department.encode()) + _text(seg.path.name.encode())
        sigs = [_text(signature_of_entry(d).encode()) for d in seg.docs]
        for a in range(0, seg.n, 50_000):
            b = min(seg.n, a + 50_000)
            block = np.asarray(seg.dense[a:b], dtype=">f4")
            docs = seg.chunk_doc[a:b].tolist()
            yield b"".join(
                head
                + struct.pack(">ii", 4, a + i)
                + struct.pack(">ii", 4, docs[i])
                + sigs[docs[i]]
                + _text(b"")
                + _text(b"")
                + vec_head
                + block[i].tobytes()
                for i in range(b - a)
            )
    head = struct.pack(">h", 8) + _text(b"other") + _text(b"other-0")
    other_sig = _text(b"0" * 64)
    for a in range(0, extra, 50_000):
        b = min(extra, a + 50_000)
        block = _unit(rng.normal(size=(b - a, DIM))).astype(">f4")
        yield b"".join(
            head
            + struct.pack(">ii", 4, a + i)
            + struct.pack(">ii", 4, 0)
            + other_sig
            + _text(b"")
            + _text(b"")
            + vec_head
            + block[i].tobytes()
            for i in range(b - a)
        )
    yield struct.pack(">h", -1)


def load_rows(
    conninfo: str, index: LoadedIndex, others: int, rng: np.random.Generator, mem: str, hnsw_with: str = ""
) -> dict[str, float]:
    """Segments, documents and chunks into the migrated tables; HNSW rebuilt after the COPY."""
    import psycopg

    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        conn.execute("drop index if exists kb_chunks_hnsw_256")
        with conn.transaction():
            for seg in index.segments:
                conn.execute(
                    "insert into kb_segments values (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [DEPT, seg.path.name, seg.embedder, DIM, seg.n, len(seg.docs), json.dumps(seg.meta), 0.0],
                )
                conn.cursor().executemany(
                    "insert into kb_documents values (%s, %s, %s, %s, %s, %s)",
                    [
                        (DEPT, seg.path.name, no, d["path"], signature_of_entry(d), json.dumps(d))
                        for no, d in enumerate(seg.docs)
                    ],
                )
            if others:
                conn.execute(
                    "insert into kb_segments values ('other', 'other-0', 'synthetic', %s, %s, 1, '{}', 0)",
                    [DIM, others],
                )
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy("copy kb_chunks from stdin (format binary)") as copy:
            for part in copy_stream(DEPT, index, others, rng):
                copy.write(part)
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute(f"set maintenance_work_mem = '{mem}'")
        conn.execute(HNSW_SQL.replace(" where ", f" {hnsw_with} where ") if hnsw_with else HNSW_SQL)
        hnsw_s = time.perf_counter() - t0
        conn.execute("vacuum analyze kb_chunks")
        size = conn.execute("select pg_relation_size('kb_chunks_hnsw_256')").fetchone()[0]
        table = conn.execute("select pg_table_size('kb_chunks')").fetchone()[0]
    finally:
        conn.close()
    return {"copy_s": copy_s, "hnsw_s": hnsw_s, "hnsw_mb": size / 2**20, "table_mb": table / 2**20}


Ask = tuple[str, list[str], np.ndarray]


def asks_for(
    doc_vecs: np.ndarray,
    docs: list[dict[str, Any]],
    keys: frozenset[str],
    kind: str,
    q: int,
    rng: np.random.Generator,
) -> list[Ask]:
    scope = AccessScope(department=DEPT, keys=keys)
    pool = [
        i
        for i, d in enumerate(docs)
        if kind == "any" or scope.admits(tuple(tuple(a) for a in d["audiences"]))
    ]
    out: list[Ask] = []
    for j in range(q):
        d = pool[int(rng.integers(0, len(pool)))]
        vec = _unit(doc_vecs[d][None] + 0.35 * _unit(rng.normal(size=(1, DIM))))[0]
        words = [f"w{int(w)}" for w in rng.integers(20, 5000, 3)]
        out.append((" ".join(words) + f" q{j}", words, vec))
    return out


def timed(reader: IndexReader, scope: AccessScope, asks: list[Ask]) -> list[float]:
    index = reader.loaded(DEPT)
    assert index is not None
    out = []
    for text, tokens, vec in asks:
        t0 = time.perf_counter()
        chunks = reader._retrieve_in(index, scope, text, K, tokens=tokens, vector=vec)
        out.append(time.perf_counter() - t0)
        assert all(scope.admits(c.audiences) for c in chunks)
    return out


def dense_top(reader: IndexReader, scope: AccessScope, ask: Ask) -> set[int]:
    index = reader.loaded(DEPT)
    assert index is not None
    text, tokens, vec = ask
    hits, _, _ = index.search(
        text, index.mask(scope), K, embedder=SyntheticEmbedder(), mode="dense", tokens=tokens, vector=vec
    )
    return {h.index for h in hits}


def pct(xs: list[float], q: float) -> float:
    return 1000 * float(np.percentile(xs, q)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--big", action="store_true", help="1,000,000 chunks")
    ap.add_argument("--queries", type=int, default=40, help="per scope and question kind")
    ap.add_argument("--others", type=int, default=0, help="rows of another department in the same index")
    ap.add_argument("--m", type=int, default=0, help="HNSW m (default: as 0005_knowledge.sql, pgvector's 16)")
    ap.add_argument("--ef-construction", type=int, default=0, help="HNSW ef_construction (default 64)")
    args = ap.parse_args()
    n = 1_000_000 if args.big else args.chunks
    rng = np.random.default_rng(42)
    vec_mb = (n + args.others) * (DIM * 4 + 120) / 2**20
    pg = Pg(f"{max(256, int(vec_mb * 2.6))}MB")  # table + HNSW index fit in shared_buffers
    mem = f"{max(256, int(vec_mb * 2))}MB"  # the HNSW graph fits maintenance_work_mem
    rows: list[tuple[str, ...]] = []
    extra: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="deptbot-pg-dense-") as tmp:
            state = Path(tmp)
            t0 = time.perf_counter()
            doc_vecs, ann_s = write_synthetic(dept_dir(state, DEPT), n, rng, 1)
            print(
                f"wrote {n:,} chunks in {time.perf_counter() - t0:.0f} s (faiss build {ann_s:.1f} s)",
                flush=True,
            )
            pg.admin("create database deptbot")
            url = database_url({"DEPTBOT_DATABASE_URL": pg.uri.replace("/postgres?", "/deptbot?", 1)})
            assert url is not None
            db = Database(url, PoolLimits(min_size=1, max_size=2))
            migrate(db)

            def named(_: str) -> Any:
                return SyntheticEmbedder()

            exact = IndexReader(state_dir=state, embedder_named=named, ann_threshold=n + 1)
            faiss = IndexReader(state_dir=state, embedder_named=named, ann_threshold=1)
            pgr = IndexReader(state_dir=state, embedder_named=named, ann_threshold=1)
            source = PgDense(db)
            pgr.use_dense(source)
            index = pgr.loaded(DEPT)
            assert index is not None and index.use_ann and index.dense is source
            params = [f"m = {args.m}"] if args.m else []
            params += [f"ef_construction = {args.ef_construction}"] if args.ef_construction else []
            hnsw_with = f"with ({', '.join(params)})" if params else ""
            loaded = load_rows(url.conninfo, index, args.others, rng, mem, hnsw_with)
            print(
                f"COPY {n + args.others:,} rows {loaded['copy_s']:.1f} s ({loaded['table_mb']:.0f} MB), "
                f"HNSW build {loaded['hnsw_s']:.1f} s ({loaded['hnsw_mb']:.0f} MB)",
                flush=True,
            )
            version = db.rows("select extversion from pg_extension where extname = 'vector'", [], what="x")
            docs = index.docs
            readers: dict[str, IndexReader] = {"exact": exact, "faiss": faiss, "pgvector": pgr}
            for name, keys in SCOPES.items():
                scope = AccessScope(department=DEPT, keys=keys)
                share = float(index.mask(scope).mean())
                for kind in ("in", "any"):
                    asks = asks_for(doc_vecs, docs, keys, kind, args.queries, rng)
                    truth = [dense_top(exact, scope, a) for a in asks]
                    for method, reader in readers.items():
                        timed(reader, scope, asks[:3])  # warm: the mask, the pages, the plan
                        before = Counter(source.counts)
                        ts = timed(reader, scope, asks)
                        went = Counter(source.counts)
                        went.subtract(before)
                        recall = (
                            1.0
                            if method == "exact"
                            else float(
                                np.mean(
                                    [
                                        len(dense_top(reader, scope, a) & t) / K
                                        for a, t in zip(asks, truth, strict=True)
                                    ]
                                )
                            )
                        )
                        how = (
                            f"hnsw {went['hnsw']}, exact sql {went['exact_sql']}, "
                            f"here {went['exact']}, short {went['short']}"
                            if method == "pgvector"
                            else ""
                        )
                        row = (
                            name,
                            f"{100 * share:.0f}%",
                            kind,
                            method,
                            f"{pct(ts, 50):.1f}",
                            f"{pct(ts, 95):.1f}",
                            f"{recall:.3f}",
                            how,
                        )
                        rows.append(row)
                        print(fmt(row), flush=True)
            extra = candidates_level(source, index, doc_vecs, rng, args.queries)
            db.close()
    finally:
        pg.close()
    print(
        f"\n{n:,} chunks × {DIM}-d (+{args.others:,} rows of another department in the index), "
        f"pgvector {version[0]['extversion']}, {args.queries} questions per scope × kind; "
        "retrieve = the full hybrid path; recall@10 of the dense top 10 vs exact"
    )
    print(fmt(("scope", "share", "q", "method", "p50 ms", "p95 ms", "rec@10", "pgvector path")))
    for row in rows:
        print(fmt(row))
    print(
        f"\nbuild (HNSW {hnsw_with or 'with pgvector defaults, as 0005'}): COPY {loaded['copy_s']:.1f} s, "
        f"HNSW {loaded['hnsw_s']:.1f} s "
        f"({loaded['hnsw_mb']:.0f} MB); "
        f"faiss IVF-SQ8 {ann_s:.1f} s"
    )
    print("\n".join(extra))


def candidates_level(
    source: PgDense, index: LoadedIndex, doc_vecs: np.ndarray, rng: np.random.Generator, q: int
) -> list[str]:
    """Narrow scope, candidates only: exact in process vs exact SQL vs HNSW forced at ef 1000."""
    out = ["\nnarrow scope, the 100 candidates only (what pg_dense.plan chooses between)"]
    scope = AccessScope(department=DEPT, keys=SCOPES["narrow"])
    mask = index.mask(scope)
    ver = source._version(index)
    sigs = source._admitted(ver, mask, int(mask.sum()))
    assert sigs is not None
    names = [s.path.name for s in index.segments]
    for kind in ("in", "any"):
        asks = asks_for(doc_vecs, index.docs, SCOPES["narrow"], kind, q, rng)
        visible = np.flatnonzero(mask)

        def in_process(vec: np.ndarray) -> set[int]:
            return set(source._exact(index, vec, mask, POOL).tolist())

        def sql(vec: np.ndarray) -> set[int]:
            got = source.nearest_exact(ver, vec, sigs, names, POOL)
            return {int(index.bases[0]) + loc for _, loc in got}

        def hnsw(vec: np.ndarray) -> set[int]:
            got = source.nearest(ver, vec, sigs, names, POOL, Plan("hnsw", ef=EF_MAX))
            return {int(index.bases[0]) + loc for _, loc in got}

        truth = [set(visible[np.argsort(-index.cosines_of(a[2], visible))[:POOL]].tolist()) for a in asks]
        runs: dict[str, Callable[[np.ndarray], set[int]]] = {
            "exact in process": in_process,
            "exact SQL (HNSW off)": sql,
            f"HNSW ef={EF_MAX}, filtered": hnsw,
        }
        for label, run in runs.items():
            run(asks[0][2])
            ts, recall, short = [], [], 0
            for a, t in zip(asks, truth, strict=True):
                t0 = time.perf_counter()
                got = run(a[2])
                ts.append(time.perf_counter() - t0)
                recall.append(len(got & t) / POOL)
                short += len(got) < POOL
            out.append(
                f"  {kind:<4}{label:<26} p50 {pct(ts, 50):7.1f} ms  p95 {pct(ts, 95):7.1f} ms  "
                f"recall@100 {np.mean(recall):.3f}  short {100 * short / len(asks):.0f}%"
            )
    out.extend(ef_sweep(source, index, doc_vecs, rng, q))
    return out


def ef_sweep(
    source: PgDense, index: LoadedIndex, doc_vecs: np.ndarray, rng: np.random.Generator, q: int
) -> list[str]:
    """Broad scope: HNSW's 100 candidates at several ef_search, re-scored exactly as
    retrieval does; recall@10 of that top 10 against exact (what ``EF_MIN`` is chosen from)."""
    out = ["\nbroad scope, HNSW's 100 candidates re-scored exactly: recall@10 by hnsw.ef_search"]
    mask = index.mask(AccessScope(department=DEPT, keys=SCOPES["broad"]))
    ver = source._version(index)
    sigs = source._admitted(ver, mask, int(mask.sum()))
    assert sigs is not None
    names = [s.path.name for s in index.segments]
    visible = np.flatnonzero(mask)
    for kind in ("in", "any"):
        asks = asks_for(doc_vecs, index.docs, SCOPES["broad"], kind, q, rng)
        truth = [set(visible[np.argsort(-index.cosines_of(a[2], visible))[:K]].tolist()) for a in asks]
        for ef in (100, 200, 400, EF_MAX):
            ts, recall, short = [], [], 0
            for a, t in zip(asks, truth, strict=True):
                t0 = time.perf_counter()
                got = np.array(
                    [loc for _, loc in source.nearest(ver, a[2], sigs, names, POOL, Plan("hnsw", ef=ef))]
                )
                ts.append(time.perf_counter() - t0)
                short += len(got) < POOL
                top = got[np.argsort(-index.cosines_of(a[2], got))[:K]] if len(got) else got
                recall.append(len(set(top.tolist()) & t) / K)
            out.append(
                f"  {kind:<4}ef={ef:<5} p50 {pct(ts, 50):6.1f} ms  p95 {pct(ts, 95):6.1f} ms  "
                f"recall@10 {np.mean(recall):.3f}  short {100 * short / len(asks):.0f}%"
            )
    return out


def fmt(r: tuple[str, ...]) -> str:
    return f"{r[0]:<8}{r[1]:>6} {r[2]:<4}{r[3]:<10}{r[4]:>8}{r[5]:>8}{r[6]:>8}  {r[7]}"


if __name__ == "__main__":
    main()
