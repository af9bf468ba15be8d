"""Auto-routing cost: a question with no department vs the same question named, 10 departments.

    python -m bench.routing_pass [--copies 10] [--departments 10] [--queries 200]

Builds ``--departments`` departments from the public 18F handbook (read at run time from
``../shared/corpora``; pages dealt round-robin, ``--copies`` editions, so ~2,400 chunks
per department at the defaults) in a temp folder, then times ``Assistant.ask`` (extractive
generator, SQLite audit, no answer cache) three ways in the same run, taking turns question
by question so that a busy spell on a shared machine hits all three alike; it prints wall
p50/p95 and the process CPU time p50 (robust to other processes taking the cores):

- named: the question names the department it was written for;
- auto, sequential: no department; the retriever offers only ``retrieve``
  (``best_department`` loops over the departments, one ``LoadedIndex.search`` each);
- auto, one pass: no department; ``KnowledgeBase.probe_many`` embeds and tokenises the
  question once and searches every department in one pass laid side by side
  (``bot/knowledge/crosssearch.py``); routing builds passages and answer-level confidence
  only for departments that can still win.

Checks, on every question: both auto paths give the same answer (department, text,
confidence), and the one-pass route (department, alternative, passages, assessment) is
the one of retrieving and assessing every department on its own without pruning. It
also prints what the side-by-side layout adds to memory (its own arrays, and the RSS
with every index loaded vs after 20 one-pass questions: the vectors and postings are the
segments' own).

After the timings it prints where the CPU goes, stage by stage, for a named and a one-pass
question (``sections``: one more pass with the stages wrapped in process-time counters;
``--no-sections`` skips it).

Target: auto (one pass) p50 <= 1.5x named. Not met: 1.8-1.9x CPU p50 (session 20, five
runs under a shared session's load, median 1.86x; named ~2.6-2.8 ms, one pass ~4.9-5.2 ms).
Before session 20, on a quiet machine (load 0.2): named 2.28 ms, sequential 7.86 ms
(3.45x), one pass 4.36 ms (1.91x) CPU p50. The stage table under load (ms per question,
named / one pass / extra): retrieval 1.56 / 3.45 / +1.89, of which the cosines 0.12 /
1.15 / +1.03 (ten einsums over 28 MB of float32: memory-bound) and the rest of the pass
(BM25 over ten departments' postings, candidate selection, fusion) +0.86; passages and
their scores (the runner-up's too) +0.35; confidence.assess (the runner-up, and the winner
again with the margin) +0.22; access policy and index checks, once per department in the
pipeline, +0.14; question analysis for the pruning bound (``may_raise``) +0.06. Even a
free cosine pass would leave one pass at ~1.55x (CPU p50 minus the whole +0.9 ms), so
the cosines alone cannot reach the target; the rest is spread over many small stages.
Session 20 removed the query's compound forms and term lookups done once per department
(``crosssearch.query_words``/``known_terms``: -0.08 to -0.11 ms of a ~2.3 ms pass, hot).

Tried and dropped, measured here:
- session 20, an APPROXIMATE first stage (allowed if the route matched assessing every
  department alone on >= 99 % of questions and dense-candidate recall was >= 99 %): each
  segment's vectors projected on their 64 leading principal axes (uncentred PCA, a
  quarter of the bytes), each department's best 3 x ``candidates`` by that re-scored
  exactly (same einsum on gathered rows, bit-identical), then the best ``candidates`` of
  those. Routes stayed 200/200 but dense-candidate recall was 0.968 (877 of 2,000
  department-questions missed a candidate), and the whole candidate step took 1.08 ms vs
  1.13 exact (hot loop): the projected pass is cheap (0.27 ms row-major, 0.19 ms stored
  transposed, vs 0.96 ms for the full einsum) but gathering ~3,500 rows for the exact
  re-score (the shortlist plus the BM25 candidates, which fusion needs exactly too) cost
  ~0.57 ms. Recall >= 0.99 needed a 5x shortlist at 64 dims (0.991, 1.29 ms) or 2x at
  128 (0.992, 1.16 ms): slower than exact. The wordllama vectors do not concentrate:
  a z-sigma residual bound needed 440-1,300 of ~2,800 chunks per department for recall
  0.999; sign bits (hamming, 32 bytes a row) recalled 0.67-0.87 with 2-5x shortlists.
  A lazy pass (only departments whose upper bound of ``best`` can still reach the
  runner-up searched in full) was simulated, not built: even with the tightest bound
  (each department's exact highest cosine and highest term coverage) routing would search
  2.81 departments a question (p50 2, p90 6; 0 bound violations on 200 x 10). A
  one-department pass is 0.31 ms and three 0.66 ms against 2.42 ms for ten (hot), so it
  might save ~0.8 ms hot, ~1.55-1.6x; but its first stage (7 MB projected, or the int8
  codes' 9 MB below) is read cold under load, which is what sank the int8 version.
- an int8 first stage (numkong's packed int8 dot products, ~0.14 ms for 28k rows with
  the codes in cache) with a proven error bound, exact float32 re-scoring of the chunks
  that can still be candidates, and a lazy pass: every department gets a proven upper
  bound of its best score, and routing searches only departments whose bound can still
  win (2.4 of 10 on average). Bit-identical (0 of 2,000 probes differ, 200/200 routes),
  and faster with hot caches (routing alone, min of 5 repeats: 3.2-3.5 ms vs 3.6-4.8 ms),
  but not under load: cold, the int8 codes (9 MB) read at ~15 GB/s (0.4-0.6 ms) against
  einsum's streaming of 28 MB, the bounds cost 0.2 ms and each lazy search 0.15 ms; in
  five alternating runs one pass was 1.89-2.02x against 1.79-1.92x for this code (and
  2.01-2.04x vs 1.77-1.87x with only named and one-pass questions, caches kinder to it),
  so a 44 MB dependency for no measured gain was not kept;
- numkong/simsimd float16 and bfloat16 kernels (0.3-0.47 ms hot, 0.53-0.66 cold, and
  every candidate still needs its exact float32 cosine from a second copy);
- from an earlier round: a float16 first stage through faiss (as slow as the float32
  pass; with faiss's default OpenMP team p50 16.7 ms / p95 132 ms), faiss
  ``range_search`` (29 ms), numpy float16→float32 conversion (9 ms), huge pages (no
  change), multi-threaded BLAS (p50 0.45 ms but p95 6 ms, p99 22 ms on this machine).
Deriving the winner's margin assessment from its margin-free one is not possible bit for
bit where the margin can count (an ``Assessment`` keeps only the rounded score after any
boost), and it can for 194 of the 200 questions, so routing still assesses the winner twice.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.handbook import DEFAULT_ROOT, make_beir, make_knowledge
from bot.config import Department, load_company
from bot.core import confidence, routing
from bot.core.access import AccessPolicy
from bot.core.pipeline import Assistant
from bot.core.types import AccessScope, Answer, Message, SourceChunk
from bot.knowledge import KnowledgeBase, probe, retrieve
from bot.knowledge.embedders import WordLlamaEmbedder
from bot.knowledge.evaluate import load_beir
from bot.knowledge.segments import Segment
from bot.llm.extractive import ExtractiveGenerator
from bot.sensitivity import PatternClassifier
from bot.store.audit import SqliteAuditLog


class SequentialOnly:
    """The knowledge base without ``retrieve_many``: routing falls back to one retrieve per department."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self._kb = kb

    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        return self._kb.retrieve(query, scope, top_k=top_k)

    def index_version(self, department: str) -> str | None:
        return self._kb.index_version(department)

    def audience_entries(self, department: str) -> frozenset[str]:
        return self._kb.audience_entries(department)


