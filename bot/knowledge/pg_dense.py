"""Dense candidates from pgvector, with the asker's access filter inside the SQL.

``[knowledge] dense = "pgvector"`` (only with ``DEPTBOT_DATABASE_URL``) makes
:meth:`bot.knowledge.retrieve.LoadedIndex.ann_candidates` ask PostgreSQL for the chunks
nearest a question instead of the in-process faiss index, from the same
``ann_threshold`` on (below it an exact scan in process is cheaper than any round trip).
The rows are the ones K1's publisher writes (``0005_knowledge.sql``): ``kb_chunks``
keyed by (department, segment folder name, chunk number in the segment), with the
audience SIGNATURE of the chunk's document (``bot.knowledge.signatures``).

Why the filter is in the SQL and not only after it: an HNSW scan that is filtered
afterwards hands back whatever survives of its ``ef_search`` nearest rows, so for an
asker who sees little of the index the nearest VISIBLE chunks never come back, and the
question is answered from worse ones, silently (``bench/pgvector.py``: 99 % of questions
short at a 1 % scope with pgvector 0.6.2). Each query therefore says which signatures the
scope admits (``scope.admits`` once per distinct signature, as ``LoadedIndex.mask`` does),
which department, which live segments, and which tombstoned documents to skip.

What is never trusted:

- every returned (segment, local) is mapped to the version's global chunk number and
  checked against the mask (tombstones and scope); a row outside it is dropped, logged
  without any text, and counted (``PgDense.counts["dropped"]``);
- a result shorter than ``min(pool, visible)`` (the graph ran out of visible neighbours,
  or a segment is not in the database yet) is redone exactly, in process, over the
  visible chunks;
- nothing the database returns is scored there: the candidates get the exact in-process
  cosine from the local ``dense.npy`` (``LoadedIndex.search``), so fusion and calibration
  see the same numbers as with faiss or a full scan.

Planning (:func:`plan`, like ``ann.plan`` for faiss): the HNSW index covers every
department's chunks of one dimension, so the share of it an asker may see can be tiny.
Wide scopes use HNSW with ``hnsw.ef_search`` sized to the pool over that share. pgvector
0.6 stops after ``ef_search`` (at most 1000) rows, so a scope too narrow for that is
searched exactly; from pgvector 0.8 (``extversion`` is read once) ``hnsw.iterative_scan``
lets the scan continue past filtered-out rows, up to ``hnsw.max_scan_tuples``. Exact is
in process up to ``EXACT_VISIBLE`` visible chunks (no round trip), else in the SQL: for
a 10 % scope ``bench/pg_dense.py`` measured the exact SQL at p50/p95 27/38 ms (20k
visible of 200k) and 169/205 ms (100k of 1M) against 46/76 and 253/678 ms for gathering
and scoring the same float16 rows in process.

Which to run: ``dense = "local"`` (faiss), the default, for PostgreSQL installations too.
At 1M chunks (``bench/pg_dense.py --big``, same run, recall@10 of the dense top 10 vs
exact) faiss gave 0.988-1.000 while this path gave 0.66-0.69 with pgvector's default
graph (m=16, ef_construction=64: it strands chunk-shaped data) and 0.92-0.98 with the
m=32, ef_construction=128 index ``deptbot db vector-index`` builds; its narrow scopes pay
an exact scan. Choose pgvector only where a replica cannot hold the faiss files
(``bench/pg_dense.py`` flags ``--m``/``--ef-construction``).

Database errors refuse the question (``StoreError``, "could not search …"): never a
silent fallback to a search the database did not filter.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import ConfigError, StoreError
from bot.knowledge.fusion import top_ids
from bot.knowledge.signatures import AudienceError, signature

if TYPE_CHECKING:
    from bot.knowledge.retrieve import LoadedIndex
    from bot.store.backend import Database

log = logging.getLogger(__name__)

INDEXED_DIMS = (256, 384)  # `deptbot db vector-index`: one partial HNSW index per dimension
# Measured at 1M chunks (bench/pg_dense.py): pgvector's defaults (m=16, ef_construction=64)
# reach recall@10 0.66-0.68, these 0.92-0.98 (build 755 s instead of 299 s).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128


def vector_index_sql(dim: int, *, concurrently: bool = True) -> str:
    """The partial HNSW index of one embedder dimension (an untyped vector column cannot be
    indexed; a cast expression with a matching predicate can, and queries name both)."""
    how = "concurrently " if concurrently else ""
    return (
        f"create index {how}if not exists kb_chunks_hnsw_{int(dim)} on kb_chunks "
        f"using hnsw ((embedding::vector({int(dim)})) vector_cosine_ops) "
        f"with (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"where vector_dims(embedding) = {int(dim)}"
    )


def create_vector_indexes(db: Database, *, concurrently: bool = True) -> list[str]:
    """Create the missing HNSW indexes (``deptbot db vector-index``); their names.

    Not a migration: only installations with ``dense = "pgvector"`` use them, and keeping
    one current costs every publish (module doc). CONCURRENTLY lets replicas keep
    publishing while it builds (it needs autocommit, which pooled connections are)."""
    import psycopg

    made: list[str] = []
    with db.connection() as conn:  # pooled connections are autocommit
        conn.execute("set maintenance_work_mem = '256MB'")
        for dim in INDEXED_DIMS:
            try:
                conn.execute(vector_index_sql(dim, concurrently=concurrently).encode())
            except psycopg.Error as exc:
                raise StoreError(f"Could not create kb_chunks_hnsw_{dim} ({type(exc).__name__}).") from exc
            made.append(f"kb_chunks_hnsw_{dim}")
        conn.execute("reset maintenance_work_mem")
    return made


EF_MAX = 1000  # pgvector accepts hnsw.ef_search 1..1000
EF_MIN = 40  # pgvector's default ef_search
# ef_search per candidate wanted, at least: the graph's recall is poor on chunk-shaped data
# (bench/pg_dense.py, 200k chunks, 90 % scope, recall@10 after exact re-scoring: ef 200
# 0.79, ef 400 0.85, ef 1000 0.88-0.90); 4 × the pool of 100 costs ~3-8 ms.
EF_PER_CANDIDATE = 4
EF_SAFETY = 2.0  # rows scanned per visible row wanted, beyond the share (clustering)
# Up to this many visible chunks, an exact scan in process costs about one HNSW query
# (bench/pg_dense.py: 20k visible float16 rows took 16-74 ms on the shared machine, an
# HNSW query at ef 400 3-8 ms), needs no round trip and is exact.
EXACT_VISIBLE = 5_000
MAX_SCAN = 200_000  # iterative scans (pgvector ≥ 0.8): more rows than this → exact
ROWS_TTL = 300.0  # seconds the row count of a dimension's index is trusted
RECHECK = 30.0  # seconds between looks for a version's segments not yet in the database
SEARCH_FAILED = (
    "Could not search the knowledge base, so this question was not answered (the database is "
    "not reachable right now). Please try again in a few minutes."
)  # what the asker sees: no URL, no driver text


def dense_source(settings: Any) -> PgDense | None:
    """The pgvector source ``[knowledge] dense`` asks for, or None for "local" (faiss/exact in
    process). "pgvector" without ``DEPTBOT_DATABASE_URL`` is a ConfigError: there is no
    database to search, and quietly searching in process would hide a broken setup."""
    from bot.store.backend import ENV_VAR, database_for

    mode = settings.values.knowledge.dense
    if mode != "pgvector":
        return None
    db = database_for(settings)
    if db is None:
        raise ConfigError(
            f'"pgvector" needs {ENV_VAR} (the PostgreSQL database the knowledge is published to); '
            'set it, or use dense = "local"',
            file=settings.settings_file or "settings",
            field="knowledge.dense",
        )
    return PgDense(db)


@dataclass(frozen=True)
class Plan:
    """How to find a scope's candidates: ``exact`` in process, or HNSW with these settings."""

    method: str  # "exact" (in process) | "exact_sql" | "hnsw"
    ef: int = 0
    max_scan: int = 0  # hnsw.max_scan_tuples with an iterative scan; 0 = none (pgvector < 0.8)


