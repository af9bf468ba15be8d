"""Does the calibrated score separate answerable from unanswerable questions?

    python -m bench.calibration [--threshold 0.35]

``SourceChunk.score`` decides "I don't know" (``dont_know_below``, 0.35 by default) and
which department answers, so it must be comparable across questions. For two sets —
the sample company (43 natural questions, 18 off-topic ones, in ``bench/data``) and the
public handbook (rule-made queries and ``bench.handbook.OFF_TOPIC``) — this prints the
share of answerable questions at or above the threshold (answered) and of off-topic ones
at or above it (false answers), with medians. The baseline is the raw top cosine, a
common uncalibrated choice.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.handbook import DEFAULT_ROOT, OFF_TOPIC, make_beir, make_knowledge
from bot.config import Department, load_company
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase
from bot.knowledge.evaluate import load_beir

DATA = Path(__file__).with_name("data")
ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[str]:
    return [
        ln.split("\t")[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]


def top_scores(
    kb: KnowledgeBase, depts: Sequence[Department], questions: list[str]
) -> list[tuple[float, float]]:
    """(calibrated score, raw cosine) of the best chunk over all departments."""
    out = []
    for q in questions:
        best, cos = 0.0, 0.0
        for d in depts:
            hits = kb.retrieve(q, AccessScope(d.name, frozenset({"*"})), top_k=6)
            if hits and hits[0].score > best:
                best = hits[0].score
            index = kb.reader.loaded(d.name)
            assert index is not None
            emb = kb.reader._embedder_named(index.embedder)
            raw, _, _ = index.search(
                q, index.mask(AccessScope(d.name, frozenset({"*"}))), 1, embedder=emb, mode="dense"
            )
            cos = max(cos, raw[0].cosine if raw else 0.0)
        out.append((best, cos))
    return out


def report(name: str, on: list[tuple[float, float]], off: list[tuple[float, float]], t: float) -> None:
    for label, i in (("calibrated score", 0), ("baseline: raw cosine", 1)):
        a, b = [s[i] for s in on], [s[i] for s in off]
        answered, false = sum(x >= t for x in a) / len(a), sum(x >= t for x in b) / len(b)
        print(
            f"{name:<10} {label:<22} {answered:>9.0%} {false:>9.0%}"
            f" {statistics.median(a):>10.2f} {statistics.median(b):>10.2f} {max(b):>8.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threshold", type=float, default=0.35)
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args()
    head = ("set", "score", "answered", "false", "med on", "med off", "max off")
    print("{:<10} {:<22} {:>9} {:>9} {:>10} {:>10} {:>8}".format(*head))
    with tempfile.TemporaryDirectory(prefix="deptbot-calib-") as tmp:
        company = load_company(ROOT / "departments")
        kb = KnowledgeBase(state_dir=Path(tmp) / "state")
        for d in company:
            kb.refresh(d)
        depts = list(company)
        on = top_scores(kb, depts, _lines(DATA / "northwind-questions.tsv"))
        off = top_scores(kb, depts, _lines(DATA / "northwind-off-topic.txt"))
        report("northwind", on, off, args.threshold)
        if args.handbook.exists():
            make_knowledge(Path(tmp) / "hb", root=args.handbook)
            hb = Department(name="handbook", title="Handbook", knowledge=Path(tmp) / "hb")
            kb.refresh(hb)
            queries = list(
                load_beir(make_beir(Path(tmp) / "beir", max_queries=300, root=args.handbook)).queries.values()
            )
            report("handbook", top_scores(kb, [hb], queries), top_scores(kb, [hb], OFF_TOPIC), args.threshold)


if __name__ == "__main__":
    main()
