"""Knowledge published to PostgreSQL: publish time, a one-file refresh's publish, and how
long another replica needs to switch.

    nice -n 10 python -m bench.pg_publish [--chunks 30000] [--full] [--url postgresql://…]

Issue 12 asks for the index publish time of a 100k-chunk department. This writes a
synthetic department straight into replica A's state folder with the indexer's own
writer (``segments.write_segment``: segments of 20k chunks as a streamed build makes
them, 256-d float16 vectors, ~1,000-character texts over a 20k-word vocabulary, BM25
postings, and the faiss ANN file once the department reaches ``ann_threshold``), so the
numbers are the publish and sync paths alone, not embedding. Then:

1. A publishes the whole version (``KnowledgePublisher.publish``: binary COPY of chunks
   and vectors, documents, derived files, the version and ``kb_current``);
2. a one-file refresh: a new 20-chunk segment plus a manifest tombstoning the old copy
   of that document, published (only the new segment travels);
3. replica B (its own empty state folder) syncs the first version (materialises every
   segment, verifies every signature), then switches to the one-file version (one
   small segment); with ``knowledge.sync_seconds = 2`` a replica switches at most that
   much later than these times.

``--chunks`` defaults to 30,000 (about a minute on the shared 2-core machine); ``--full``
runs the issue's 100,000. PostgreSQL is a ``pgserver`` in a temporary folder (as the
tests) unless ``--url`` names an empty migrated-or-empty database.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SEGMENT_CHUNKS = 20_000
CHUNKS_PER_DOC = 20
DIM = 256
VOCAB = 20_000
WORDS_PER_CHUNK = 150
TOPICS = 4000


def synthetic(rng: np.random.Generator, start_doc: int, docs: int, audiences: list[list[list[str]]]) -> Any:
    """IndexData of ``docs`` documents × CHUNKS_PER_DOC chunks (synthetic words and vectors)."""
    from bot.knowledge.segments import IndexData

    n = docs * CHUNKS_PER_DOC
    words = rng.integers(0, VOCAB, size=(n, WORDS_PER_CHUNK), dtype=np.int32)
    texts = [" ".join(f"w{w}" for w in row) for row in words]
    # Clustered as real embeddings are (bench/pgvector.py's shape): a document near one of
    # TOPICS centres, its chunks near the document. Uniform random vectors are HNSW's worst case.
    centres = np.random.default_rng(1).standard_normal((TOPICS, DIM), dtype=np.float32)
    topic = rng.integers(0, TOPICS, size=docs)
    doc_vecs = centres[topic] + 0.5 * rng.standard_normal((docs, DIM), dtype=np.float32)
    dense = np.repeat(doc_vecs, CHUNKS_PER_DOC, axis=0) + 0.35 * rng.standard_normal(
        (n, DIM), dtype=np.float32
    )
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    lengths = np.full(n, WORDS_PER_CHUNK, dtype=np.int64)
    data = IndexData(
        embedder="wordllama",
        dim=DIM,
        texts=texts,
        anchors=[f"Section {i % 7}" for i in range(n)],
        dense=dense.astype(np.float16),
        tokens=words.reshape(-1),
        token_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        vocab=[f"w{i}" for i in range(VOCAB)],
    )
    for d in range(docs):
        rel = f"doc{start_doc + d:06d}.md"
        data.docs.append(
            {
                "doc_id": f"big/{rel}",
                "rel": rel,
                "path": f"knowledge/big/{rel}",
                "title": f"Document {start_doc + d}",
                "modified": "2026-01-01T00:00:00+00:00",
                "date_kind": "updated",
                "classification": "internal",
                "audiences": audiences[(start_doc + d) % len(audiences)],
                "start": d * CHUNKS_PER_DOC,
                "count": CHUNKS_PER_DOC,
            }
        )
    return data


def files_of(docs: int) -> dict[str, dict[str, Any]]:
    return {
        f"doc{d:06d}.md": {"size": 1, "mtime_ns": d, "context": "", "sha256": "", "reason": ""}
        for d in range(docs)
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=30_000, help="chunks in the department (default 30000)")
    ap.add_argument("--full", action="store_true", help="the issue's size: 100,000 chunks")
    ap.add_argument(
        "--ann-threshold", type=int, default=100_000, help="chunks from which segments get ANN files"
    )
    ap.add_argument("--url", help="an existing PostgreSQL database (default: pgserver in a temp folder)")
    ap.add_argument(
        "--no-fsync", action="store_true", help="turn the temporary server's fsync off (not durable)"
    )
    ap.add_argument(
        "--with-hnsw",
        action="store_true",
        help='create the HNSW indexes first (`deptbot db vector-index`, dense = "pgvector"): their upkeep',
    )
    args = ap.parse_args()
    chunks = 100_000 if args.full else args.chunks
    docs = max(1, chunks // CHUNKS_PER_DOC)

    from bot.knowledge.index import Manifest, SegmentRef, write_version
    from bot.knowledge.pg_publish import KnowledgePublisher
    from bot.knowledge.pg_sync import KnowledgeSync
    from bot.knowledge.segments import write_segment
    from bot.store.backend import Database, database_url, migrate

    tmp = Path(tempfile.mkdtemp(prefix="deptbot-bench-pgpub-"))
    server = None
    try:
        url = args.url
        if not url:
            import pgserver

            t = time.perf_counter()
            server = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
            url = server.get_uri()
            if args.no_fsync:  # faster, and not what a production server does
                with __import__("psycopg").connect(url, autocommit=True) as conn:
                    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                        conn.execute(f"alter system set {setting} = off".encode())
                    conn.execute(b"select pg_reload_conf()")
            print(f"pgserver (PostgreSQL 16, pgvector 0.6) started in {time.perf_counter() - t:.1f} s")
        parsed = database_url({"DEPTBOT_DATABASE_URL": url})
        assert parsed is not None
        db = Database(parsed)
        migrate(db)
        if args.with_hnsw:
            from bot.knowledge.pg_dense import create_vector_indexes

            create_vector_indexes(db, concurrently=False)

        rng = np.random.default_rng(0)
        audiences: list[list[list[str]]] = [
            [],
            [],
            [],
            [["group:payroll"]],
            [["group:hr"], ["a@example.com"]],
        ]
        root_a = tmp / "a" / "indexes" / "big"
        t = time.perf_counter()
        refs: list[SegmentRef] = []
        per_segment = max(1, SEGMENT_CHUNKS // CHUNKS_PER_DOC)
        for first in range(0, docs, per_segment):
            part = synthetic(rng, first, min(per_segment, docs - first), audiences)
            name = write_segment(root_a, "big", part, with_ann=chunks >= args.ann_threshold)
            refs.append(SegmentRef(name, [d["rel"] for d in part.docs], [CHUNKS_PER_DOC] * len(part.docs)))
        v1 = write_version(root_a, "big", Manifest("wordllama", DIM, refs, files_of(docs)))
        print(
            f"synthetic department: {chunks:,} chunks in {len(refs)} segments, written in "
            f"{time.perf_counter() - t:.1f} s"
        )

        publisher = KnowledgePublisher(db)
        full = publisher.publish(root_a, "big", v1)

        # a one-file refresh: doc 0 changes (tombstoned in segment 0, re-written as a new segment)
        change = synthetic(rng, 0, 1, audiences)
        name = write_segment(root_a, "big", change)
        refs[0].dead = {0}
        manifest = Manifest("wordllama", DIM, [*refs, SegmentRef(name, ["doc000000.md"], [CHUNKS_PER_DOC])])
        manifest.files = files_of(docs)
        v2 = write_version(root_a, "big", manifest)
        one = publisher.publish(root_a, "big", v2)

        # replica B: the first sync (every segment), then the one-file switch
        with db.tx() as c:
            c.execute("update kb_current set version = ? where department = 'big'", [v1])
        sync = KnowledgeSync(db, tmp / "b")
        t = time.perf_counter()
        assert sync.poll(["big"]) == ["big"]
        first_sync = time.perf_counter() - t
        with db.tx() as c:
            c.execute("update kb_current set version = ? where department = 'big'", [v2])
        t = time.perf_counter()
        assert sync.poll(["big"]) == ["big"]
        switch = time.perf_counter() - t
        t = time.perf_counter()
        assert sync.poll(["big"]) == []
        idle = time.perf_counter() - t

        print()
        print(f"{'step':<48} {'seconds':>8} {'segments':>9} {'chunks':>8} {'file MB':>8}")
        print(
            f"{'A publishes the department':<48} {full.seconds:>8.2f} {full.segments:>9} "
            f"{full.chunks:>8,} {full.file_bytes / 2**20:>8.1f}"
        )
        print(
            f"{'A publishes a one-file refresh':<48} {one.seconds:>8.2f} {one.segments:>9} "
            f"{one.chunks:>8,} {one.file_bytes / 2**20:>8.1f}"
        )
        print(f"{'B materialises the department (first sync)':<48} {first_sync:>8.2f}")
        print(f"{'B switches to the one-file refresh':<48} {switch:>8.2f}")
        print(f"{'B polls with nothing new':<48} {idle:>8.4f}")
        db.close()
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