def plan(
    n_visible: int, n_rows: int, pool: int, *, iterative: bool, exact_visible: int = EXACT_VISIBLE
) -> Plan:
    """The search for a scope that may see ``n_visible`` of the ``n_rows`` chunks in the
    dimension's HNSW index, wanting ``pool`` candidates.

    Without an iterative scan the HNSW scan yields ``ef_search`` rows before the filter, so
    about ``pool / share`` rows (``EF_SAFETY`` times that: an audience covers whole
    documents, which cluster) are needed; past ``EF_MAX`` the result would be short, so
    the scope goes exact at once. With one, ``ef_search`` only sets the graph's breadth
    and ``max_scan_tuples`` bounds how far the scan may walk.

    Exact is in process up to ``exact_visible`` visible chunks, in the SQL above that
    (``exact_sql``: the signature btree, then a top-N sort), which measured faster than
    gathering that many float16 rows here (module doc).
    """
    if n_visible <= 0 or n_visible <= max(exact_visible, pool):
        return Plan("exact")
    share = min(1.0, n_visible / max(n_rows, n_visible))
    wanted = math.ceil(EF_SAFETY * pool / share)
    if not iterative:
        if wanted > EF_MAX:
            return Plan("exact_sql")
        return Plan("hnsw", ef=min(EF_MAX, max(EF_MIN, EF_PER_CANDIDATE * pool, wanted)))
    if wanted > MAX_SCAN:
        return Plan("exact_sql")
    ef = min(EF_MAX, max(EF_MIN, EF_PER_CANDIDATE * pool))
    return Plan("hnsw", ef=ef, max_scan=max(20_000, wanted))


