"""Auto-routing cost: a question with no department vs the same question named, 10 departments.

    python -m bench.routing_pass [--copies 10] [--departments 10] [--queries 200]

Builds ``--departments`` departments from the public 18F handbook (read at run time from
``../shared/corpora``; pages dealt round-robin, ``--copies`` editions, so ~2,400 chunks
per department at the defaults) in a temp folder, then times ``Assistant.ask`` (extractive
generator, SQLite audit, no answer cache) three ways in the same run:

- named: the question names the department it was written for;
- auto, sequential: no department; the retriever offers only ``retrieve`` (today's path:
  ``best_department`` loops over the departments);
- auto, one pass: no department; ``KnowledgeBase.probe_many`` (``retrieve_many`` without
  building chunks) embeds and tokenises the question once and searches every department in
  one call; routing builds passages and answer-level confidence only for departments that
  can still win.

It also checks that both auto paths pick the same department, alternative and scores.
Target: auto (one pass) p50 <= 1.5x named.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench.handbook import DEFAULT_ROOT, make_beir, make_knowledge
from bench.retrieval import timed
from bot.config import load_company
from bot.core.pipeline import Assistant
from bot.core.types import AccessScope, Answer, Message, SourceChunk
from bot.knowledge import KnowledgeBase
from bot.knowledge.evaluate import load_beir
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
        named = timed(lambda q: ask(one_pass, q, dept_of[q]), texts)
        seq = timed(lambda q: ask(sequential, q, None), texts)
        fast = timed(lambda q: ask(one_pass, q, None), texts)
        same = sum(
            (a.department, a.text, a.confidence) == (b.department, b.text, b.confidence)
            for a, b in ((ask(sequential, q, None), ask(one_pass, q, None)) for q in texts)
        )

        base = float(np.percentile(named, 50))
        print(
            f"\ndepartments={args.departments} chunks={chunks} queries={len(texts)} "
            f"same answer (department, text, confidence) sequential vs one pass: {same}/{len(texts)}"
        )
        print(f"{'Assistant.ask':<34} {'p50 ms':>8} {'p95 ms':>8} {'p50 / named':>12}")
        for label, arr in (
            ("named department", named),
            ("auto, sequential (today)", seq),
            ("auto, one pass (retrieve_many)", fast),
        ):
            p50, p95 = float(np.percentile(arr, 50)), float(np.percentile(arr, 95))
            print(f"{label:<34} {p50:>8.2f} {p95:>8.2f} {p50 / base:>11.2f}x")
        print("target: auto (one pass) p50 <= 1.5x named")


if __name__ == "__main__":
    main()
