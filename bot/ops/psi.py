"""Population stability index (PSI) of retrieval scores: has the distribution of the
answers' ``confidence`` (the audit log's retrieval/assessment score, 0..1) moved?

Why PSI: it is the drift measure credit-risk and ML-monitoring teams already read, it needs
no model, and its usual reading carries over — below 0.1 nothing moved, 0.1–0.25 some
shift, above 0.25 a large one (a re-indexed folder, a changed embedder, documents removed,
or people asking about something new).

Bins (documented, fixed so two runs are comparable): ten equal-width bins over [0, 1] —
[0, 0.1), [0.1, 0.2), …, [0.9, 1.0]; scores outside [0, 1] are clamped into the end bins.
A bin empty on one side would make the logarithm infinite, so every share is floored at
``EPSILON`` (1e-4) before the sum:

    PSI = Σ_bins (actual − expected) · ln(actual / expected)

``expected`` is the baseline (the trailing days), ``actual`` the last day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BINS = 10
EPSILON = 1e-4


def shares(values: Sequence[float], bins: int = BINS) -> list[float]:
    """Share of ``values`` in each equal-width bin over [0, 1] (all zeros when empty)."""
    counts = [0] * bins
    for v in values:
        i = int(min(max(v, 0.0), 1.0) * bins)
        counts[min(i, bins - 1)] += 1
    total = len(values)
    return [c / total if total else 0.0 for c in counts]


def psi_of_shares(expected: Sequence[float], actual: Sequence[float]) -> float:
    if len(expected) != len(actual):
        raise ValueError("both distributions need the same bins")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def psi(baseline: Sequence[float], recent: Sequence[float], bins: int = BINS) -> float:
    """PSI of ``recent`` scores against ``baseline`` scores (see the module docstring)."""
    return psi_of_shares(shares(baseline, bins), shares(recent, bins))