def version_tuple(text: str) -> tuple[int, ...]:
    """``extversion`` ("0.6.2") as numbers; anything unreadable counts as 0."""
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


class _Version:
    """What the SQL of one loaded version needs, computed once per ``LoadedIndex``."""

    def __init__(self, index: LoadedIndex) -> None:
        # the version's own meta names it; a version written before that, its segments
        named = [index.meta.get("department"), *(seg.meta.get("department") for seg in index.segments)]
        self.department = str(next((d for d in named if d), ""))
        if not self.department:
            log.warning("an index version names no department; its dense candidates are scored in process")
        self.dim = int(index.meta["dim"])
        self.names = [seg.path.name for seg in index.segments]
        self.seg_of = {name: s for s, name in enumerate(self.names)}
        # signature hash of each distinct audience list of the version (None: unreadable,
        # never admitted); a hash shared by lists that read differently is never admitted
        hashes: list[str | None] = []
        for audiences in index.signatures:
            try:
                hashes.append(signature([list(a) for a in audiences]))
            except AudienceError:
                hashes.append(None)
        self.hashes = hashes
        # one live chunk per signature: mask[rep] says whether the scope admits it, because
        # LoadedIndex.mask is admitted[chunk_sig]; count: live chunks per signature
        sig = index.chunk_sig
        live = np.flatnonzero(sig >= 0)
        self.count = np.bincount(sig[live], minlength=len(hashes)).astype(np.int64)
        self.rep = np.full(len(hashes), -1, dtype=np.int64)
        if len(live):
            first = np.unique(sig[live], return_index=True)
            self.rep[first[0]] = live[first[1]]
        # tombstoned documents per segment: (segment name, doc_no) pairs the SQL skips
        dead_seg: list[str] = []
        dead_doc: list[int] = []
        start = 0
        for s, seg in enumerate(index.segments):
            a, b = int(index.bases[s]), int(index.bases[s + 1])
            gone = np.unique(index.chunk_doc[a:b][index.chunk_sig[a:b] < 0]) - start
            dead_seg.extend([self.names[s]] * len(gone))
            dead_doc.extend(int(d) for d in gone)
            start += len(seg.docs)
        self.dead = (dead_seg, dead_doc)
        self.published: np.ndarray | None = None  # per segment: has rows in kb_segments
        self.checked = 0.0  # when ``published`` was read (monotonic)


