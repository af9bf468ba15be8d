"""Publishing a department's index version to PostgreSQL (tables of migration 0005).

Why: with ``DEPTBOT_DATABASE_URL`` set, several replicas on several machines serve one
department, and each must serve the same complete version. One indexer at a time (the
refresh lease is the PostgreSQL one, ``bot.ops.locks.open_leases``) writes a version in
its own state folder as always (``bot/knowledge/index.py``), then this module copies it
into the database; the other replicas materialise it from there (``pg_sync.py``).

What is copied: every segment the version lists that ``kb_segments`` lacks — its meta,
one ``kb_documents`` row per document (with the audience SIGNATURE,
``bot.knowledge.signatures``), one ``kb_chunks`` row per chunk (text, anchor, vector as
pgvector) written with binary COPY, and the derived files (tokens, vocabulary, BM25
postings, ANN index) as ``kb_segment_files`` — each segment in its own transaction (all or
nothing; an orphan left by a crash is collected by the next publish). Then ONE
transaction inserts ``kb_versions``, moves ``kb_current`` and deletes what no kept
version lists (the current and the previous version are kept, as on disk).

Fail closed: a document whose audiences are missing or unreadable is never uploaded (an
empty list would make it public): its segment is refused, the publish fails, and the
refresh fails and is reported like any other index failure (the old version serves).
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import KnowledgeError, RefreshBusy
from bot.knowledge.segments import SEGMENTS
from bot.knowledge.signatures import AudienceError, signature_of_entry
from bot.knowledge.versions import read_meta

if TYPE_CHECKING:
    from bot.store.backend import Database

log = logging.getLogger(__name__)

MARKER = "PG_VERSION"  # <dept root>/PG_VERSION: the published version this folder last matched
# Segment files rebuilt from table rows on the other side; every other file is "derived"
# and travels as bytes in kb_segment_files.
ROW_FILES = frozenset(
    {
        "meta.json",
        "docs.json",
        "anchors.json",
        "texts.bin",
        "text_offsets.npy",
        "chunk_doc.npy",
        "dense.npy",
        "files.json",
    }
)
CHUNK_COLUMNS = "department, segment, local, doc_no, signature, anchor, body, embedding"
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_INT4 = struct.Struct(">ii")  # a field length (4) and an int4 value
_LEN = struct.Struct(">i")
COPY_BLOCK = 1 << 20  # bytes handed to the driver at once
BACKGROUND_TIMEOUT = "30min"  # statement_timeout of publish and sync transactions
UPLOAD_WORKERS = 2  # segments uploaded at once (connections from the pool)


@dataclass
class PublishStats:
    """What the last publish did (benches and logs)."""

    version: str = ""
    segments: int = 0  # segments uploaded (the others were in the database already)
    chunks: int = 0
    file_bytes: int = 0
    seconds: float = 0.0

    def add(self, other: PublishStats) -> None:
        self.segments += other.segments
        self.chunks += other.chunks
        self.file_bytes += other.file_bytes


def read_marker(root: Path) -> str | None:
    try:
        return (root / MARKER).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def write_marker(root: Path, version: str) -> None:
    """Record that this folder serves the published ``version`` (atomic replace)."""
    tmp = root / f"{MARKER}.tmp"
    tmp.write_text(version, encoding="utf-8")
    tmp.replace(root / MARKER)


def segments_of(root: Path, version: str) -> tuple[dict[str, Any], list[tuple[str, Path]]]:
    """The version's meta as published (format 2) and (name, folder) of each segment.

    A format-1 version (written before segments existed) is published as a manifest of
    one segment named like the version, so other replicas only ever see format 2.
    """
    vdir = root / "versions" / version
    meta = read_meta(vdir)
    if "segments" in meta:
        return meta, [(s["name"], root / SEGMENTS / s["name"]) for s in meta["segments"]]
    entry = {
        "name": version,
        "documents": int(meta["documents"]),
        "chunks": int(meta["chunks"]),
        "dead": [],
        "dead_chunks": 0,
    }
    return {**meta, "format": 2, "segments": [entry]}, [(version, vdir)]


class PublishedMovedOn(RefreshBusy):
    """``kb_current`` is not the version a build started from: sync, then refresh again
    (a kind of "busy": the refresh is retried, nothing failed for good)."""


class KnowledgePublisher:
    """Copies finished local versions into PostgreSQL (module text)."""

    def __init__(self, db: Database, *, workers: int = UPLOAD_WORKERS) -> None:
        self.db = db
        self.workers = max(1, workers)
        # Test hook: runs after the segments are uploaded and before kb_current moves
        # (a crash there must leave every other replica on the old version).
        self.before_current: Callable[[], None] | None = None

    def current(self, department: str) -> str | None:
        rows = self.db.rows(
            "select version from kb_current where department = ?", [department], what="the published index"
        )
        return str(rows[0]["version"]) if rows else None

    def publish(
        self, root: Path, department: str, version: str, *, base: str | EllipsisType | None = ...
    ) -> PublishStats:
        """Upload what the database lacks of ``version`` and make it the current one.

        ``base``: the published version the build started from (None: none was). When
        ``kb_current`` is no longer that one, another replica published meanwhile (or this
        one failed to sync it): moving the pointer would roll every replica back over it —
        perhaps over a revocation — so ``PublishedMovedOn`` is raised and nothing moves.
        ``...`` (benches only) publishes whatever is current.
        """
        import psycopg
        from psycopg.types.json import Jsonb

        started = time.perf_counter()
        stats = PublishStats(version=version)
        meta, segments = segments_of(root, version)
        files = json.loads((root / "versions" / version / "files.json").read_text(encoding="utf-8"))
        try:
            have = {
                str(r["name"])
                for r in self.db.rows(
                    "select name from kb_segments where department = ?",
                    [department],
                    what="the published index",
                )
            }
            missing = [(name, folder) for name, folder in segments if name not in have]
            if len(missing) > 1 and self.workers > 1:
                # Each new row also goes into the HNSW graph, which dominates a big publish;
                # segments are independent transactions, so two connections overlap that work.
                with ThreadPoolExecutor(min(self.workers, len(missing))) as pool:
                    for done in [pool.submit(self._upload_segment, department, n, f) for n, f in missing]:
                        stats.add(done.result())
            else:
                for name, folder in missing:
                    stats.add(self._upload_segment(department, name, folder))
            if self.before_current is not None:
                self.before_current()
            with self.db.tx() as c:
                c.execute(f"set local statement_timeout = '{BACKGROUND_TIMEOUT}'")  # the collection below
                c.execute(
                    "insert into kb_versions (department, version, meta, files, published) "
                    "values (?, ?, ?, ?, ?) on conflict (department, version) do nothing",
                    [department, version, Jsonb(no_nul(meta)), Jsonb(no_nul(files)), time.time()],
                )
                row = c.execute(
                    "select version from kb_current where department = ? for update", [department]
                ).fetchone()
                previous = str(row[0]) if row else None
                if base is not ... and previous != base and previous != version:
                    raise PublishedMovedOn(
                        f"{department}: the published index version moved on since this refresh "
                        "started; this replica syncs it first and refreshes again."
                    )
                c.execute(
                    "insert into kb_current (department, version, published) values (?, ?, ?) "
                    "on conflict (department) do update set version = excluded.version, "
                    "published = excluded.published",
                    [department, version, time.time()],
                )
                keep = [version] + ([previous] if previous and previous != version else [])
                c.execute(
                    "delete from kb_versions where department = ? and version <> all(?)", [department, keep]
                )
                c.execute(
                    "delete from kb_segments s where s.department = ? and not exists ("
                    " select 1 from kb_versions v, jsonb_array_elements(v.meta->'segments') e"
                    " where v.department = s.department and e->>'name' = s.name)",
                    [department],
                )
        except psycopg.Error as exc:
            raise KnowledgeError(
                f"{department}: the index version could not be published to the database."
            ) from exc
        stats.seconds = round(time.perf_counter() - started, 3)
        log.info(
            "%s: published index version %s (%d new segment(s), %d chunks) in %.2f s",
            department,
            version,
            stats.segments,
            stats.chunks,
            stats.seconds,
        )
        return stats

    def _upload_segment(self, department: str, name: str, folder: Path) -> PublishStats:
        """One segment in one transaction: kb_segments, kb_documents, kb_chunks, files."""
        from psycopg.types.json import Jsonb

        smeta: dict[str, Any] = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        docs: list[dict[str, Any]] = json.loads((folder / "docs.json").read_text(encoding="utf-8"))
        try:
            signatures = [signature_of_entry(d) for d in docs]
        except AudienceError:
            raise KnowledgeError(
                f"{department}: index segment {name} was not published: a document's access "
                "audiences are missing or unreadable, and it is never published as public."
            ) from None
        offsets = np.load(folder / "text_offsets.npy")
        n = len(offsets) - 1
        anchors: list[str] = json.loads((folder / "anchors.json").read_text(encoding="utf-8"))
        chunk_doc = np.load(folder / "chunk_doc.npy")
        dense = np.load(folder / "dense.npy", mmap_mode="r")
        dim = int(smeta["dim"])
        if (
            len(anchors) != n
            or len(chunk_doc) != n
            or dense.shape[0] != n
            or (n and dense.shape[1] != dim)
            or sum(int(d["count"]) for d in docs) != n
        ):
            raise KnowledgeError(f"{department}: index segment {name} is inconsistent and was not published.")
        blob = (folder / "texts.bin").read_bytes() if n else b""
        derived = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
            and p.relative_to(folder).as_posix() not in ROW_FILES
            and not p.name.startswith(".tmp")
        }
        with self.db.connection() as conn, conn.transaction():
            # A background job, not a request: the pool's statement_timeout (30 s by default)
            # would cut a big segment's COPY, whose HNSW upkeep alone can take longer.
            conn.execute(f"set local statement_timeout = '{BACKGROUND_TIMEOUT}'")
            conn.execute(
                "insert into kb_segments (department, name, embedder, dim, chunks, documents, meta, created) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [department, name, smeta["embedder"], dim, n, len(docs), Jsonb(no_nul(smeta)), time.time()],
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into kb_documents (department, segment, doc_no, path, signature, entry) "
                    "values (%s, %s, %s, %s, %s, %s)",
                    [
                        [
                            department,
                            name,
                            i,
                            str(d.get("path") or d.get("rel") or ""),
                            signatures[i],
                            Jsonb(no_nul(d)),
                        ]
                        for i, d in enumerate(docs)
                    ],
                )
                if n:
                    with cur.copy(f"copy kb_chunks ({CHUNK_COLUMNS}) from stdin (format binary)") as copy:
                        for block in chunk_rows(
                            department, name, blob, offsets, anchors, chunk_doc, signatures, dense
                        ):
                            copy.write(block)
                if derived:
                    cur.executemany(
                        "insert into kb_segment_files (department, segment, file, data) "
                        "values (%s, %s, %s, %s)",
                        [[department, name, file, data] for file, data in derived.items()],
                    )
        return PublishStats(segments=1, chunks=n, file_bytes=sum(len(d) for d in derived.values()))


def no_nul(value: Any) -> Any:
    """``value`` without NUL characters in any string (jsonb and text refuse them; a title
    parsed from a file may hold one). Audiences never do: if one did, the signature stored
    beside the cleaned entry would not verify on the other replicas, which refuse it."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [no_nul(v) for v in value]
    if isinstance(value, dict):
        return {no_nul(k): no_nul(v) for k, v in value.items()}
    return value


