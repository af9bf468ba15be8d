"""Sensitivity classifier quality and speed on the labelled corpus, new vs. baseline.

    python -m bench.sensitivity [--repeat 20]

Corpus: tests/data/sensitivity_corpus.tsv (text, expected label, note), classified for a
department whose keywords are those from issue 8 ("investigation", "harassment
complaint", "salary", "bonus"). Baseline in the same run: ``PatternClassifier(
libraries=False)``, the regex-only classifier with exact whole-word keywords.

Per label, precision/recall/F1 count exact labels (a confidential row labelled
restricted is a miss for "confidential"). "sensitive" is what routing cares about: is the
text labelled confidential-or-higher when it should be. Time is the median per string
over all corpus strings (each classified ``--repeat`` times after a warm-up), its 95th
percentile, and one ~2 kB history turn.
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time
from collections.abc import Callable, Sequence

from bot.core.types import Classification
from bot.sensitivity import PatternClassifier
from tests.sensitivity import corpus

# A long history turn: ~2 kB of ordinary prose with dates, amounts and a phone number.
LONG = (
    "Following up on the 2026-03-14 planning call: the Q2 budget is 1,250,000 EUR, travel is "
    "capped at 500 EUR per trip, and the team offsite runs 12-14 May in room 4.021. Call the "
    "front desk on +44 20 7946 0958 if the badge reader fails again. "
) * 8

LABELS = (Classification.PUBLIC, Classification.CONFIDENTIAL, Classification.RESTRICTED)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def scores(expected: Sequence[bool], got: Sequence[bool]) -> tuple[float, float, float, int, int]:
    tp = sum(e and g for e, g in zip(expected, got, strict=True))
    fp = sum(g and not e for e, g in zip(expected, got, strict=True))
    fn = sum(e and not g for e, g in zip(expected, got, strict=True))
    return (*prf(tp, fp, fn), fp, fn)


def timings_ms(classify: Callable[[str], object], texts: Sequence[str], repeat: int) -> list[float]:
    for t in texts:
        classify(t)
    per: list[float] = []
    for t in texts:
        start = time.perf_counter()
        for _ in range(repeat):
            classify(t)
        per.append((time.perf_counter() - start) / repeat * 1000)
    return per


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)

    rows = corpus.load()
    dept = corpus.DEPARTMENT
    classifiers = {
        "baseline (regex only)": PatternClassifier(libraries=False),
        "new (libraries + stems)": PatternClassifier(),
    }
    n_sens = sum(r.sensitive for r in rows)
    print(
        f"corpus: {len(rows)} strings ({n_sens} sensitive, {len(rows) - n_sens} public, "
        f"{sum(r.accepted_fp for r in rows)} marked accepted-fp); "
        f"python {platform.python_version()}, {platform.machine()}\n"
    )
    header = f"{'classifier':<24} {'label':<13} {'prec':>5} {'rec':>5} {'F1':>5} {'FP':>3} {'FN':>3}"
    print(header + f" {'ms p50':>7} {'ms p95':>7} {'ms 2kB':>7}")
    print("-" * (len(header) + 24))
    for name, clf in classifiers.items():
        got = [clf.classify(r.text, dept)[0] for r in rows]
        for label in LABELS:
            p, r, f, fp, fn = scores([x.label == label for x in rows], [g == label for g in got])
            print(f"{name:<24} {label.label:<13} {p:5.2f} {r:5.2f} {f:5.2f} {fp:3d} {fn:3d}")
        sensitive = [g >= Classification.CONFIDENTIAL for g in got]
        p, r, f, fp, fn = scores([x.sensitive for x in rows], sensitive)
        classify = functools.partial(clf.classify, department=dept)
        per = timings_ms(classify, [x.text for x in rows], args.repeat)
        p50, p95 = statistics.median(per), statistics.quantiles(per, n=20)[-1]
        (long,) = timings_ms(classify, [LONG], args.repeat)
        print(
            f"{name:<24} {'sensitive':<13} {p:5.2f} {r:5.2f} {f:5.2f} {fp:3d} {fn:3d}"
            f" {p50:7.3f} {p95:7.3f} {long:7.3f}"
        )
        under = sum(g < x.label for g, x in zip(got, rows, strict=True))
        print(f"{'':<24} {'under-labelled':<13} {under:>5d} (rows labelled less sensitive than expected)")
        print()


if __name__ == "__main__":
    main()