class PgDense:
    """The pgvector candidate source one ``IndexReader`` uses for every department.

    ``counts`` (a Counter, for tests, benches and operators): ``hnsw``, ``exact_sql`` and
    ``exact`` (in process) searches, ``short`` (results redone exactly), ``dropped`` (rows
    outside the mask).
    """

    def __init__(self, db: Database, *, exact_visible: int = EXACT_VISIBLE) -> None:
        self.db = db
        self.exact_visible = exact_visible
        self.counts: Counter[str] = Counter()
        self._versions: weakref.WeakKeyDictionary[LoadedIndex, _Version] = weakref.WeakKeyDictionary()
        self._rows: dict[int, tuple[float, int]] = {}  # dim → (checked at, rows in its index)
        self._iterative: bool | None = None
        self._no_index: set[int] = set()  # dimensions warned about (once each)
        self._lock = threading.Lock()

    # ── the port LoadedIndex.ann_candidates calls ────────────────────────────────────────

    def candidates(self, index: LoadedIndex, qvec: np.ndarray, mask: np.ndarray, pool: int) -> np.ndarray:
        """Up to ``pool`` visible chunks nearest ``qvec`` (global numbers), never one outside
        ``mask``; StoreError (the question is refused) when the database fails."""
        n_vis = int(np.count_nonzero(mask))
        if n_vis == 0 or pool <= 0:
            return np.zeros(0, np.int64)
        ver = self._version(index)
        sigs = self._admitted(ver, mask, n_vis)
        if sigs is None or ver.dim not in INDEXED_DIMS or not ver.department:
            served = np.zeros(len(index.segments), dtype=bool)  # nothing to ask: exact here
        else:
            served = self._published(ver)
        found: list[np.ndarray] = []
        sql_mask = mask
        if not served.all():  # segments not (yet) in the database are scored here
            in_db = np.repeat(served, np.diff(index.bases))
            sql_mask = mask & in_db
            found.append(self._exact(index, qvec, mask & ~in_db, pool))
        n_sql = int(np.count_nonzero(sql_mask))
        if n_sql:
            assert sigs is not None
            rows = self._index_rows(ver.dim)
            if rows <= 0:  # no HNSW index: never walk a graph that is not there
                choice = Plan("exact_sql" if n_sql > max(self.exact_visible, pool) else "exact")
            else:
                choice = plan(
                    n_sql, rows, pool, iterative=self._has_iterative(), exact_visible=self.exact_visible
                )
            names = [ver.names[s] for s in np.flatnonzero(served)]
            ids = None
            if choice.method == "hnsw":
                got = self.nearest(ver, qvec, sigs, names, pool, choice)
                ids = self._checked(index, ver, sql_mask, got)
                self._count("hnsw")
                if len(ids) < min(pool, n_sql):  # the graph ran out of visible neighbours
                    self._count("short")
                    ids = None
                    if n_sql > self.exact_visible:  # redone exactly, where that is fastest
                        choice = Plan("exact_sql")
            if choice.method == "exact_sql":
                got = self.nearest_exact(ver, qvec, sigs, names, pool)
                ids = self._checked(index, ver, sql_mask, got)
                self._count("exact_sql")
                if len(ids) < min(pool, n_sql):  # rows missing from the database: never trusted
                    self._count("short")
                    ids = None
            if ids is None:
                ids = self._exact(index, qvec, sql_mask, pool)
            found.append(ids)
        cands = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        if len(cands) and not mask[cands].all():  # cannot happen: both paths filter
            log.error("dense candidates outside the visibility mask were dropped")
            cands = cands[mask[cands]]
        return cands

    # ── SQL ────────────────────────────────────────────────────────────────────────────

    def nearest(
        self, ver: _Version, qvec: np.ndarray, sigs: Sequence[str], segments: Sequence[str], k: int, how: Plan
    ) -> list[tuple[str, int]]:
        """(segment, local) of the ``k`` rows nearest ``qvec`` by HNSW, filtered in the SQL."""
        sql, params = self.query(ver, qvec, sigs, segments, k)
        settings = [("hnsw.ef_search", str(how.ef))]
        if how.max_scan:
            settings += [
                ("hnsw.iterative_scan", "relaxed_order"),
                ("hnsw.max_scan_tuples", str(how.max_scan)),
            ]
        # Only the HNSW scan yields rows in distance order without a sort: with sorts and
        # other scans off, the planner cannot pick the exact (btree + sort) path instead.
        settings += [("enable_seqscan", "off"), ("enable_bitmapscan", "off"), ("enable_sort", "off")]
        return self._run(sql, params, settings)

    def nearest_exact(
        self, ver: _Version, qvec: np.ndarray, sigs: Sequence[str], segments: Sequence[str], k: int
    ) -> list[tuple[str, int]]:
        """The exact SQL top ``k`` (HNSW off: the signature btree, then a top-N sort), for
        scopes too narrow for HNSW and too wide for an in-process scan (:func:`plan`)."""
        sql, params = self.query(ver, qvec, sigs, segments, k)
        # Its own text: psycopg prepares a statement run often, and a prepared plan keeps the
        # path it was planned with, whatever enable_* says later.
        return self._run("/* exact */ " + sql, params, [("enable_indexscan", "off")])

    @staticmethod
    def query(
        ver: _Version, qvec: np.ndarray, sigs: Sequence[str], segments: Sequence[str], k: int
    ) -> tuple[str, dict[str, Any]]:
        """The statement and its parameters. The dimension is written into the text (an int
        from the version's meta): a partial index is only usable when its predicate
        (``vector_dims(embedding) = N``) and cast can be proved from the query itself."""
        dim = int(ver.dim)
        dead = ""
        params: dict[str, Any] = {
            "dept": ver.department,
            "sigs": list(sigs),
            "segs": list(segments),
            "q": "[" + ",".join(repr(float(x)) for x in np.asarray(qvec, dtype=np.float32)) + "]",
            "k": int(k),
        }
        if ver.dead[0]:
            dead = (
                " and (segment, doc_no) not in"
                " (select s, d from unnest(%(dead_s)s::text[], %(dead_d)s::int[]) as t(s, d))"
            )
            params["dead_s"], params["dead_d"] = ver.dead
        sql = (
            "select segment, local from kb_chunks"
            f" where department = %(dept)s and vector_dims(embedding) = {dim}"
            " and signature = any(%(sigs)s::text[]) and segment = any(%(segs)s::text[])"
            f"{dead}"
            f" order by embedding::vector({dim}) <=> %(q)s::vector({dim}) limit %(k)s"
        )
        return sql, params

    def _run(
        self, sql: str, params: dict[str, Any], settings: list[tuple[str, str]]
    ) -> list[tuple[str, int]]:
        import psycopg

        try:
            with self.db.connection() as conn, conn.transaction():
                names = ", ".join("set_config(%s, %s, true)" for _ in settings)
                conn.execute(f"select {names}", [v for pair in settings for v in pair])
                rows = conn.execute(sql, params).fetchall()
        except (psycopg.Error, StoreError) as exc:
            raise StoreError(SEARCH_FAILED) from exc
        return [(str(r[0]), int(r[1])) for r in rows]

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self.db.connection() as conn:
                return list(conn.execute(sql, params).fetchall())
        except (psycopg.Error, StoreError) as exc:
            raise StoreError(SEARCH_FAILED) from exc

    # ── per version, per scope ───────────────────────────────────────────────────────────

    def _version(self, index: LoadedIndex) -> _Version:
        with self._lock:
            ver = self._versions.get(index)
        if ver is None:
            ver = _Version(index)
            with self._lock:
                ver = self._versions.setdefault(index, ver)
        return ver

    def _admitted(self, ver: _Version, mask: np.ndarray, n_vis: int) -> list[str] | None:
        """The signature hashes the scope behind ``mask`` admits, or None when ``mask`` is not
        one ``LoadedIndex.mask`` built (then nothing goes to the database: exact in process).

        ``mask`` is ``admitted[chunk_sig]``, so one live chunk per signature reads it, and the
        visible count must then equal the admitted signatures' chunk counts."""
        has = ver.rep >= 0
        admitted = np.zeros(len(ver.rep), dtype=bool)
        admitted[has] = mask[ver.rep[has]]
        if int(ver.count[admitted].sum()) != n_vis:
            log.warning("a visibility mask did not follow the version's signatures; searched exactly")
            return None
        ok: set[str] = set()
        refused: set[str] = set()
        for h, yes in zip(ver.hashes, admitted.tolist(), strict=True):
            if h is not None:
                (ok if yes else refused).add(h)
        return sorted(ok - refused)  # a hash also worn by a refused list is never admitted

    def _published(self, ver: _Version) -> np.ndarray:
        """Which of the version's segments have rows in the database: asked once per version,
        and again every ``RECHECK`` seconds while some are missing (the indexing replica
        may serve a version before its publisher has copied it)."""
        now = time.monotonic()
        if ver.published is None or (not ver.published.all() and now - ver.checked > RECHECK):
            rows = self._fetch(
                "select name from kb_segments where department = %s and name = any(%s::text[])",
                [ver.department, ver.names],
            )
            have = {str(r[0]) for r in rows}
            published = np.array([name in have for name in ver.names], dtype=bool)
            if not published.all():
                log.warning(
                    "%d of %d index segment(s) of %s are not in the database yet; scored in process",
                    int((~published).sum()),
                    len(published),
                    ver.department,
                )
            ver.published, ver.checked = published, now
        return ver.published

    def _index_rows(self, dim: int) -> int:
        """Rows in the dimension's HNSW index (the planner's estimate, else a count)."""
        now = time.monotonic()
        cached = self._rows.get(dim)
        if cached is not None and now - cached[0] < ROWS_TTL:
            return cached[1]
        rows = self._fetch(
            "select c.reltuples::bigint from pg_class c join pg_index i on i.indexrelid = c.oid "
            "where c.relname = %s and i.indisvalid",
            [f"kb_chunks_hnsw_{dim}"],
        )
        if not rows:  # no (valid) index: `deptbot db vector-index` was not run, or is running
            if dim not in self._no_index:
                self._no_index.add(dim)
                log.warning(
                    'dense = "pgvector" without an HNSW index for dimension %d: searching exactly '
                    "in SQL; run `deptbot db vector-index`",
                    dim,
                )
            self._rows[dim] = (now, 0)
            return 0
        self._no_index.discard(dim)
        n = int(rows[0][0]) if rows[0][0] is not None else -1
        if n <= 0:  # never analysed: count (once per ROWS_TTL)
            count = f"select count(*) from kb_chunks where vector_dims(embedding) = {int(dim)}"
            n = int(self._fetch(count, [])[0][0])
        self._rows[dim] = (now, n)
        return n

    def _has_iterative(self) -> bool:
        if self._iterative is None:
            rows = self._fetch("select extversion from pg_extension where extname = 'vector'", [])
            self._iterative = bool(rows) and version_tuple(str(rows[0][0])) >= (0, 8)
        return self._iterative

    def _checked(
        self, index: LoadedIndex, ver: _Version, mask: np.ndarray, rows: list[tuple[str, int]]
    ) -> np.ndarray:
        """Global chunk numbers of ``rows``; a row outside ``mask`` is dropped and counted."""
        ids = np.full(len(rows), -1, dtype=np.int64)
        for j, (name, local) in enumerate(rows):
            s = ver.seg_of.get(name)
            if s is not None and 0 <= local < index.segments[s].n:
                ids[j] = int(index.bases[s]) + local
        ok = ids >= 0
        ok[ok] = mask[ids[ok]]
        if not ok.all():
            bad = int((~ok).sum())
            self._count("dropped", bad)
            log.error("pgvector returned %d chunk(s) outside the asker's visibility; dropped", bad)
        return ids[ok]

    def _exact(self, index: LoadedIndex, qvec: np.ndarray, mask: np.ndarray, pool: int) -> np.ndarray:
        self._count("exact")
        visible = np.flatnonzero(mask)
        return top_ids(visible, index.cosines_of(qvec, visible), pool, positive=False)

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n