def build(root: Path, *, copies: int, departments: int, handbook: Path) -> tuple[Path, dict[str, str]]:
    """Departments ``d00``..; returns the departments folder and page path → department."""
    pool = root / "pool"
    make_knowledge(pool, copies=copies, root=handbook)
    pages = sorted(p for p in pool.rglob("*.md"))
    owner: dict[str, str] = {}
    for i, p in enumerate(pages):
        name = f"d{i % departments:02d}"
        rel = p.relative_to(pool)
        dest = root / "knowledge" / name / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(p, dest)
        page = rel.as_posix().split("/", 1)[1] if copies > 1 else rel.as_posix()
        owner.setdefault(page, name)
    deps = root / "departments"
    deps.mkdir()
    for d in range(departments):
        name = f"d{d:02d}"
        (deps / f"{name}.yaml").write_text(
            f"title: Department {d}\nknowledge: ../knowledge/{name}\n"
            'ask: ["*@example.com"]\nadmins: ["admin@example.com"]\ndont_know_below: 0.35\n'
        )
    return deps, owner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--departments", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--no-sections", action="store_true", help="skip the CPU breakdown by stage")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deptbot-bench-") as tmp:
        root = Path(tmp)
        deps, owner = build(root, copies=args.copies, departments=args.departments, handbook=args.handbook)
        company = load_company(deps)
        kb = KnowledgeBase(state_dir=root / "state")
        chunks = sum(kb.refresh(d).chunks for d in company)
        beir = load_beir(make_beir(root / "beir", max_queries=args.queries, root=args.handbook))
        queries = [(q, owner[next(iter(beir.qrels[qid]))]) for qid, q in beir.queries.items()]

        def assistant(retriever: object) -> Assistant:
            return Assistant(
                company=company,
                retriever=retriever,  # type: ignore[arg-type]
                indexer=kb,
                generator=ExtractiveGenerator(),
                audit=SqliteAuditLog(path=root / "state" / f"audit-{id(retriever)}.db"),
                classifier=PatternClassifier(),
                cache=None,
            )

        one_pass, sequential = assistant(kb), assistant(SequentialOnly(kb))
        dept_of = dict(queries)

        def ask(a: Assistant, q: str, dept: str | None) -> Answer:
            return a.ask(Message(user_id="u", email="someone@example.com", text=q, department=dept))

        texts = [q for q, _ in queries]
        for d in company:  # every index loaded and searched once, so the RSS below is the pass's
            ask(one_pass, texts[0], d.name)
        rss_before = _rss_mb()
        for q in texts[:20]:
            ask(one_pass, q, None)
        rss_after = _rss_mb()
        layouts = getattr(kb.reader, "_layouts", None)  # absent in a checkout from before the pass
        layout_kb = layouts.nbytes() / 1024 if layouts is not None else 0.0
        modes: dict[str, Callable[[str], object]] = {
            "named department": lambda q: ask(one_pass, q, dept_of[q]),
            "auto, sequential (per department)": lambda q: ask(sequential, q, None),
            "auto, one pass (probe_many)": lambda q: ask(one_pass, q, None),
        }
        wall, cpu = interleaved(modes, texts)
        same = sum(
            (a.department, a.text, a.confidence) == (b.department, b.text, b.confidence)
            for a, b in ((ask(sequential, q, None), ask(one_pass, q, None)) for q in texts)
        )
        users = {
            d.name: AccessScope(department=d.name, keys=frozenset({"*", "someone@example.com"}))
            for d in company
        }
        depts = list(company)
        differ = [
            (q, got, want)
            for q in texts
            if _route_key(got := routing.best_department(q, depts, users, kb, top_k=8))
            != (want := _assess_every_department(q, depts, users, kb))
        ]
        as_all = len(texts) - len(differ)

        print(
            f"\ndepartments={args.departments} chunks={chunks} queries={len(texts)} "
            f"same answer (department, text, confidence) sequential vs one pass: {same}/{len(texts)}; "
            f"same route (department, alternative, passages, assessment) as assessing every "
            f"department: {as_all}/{len(texts)}"
        )
        for q, got, want in differ:  # each route that differs, and how
            print(
                f"  route differs: {q[:60]!r}: one pass {got.department.name} "
                f"(alternative {got.alternative.name if got.alternative else None}), every "
                f"department alone {want[0]} (alternative "
                f"{want[1].name if isinstance(want[1], Department) else None})"
            )
        print("modes interleaved question by question; CPU = process time (robust to a busy machine)")
        print(
            f"{'Assistant.ask':<36} {'p50 ms':>7} {'p95 ms':>7} {'/ named':>8} {'CPU p50':>8} {'/ named':>8}"
        )
        base, base_cpu = float(np.percentile(wall[0], 50)), float(np.percentile(cpu[0], 50))
        for label, w, c in zip(modes, wall, cpu, strict=True):
            p50, p95, c50 = (
                float(np.percentile(w, 50)),
                float(np.percentile(w, 95)),
                float(np.percentile(c, 50)),
            )
            print(
                f"{label:<36} {p50:>7.2f} {p95:>7.2f} {p50 / base:>7.2f}x {c50:>8.2f} {c50 / base_cpu:>7.2f}x"
            )
        print("target: auto (one pass) p50 <= 1.5x named")
        if not args.no_sections:
            named, auto = modes["named department"], modes["auto, one pass (probe_many)"]
            print_sections(sections({"named": named, "auto": auto}, texts))
        print(
            f"layout for the pass: {layout_kb:.0f} KiB of its own arrays; "
            f"RSS {rss_before:.1f} MB with every index loaded, {rss_after:.1f} MB after 20 one-pass questions"
        )