def _text(value: bytes) -> bytes:
    return _LEN.pack(len(value)) + value


def chunk_rows(
    department: str,
    segment: str,
    blob: bytes,
    offsets: np.ndarray,
    anchors: list[str],
    chunk_doc: np.ndarray,
    signatures: list[str],
    dense: np.ndarray,
) -> Iterator[bytes]:
    """kb_chunks rows as PostgreSQL's binary COPY stream, in blocks of ~``COPY_BLOCK``.

    Binary, because text COPY would print every float of every vector (25.6M numbers for
    100k chunks of 256 dimensions). A pgvector value is int16 dim, int16 0, float4[dim],
    big-endian; float16 vectors widen to float4 exactly, so they come back bit-identical.
    PostgreSQL's text refuses NUL, which a parsed file may hold: it is dropped from the copy.
    """
    n = len(offsets) - 1
    dim = int(dense.shape[1]) if n else 0
    head = struct.pack(">h", 8) + _text(department.encode("utf-8")) + _text(segment.encode("utf-8"))
    sig_fields = [_text(s.encode("ascii")) for s in signatures]
    vec_head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
    parts: list[bytes] = [COPY_HEADER]
    size = len(COPY_HEADER)
    step = 8192
    for a in range(0, n, step):
        vectors = np.ascontiguousarray(dense[a : a + step], dtype=">f4")
        for i in range(a, min(n, a + step)):
            d = int(chunk_doc[i])
            row = b"".join(
                (
                    head,
                    _INT4.pack(4, i),
                    _INT4.pack(4, d),
                    sig_fields[d],
                    _text(anchors[i].replace("\x00", "").encode("utf-8")),
                    _text(blob[int(offsets[i]) : int(offsets[i + 1])].replace(b"\x00", b"")),
                    vec_head,
                    vectors[i - a].tobytes(),
                )
            )
            parts.append(row)
            size += len(row)
            if size >= COPY_BLOCK:
                yield b"".join(parts)
                parts, size = [], 0
    parts.append(COPY_TRAILER)
    yield b"".join(parts)
