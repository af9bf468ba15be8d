"""One regression rule for the console's Evals page and the eval-regression alert: the
page highlights exactly the drops an admin was alerted about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.admin.insights import EVAL_TOLERANCE, regressions
from bot.ops.alerts import regressions as alerted
from bot.store.evalruns import EvalRun

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _run(hours: int, **scores: float | None) -> EvalRun:
    base: dict[str, float | None] = {"source_hit": 1.0, "fact_hit": 1.0, "answered": 1.0, "refusal": 1.0}
    base.update(scores)
    return EvalRun(
        department="hr",
        time=T0 + timedelta(hours=hours),
        trigger="refresh",
        cases=10,
        p50_ms=1.0,
        p95_ms=2.0,
        passed=True,
        below=(),
        **base,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "after",
    [
        {"fact_hit": 0.93},  # 7 points: neither
        {"fact_hit": 0.9},  # exactly 10 points: both
        {"fact_hit": 0.5, "answered": 0.85, "refusal": None},  # two drops; an unmeasured score is skipped
    ],
)
def test_console_highlights_what_the_alert_reports(after: dict[str, float | None]) -> None:
    older, newer = _run(0), _run(1, **after)
    on_page = {r.metric.replace("_", " ") for r in regressions([newer, older], EVAL_TOLERANCE)}
    told = {line.rsplit(" ", 3)[0] for line in alerted(older, newer)}
    assert on_page == told
