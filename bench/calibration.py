"""Does the confidence separate answerable from unanswerable questions, and does auto
routing pick the department that holds the answer?

    python -m bench.calibration [--threshold 0.35] [--embedders wordllama,minilm] [-v]

Three sets, each a list of answerable questions and a list the knowledge does not answer:

* ``northwind``: the sample company, 43 natural questions (``bench/data/northwind-
  questions.tsv``) against 18 off-topic ones (``northwind-off-topic.txt``);
* ``northwind2``: a second set written the same way, 58 natural questions with expected
  documents and facts (``northwind-questions-2.tsv``) against 25 *on-topic* unanswerable
  ones (``northwind-unanswerable.tsv``: a document covers the topic but not the fact —
  "what is on the cafeteria menu" when a page only says where the office is);
* ``handbook``: the public 18F handbook (rule-made queries, ``bench.handbook.OFF_TOPIC``),
  read at run time and never copied.

For each question, every department is searched with full visibility and the department
is chosen the way the pipeline does it (``bot.core.routing.best_department``). Printed per
set and embedder, all from the same run:

* ``answer confidence`` — what decides "I don't know" now (``bot.core.confidence``);
* ``retrieval score`` — what decided it before (the retriever's calibrated top score over
  all departments, ``SourceChunk.score``);
* ``raw cosine`` — a common uncalibrated baseline;

with the share of answerable questions at or above the threshold *and* sent to a department
that holds one of their expected documents ("answered": a confident answer from the wrong
department quotes a page without the fact, so it is not counted), the share of
unanswerable ones at or above it ("false"), medians and the highest unanswerable score. The
routing lines give the share of answerable questions sent to a department that holds one
of their expected documents, by the pipeline's rule and by the top retrieval score alone;
the "refused" line splits the refused answerable questions by whether an expected document
was among the passages judged at all (when none was, a refusal is the right outcome and only
retrieval or routing can turn it into an answer).
Targets (issue 15): answered >= 85 %, false <= 10 % on both sample-company sets.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.handbook import DEFAULT_ROOT, OFF_TOPIC, make_beir, make_knowledge
from bot.config import Department, load_company
from bot.core import routing
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase
from bot.knowledge.evaluate import load_beir

DATA = Path(__file__).with_name("data")
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Question:
    text: str
    departments: frozenset[str] = frozenset()  # where an expected document lives ("" = none)
    documents: frozenset[str] = frozenset()  # the expected documents' ids ("dept/path")


@dataclass(frozen=True)
class Scored:
    confidence: float  # answer-level, after routing (the pipeline's decision)
    retrieval: float  # best calibrated retrieval score over all departments (before)
    cosine: float  # best raw cosine over all departments (baseline)
    routed_ok: bool | None  # pipeline routing picked an expected department (None: no expectation)
    evidence: bool | None  # an expected document is among the passages the answer is judged on
    retrieval_routed_ok: bool | None  # the top retrieval score alone would have
    question: str = ""
    department: str = ""
    cosine_routed_ok: bool | None = None  # the top raw cosine alone would have

    def answered(self, key: str, t: float) -> bool:
        """Scored at or above ``t`` *and* from a department holding an expected document.

        A confident answer from the wrong department is not an answer (it quotes a page
        that does not hold the fact), so it counts as neither answered nor refused-right;
        questions without an expectation (the unanswerable sets) count by score alone.
        """
        routed = {"confidence": self.routed_ok, "retrieval": self.retrieval_routed_ok}
        return getattr(self, key) >= t and routed.get(key, self.cosine_routed_ok) is not False


def rows(path: Path) -> list[list[str]]:
    return [ln.split("\t") for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def questions(path: Path, *, answerable: bool) -> list[Question]:
    out = []
    for row in rows(path):
        docs = row[1].split("|") if answerable and len(row) > 1 else []
        out.append(Question(row[0], frozenset(d.split("/", 1)[0] for d in docs), frozenset(docs)))
    return out


def score_all(kb: KnowledgeBase, depts: Sequence[Department], qs: list[Question]) -> list[Scored]:
    # Full visibility: every audience entry the department's index uses ("*" alone would
    # hide folders narrowed by ``_access.yaml``, e.g. finance/payroll, whose documents
    # some questions expect).
    scopes = {
        d.name: AccessScope(d.name, frozenset({"*"}) | kb.reader.audience_entries(d.name)) for d in depts
    }
    out = []
    for q in qs:
        route = routing.best_department(q.text, depts, scopes, kb, top_k=6)
        assert route.assessment is not None
        best_ret, best_ret_dept, cos, cos_dept = 0.0, "", 0.0, ""
        for d in depts:
            hits = kb.retrieve(q.text, scopes[d.name], top_k=6)
            if hits and hits[0].score > best_ret:
                best_ret, best_ret_dept = hits[0].score, d.name
            index = kb.reader.loaded(d.name)
            assert index is not None
            emb = kb.reader._embedder_named(index.embedder)
            raw, _, _ = index.search(q.text, index.mask(scopes[d.name]), 1, embedder=emb, mode="dense")
            if raw and raw[0].cosine > cos:
                cos, cos_dept = raw[0].cosine, d.name
        expect = q.departments or None
        out.append(
            Scored(
                confidence=route.assessment.score,
                retrieval=best_ret,
                cosine=cos,
                routed_ok=None if expect is None else route.department.name in expect,
                evidence=None if not q.documents else any(c.doc_id in q.documents for c in route.probe),
                retrieval_routed_ok=None if expect is None else best_ret_dept in expect,
                question=q.text,
                department=route.department.name,
                cosine_routed_ok=None if expect is None else cos_dept in expect,
            )
        )
    return out


def report(
    name: str,
    embedder: str,
    on: list[Scored],
    off: list[Scored],
    t: float,
    *,
    routing_lines: bool,
    verbose: bool = False,
) -> None:
    for label, key in (
        ("answer confidence", "confidence"),
        ("retrieval score", "retrieval"),
        ("raw cosine", "cosine"),
    ):
        a, b = [getattr(s, key) for s in on], [getattr(s, key) for s in off]
        answered = sum(s.answered(key, t) for s in on) / len(on)
        false = sum(x >= t for x in b) / len(b)
        print(
            f"{name:<11} {embedder:<10} {label:<18} {answered:>9.0%} {false:>7.0%}"
            f" {statistics.median(a):>7.2f} {statistics.median(b):>8.2f} {max(b):>8.2f}"
        )
    if verbose:
        for s in on:
            if s.confidence < t or s.routed_ok is False:
                how = "refused     " if s.confidence < t else "wrong dept  "
                print(f"    {how}      {s.confidence:.2f} {s.department:<12} {s.question}")
        for s in off:
            if s.confidence >= t:
                print(f"    false answer      {s.confidence:.2f} {s.department:<12} {s.question}")
    if routing_lines:
        judged = [s for s in on if s.routed_ok is not None]
        new = sum(bool(s.routed_ok) for s in judged)
        old = sum(bool(s.retrieval_routed_ok) for s in judged)
        print(
            f"{name:<11} {embedder:<10} routing: pipeline {new}/{len(judged)} ({new / len(judged):.0%}),"
            f" top retrieval score alone {old}/{len(judged)} ({old / len(judged):.0%})"
        )
        wrong = sum(s.confidence >= t and s.routed_ok is False for s in judged)
        print(
            f"{name:<11} {embedder:<10} answered from the wrong department: {wrong} (not counted as answered)"
        )
        refused = [s for s in judged if s.confidence < t]
        held = sum(bool(s.evidence) for s in refused)
        print(
            f"{name:<11} {embedder:<10} refused: {len(refused)}, of which {len(refused) - held} without any"
            f" expected document among the judged passages (a retrieval or routing miss: refusing is right)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threshold", type=float, default=0.35)
    ap.add_argument(
        "--embedders",
        default="wordllama",
        help="comma-separated embedder profiles (wordllama,minilm: ~9 min on 2 busy cores; minilm "
        "indexes the handbook slowly)",
    )
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="list refused and falsely answered questions"
    )
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--handbook-queries", type=int, default=300)
    ap.add_argument(
        "--all-terms",
        choices=("on", "off"),
        default="on",
        help="[retrieval] all_terms_first: off ranks the lexical list in plain BM25 order (old vs new)",
    )
    args = ap.parse_args()
    head = ("set", "embedder", "score", "answered", "false", "med on", "med off", "max off")
    print("{:<11} {:<10} {:<18} {:>9} {:>7} {:>7} {:>8} {:>8}".format(*head))
    sets = {
        "northwind": (
            questions(DATA / "northwind-questions.tsv", answerable=True),
            questions(DATA / "northwind-off-topic.txt", answerable=False),
        ),
        "northwind2": (
            questions(DATA / "northwind-questions-2.tsv", answerable=True),
            questions(DATA / "northwind-unanswerable.tsv", answerable=False),
        ),
    }
    for embedder in args.embedders.split(","):
        with tempfile.TemporaryDirectory(prefix="deptbot-calib-") as tmp:
            company = load_company(ROOT / "departments")
            kb = KnowledgeBase(
                state_dir=Path(tmp) / "state", embedder=embedder, all_terms_first=args.all_terms == "on"
            )
            depts = [d.model_copy(update={"embedder": None}) for d in company]
            for d in depts:
                kb.refresh(d)
            for name, (on, off) in sets.items():
                report(
                    name,
                    embedder,
                    score_all(kb, depts, on),
                    score_all(kb, depts, off),
                    args.threshold,
                    routing_lines=True,
                    verbose=args.verbose,
                )
            if args.handbook.exists():
                make_knowledge(Path(tmp) / "hb", root=args.handbook)
                hb = Department(name="handbook", title="Handbook", knowledge=Path(tmp) / "hb")
                kb.refresh(hb)
                beir = make_beir(Path(tmp) / "beir", max_queries=args.handbook_queries, root=args.handbook)
                hq = [Question(q) for q in load_beir(beir).queries.values()]
                off = [Question(q) for q in OFF_TOPIC]
                report(
                    "handbook",
                    embedder,
                    score_all(kb, [hb], hq),
                    score_all(kb, [hb], off),
                    args.threshold,
                    routing_lines=False,
                    verbose=args.verbose,
                )


if __name__ == "__main__":
    main()