def interleaved(
    modes: dict[str, Callable[[str], object]], texts: list[str]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Wall and CPU milliseconds of every mode per question, the modes taking turns on each
    question, so a busy spell on a shared machine hits all of them alike."""
    for q in texts[:5]:
        for fn in modes.values():
            fn(q)  # warm caches
    wall: list[list[float]] = [[] for _ in modes]
    cpu: list[list[float]] = [[] for _ in modes]
    for q in texts:
        for m, fn in enumerate(modes.values()):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(q)
            wall[m].append((time.perf_counter() - t0) * 1000)
            cpu[m].append((time.process_time() - c0) * 1000)
    return [np.array(w) for w in wall], [np.array(c) for c in cpu]


# Where a question's CPU goes: (label, owner, attribute). Times are cumulative (a stage
# includes what it calls), so "of which" rows are parts of the row above them.
STAGES: tuple[tuple[str, object, str], ...] = (
    ("routing.best_department (all of routing)", routing, "best_department"),
    ("  of which: routing.may_raise", routing, "may_raise"),
    ("retrieval (retrieve / probe_many)", KnowledgeBase, "retrieve"),
    ("retrieval (retrieve / probe_many)", KnowledgeBase, "probe_many"),
    ("  of which: embed + tokenise", WordLlamaEmbedder, "embed"),
    ("  of which: embed + tokenise", retrieve, "query_tokens"),
    ("  of which: cosines (Segment.cosines)", Segment, "cosines"),
    ("passages and their scores (Probe.chunks)", probe.Probe, "chunks"),
    ("  of which: passages built (build_chunk)", probe, "build_chunk"),
    ("confidence.assess", confidence, "assess"),
    ("confidence.assess", routing, "assess"),
    ("access policy (askable, scope, may_ask)", AccessPolicy, "askable"),
    ("access policy (askable, scope, may_ask)", AccessPolicy, "scope"),
    ("access policy (askable, scope, may_ask)", AccessPolicy, "may_ask"),
    ("index checks (Assistant._ensure_index)", Assistant, "_ensure_index"),
    ("generation (extractive)", ExtractiveGenerator, "generate"),
    ("audit record (SQLite)", SqliteAuditLog, "record"),
)


def sections(modes: dict[str, Callable[[str], object]], texts: list[str]) -> dict[str, dict[str, float]]:
    """Mean CPU milliseconds per question of each stage (``STAGES``) and of the whole ask,
    per mode, from one more pass over ``texts`` with the stages wrapped in process-time
    counters (a few microseconds of overhead per wrapped call; not part of the timings above).
    A stage's time is counted once per outermost call, so a stage that calls itself
    (``routing.assess`` is ``confidence.assess``) is not counted twice."""
    spent: dict[str, float] = {}
    depth: dict[str, int] = {}
    originals = [(owner, name, owner.__dict__[name]) for _, owner, name in STAGES]

    def timed(label: str, fn: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*a: object, **k: object) -> object:
            depth[label] = depth.get(label, 0) + 1
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                depth[label] -= 1
                if depth[label] == 0:
                    spent[label] = spent.get(label, 0.0) + time.process_time() - t0

        return wrapper

    out: dict[str, dict[str, float]] = {}
    try:
        for label, owner, name in STAGES:
            setattr(owner, name, timed(label, getattr(owner, name)))
        for mode, fn in modes.items():
            spent.clear()
            t0 = time.process_time()
            for q in texts:
                fn(q)
            total = time.process_time() - t0
            out[mode] = {k: v * 1000 / len(texts) for k, v in spent.items()}
            out[mode]["whole ask"] = total * 1000 / len(texts)
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    return out


def print_sections(found: dict[str, dict[str, float]]) -> None:
    modes = list(found)
    labels = [*dict.fromkeys(label for label, _, _ in STAGES), "whole ask"]
    print("\nCPU by stage, ms per question (one more pass, stages wrapped in counters):")
    print(f"{'stage':<42}" + "".join(f"{m:>9}" for m in modes) + f"{'extra':>9}")
    for label in labels:
        values = [found[m].get(label, 0.0) for m in modes]
        extra = values[-1] - values[0] if len(values) > 1 else 0.0
        print(f"{label:<42}" + "".join(f"{v:>9.3f}" for v in values) + f"{extra:>+9.3f}")


def _route_key(route: routing.Route) -> tuple[object, ...]:
    return (route.department.name, route.alternative, route.probe, route.assessment)


def _assess_every_department(
    q: str, depts: list[Department], scopes: dict[str, AccessScope], kb: KnowledgeBase
) -> tuple[object, ...]:
    """The route without one pass or pruning: every department retrieved on its own and
    assessed, ranked by route score (ties keep the departments' order)."""
    found = [kb.retrieve(q, scopes[d.name], top_k=8) for d in depts]
    scores = [routing.route_score(routing.assess(q, c)) for c in found]
    ranked = sorted(range(len(depts)), key=lambda i: (-scores[i], i))
    best, runner = ranked[0], ranked[1]
    margin = scores[best] - scores[runner]
    alternative = depts[runner] if margin <= routing.CLOSE_MARGIN and scores[runner] > 0 else None
    judged = routing.assess(q, found[best], margin=round(margin, 4))
    return (depts[best].name, alternative, tuple(found[best]), judged)


def _rss_mb() -> float:
    """Resident set size now (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
