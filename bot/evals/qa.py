"""Answer-level evals: ask each configured question through the real pipeline, as a named
person, and score what came back.

Retrieval metrics (``deptbot eval BEIR_DIR``) say whether the right document ranks high;
they cannot see an answer that quotes the wrong table row, a "don't know" for a question
the documents answer, or a confident answer to one they do not. These evals can, because
they score ``Assistant.ask`` itself:

* **source hit** — answerable cases whose answer cites an expected document;
* **fact hit** — answerable cases whose answer contains every expected fact;
* **refusal** — unanswerable cases answered "I don't know" (not a guess);
* **latency** — median and p95 of the whole request, cache hits counted separately.

Access is never bypassed: each case is asked as a person (the block's ``user``, a case's
``user``, ``--user``, or by default the department's first admin who may ask it), and a
person who may not ask is a usage error before anything runs, not a silent skip. Output
names questions, statuses and cited documents, never answer text.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.config import Department
from bot.config.evals import EvalCase, Evals
from bot.core.pipeline import Assistant
from bot.core.types import Answer, Message, Status
from bot.errors import ConfigError, UsageError
from bot.store.evalruns import EvalRun
from bot.yamlstrict import load_file

AUTO = "auto"  # an eval-file case with ``department: auto`` is routed like any question


@dataclass(frozen=True)
class CaseResult:
    question: str
    user: str
    asked: str  # the department asked, or "auto"
    answered_by: str | None
    status: str
    unanswerable: bool
    source_hit: bool | None  # None: the case names no source
    fact_hit: bool | None  # None: the case names no fact
    missing_facts: tuple[str, ...]
    cited: tuple[str, ...]  # doc ids of the citations
    confidence: float
    latency_ms: float
    cached: bool

    @property
    def correct(self) -> bool:
        if self.unanswerable:
            return self.status == Status.DONT_KNOW.value
        return (
            self.status == Status.ANSWERED.value
            and self.source_hit is not False
            and self.fact_hit is not False
        )

    @property
    def wrong(self) -> bool:
        """Answered, and not correctly: worse than an honest refusal."""
        return self.status == Status.ANSWERED.value and not self.correct


@dataclass(frozen=True)
class Report:
    """One department's (or one eval file's) results against its thresholds."""

    name: str
    cases: tuple[CaseResult, ...]
    min_source_hit: float
    min_fact_hit: float
    min_refusal: float
    max_p95_ms: float | None
    failures: tuple[str, ...] = field(default=())

    def _share(self, pick: str) -> float | None:
        values = [getattr(c, pick) for c in self.cases if not c.unanswerable and getattr(c, pick) is not None]
        return sum(bool(v) for v in values) / len(values) if values else None

    @property
    def source_hit(self) -> float | None:
        return self._share("source_hit")

    @property
    def fact_hit(self) -> float | None:
        return self._share("fact_hit")

    @property
    def answered(self) -> float | None:
        asked = [c for c in self.cases if not c.unanswerable]
        return sum(c.status == Status.ANSWERED.value for c in asked) / len(asked) if asked else None

    @property
    def refusal(self) -> float | None:
        asked = [c for c in self.cases if c.unanswerable]
        return sum(c.status == Status.DONT_KNOW.value for c in asked) / len(asked) if asked else None

    def latency(self) -> tuple[float, float]:
        """(median, p95) in ms of uncached requests (all requests when every one was cached)."""
        values = [c.latency_ms for c in self.cases if not c.cached] or [c.latency_ms for c in self.cases]
        if len(values) == 1:
            return values[0], values[0]
        return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[-1]

    def below(self) -> list[str]:
        """Which thresholds the results miss (empty: passed)."""
        out: list[str] = []
        for label, value, bar in (
            ("source hit", self.source_hit, self.min_source_hit),
            ("fact hit", self.fact_hit, self.min_fact_hit),
            ("refusal", self.refusal, self.min_refusal),
        ):
            if value is not None and value < bar:
                out.append(f"{label} {value:.0%} < {bar:.0%}")
        p95 = self.latency()[1]
        if self.max_p95_ms is not None and p95 > self.max_p95_ms:
            out.append(f"p95 {p95:.0f} ms > {self.max_p95_ms:.0f} ms")
        return out

    @property
    def passed(self) -> bool:
        return not self.below()

    def as_dict(self) -> dict[str, Any]:
        median, p95 = self.latency()
        return {
            "name": self.name,
            "cases": len(self.cases),
            "answerable": sum(not c.unanswerable for c in self.cases),
            "unanswerable": sum(c.unanswerable for c in self.cases),
            "source_hit": self.source_hit,
            "fact_hit": self.fact_hit,
            "answered": self.answered,
            "refusal": self.refusal,
            "wrong_answers": sum(c.wrong for c in self.cases),
            "latency_ms": {"median": round(median, 1), "p95": round(p95, 1)},
            "thresholds": {
                "min_source_hit": self.min_source_hit,
                "min_fact_hit": self.min_fact_hit,
                "min_refusal": self.min_refusal,
                "max_p95_ms": self.max_p95_ms,
            },
            "below": self.below(),
            "passed": self.passed,
            "results": [{**asdict(c), "correct": c.correct} for c in self.cases],
        }


# ── matching ─────────────────────────────────────────────────────────────────────────

_MARKUP = re.compile(r"[*_`]|\[\d+\]")
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u00a0": " ", "\u202f": " ", "\u2009": " "})


def _normal(text: str) -> str:
    return " ".join(_MARKUP.sub("", text.translate(_DASHES)).lower().split())


def missing_facts(text: str, facts: Sequence[str]) -> tuple[str, ...]:
    """The facts (``"a|b"``: either) that ``text`` does not contain, case-insensitively."""
    body = _normal(text)
    return tuple(f for f in facts if not any(_normal(alt) in body for alt in f.split("|") if alt.strip()))


def source_matches(doc_id: str, expected: str, department: str | None) -> bool:
    """``expected`` is a doc id ("hr/time-off.md") or a path inside the department's folder."""
    expected = expected.strip().lstrip("/")
    return doc_id == expected or (department is not None and doc_id == f"{department}/{expected}")


def _source_hit(answer: Answer, case: EvalCase, asked: str | None) -> bool | None:
    if not case.sources:
        return None
    if answer.status is not Status.ANSWERED:
        return False
    dept = answer.department or asked
    return any(source_matches(c.doc_id, s, dept) for c in answer.citations for s in case.sources)


# ── running ──────────────────────────────────────────────────────────────────────────


def default_user(assistant: Assistant, dept: Department) -> str | None:
    """The first admin of ``dept`` (groups expanded) who may also ask it."""
    for email in assistant.admins_of(dept):
        if any(d.name == dept.name for d in assistant.departments_for(email)):
            return email
    return None


def _check_user(assistant: Assistant, user: str, dept: Department | None) -> None:
    askable = {d.name for d in assistant.departments_for(user)}
    if dept is None:
        if not askable:
            raise UsageError(f"{user} may not ask any department; choose another eval user.")
    elif dept.name not in askable:
        raise UsageError(
            f"{user} may not ask {dept.name}, so its evals cannot run as them; "
            "set evals.user or --user to someone the access rules allow."
        )


def run_case(
    assistant: Assistant, case: EvalCase, *, user: str, department: str | None, platform: str = "cli"
) -> CaseResult:
    """``platform`` is recorded in the audit log: "eval" for the scheduler's runs, so usage
    counts and alerts can leave eval traffic out."""
    started = time.perf_counter()
    message = Message(user_id=user, email=user, text=case.question, department=department, platform=platform)
    answer = assistant.ask(message)
    latency = (time.perf_counter() - started) * 1000
    answered = answer.status is Status.ANSWERED
    return CaseResult(
        question=case.question,
        user=user,
        asked=department or AUTO,
        answered_by=answer.department,
        status=answer.status.value,
        unanswerable=case.unanswerable,
        source_hit=_source_hit(answer, case, department),
        fact_hit=None if not case.facts else answered and not missing_facts(answer.text, case.facts),
        missing_facts=missing_facts(answer.text, case.facts) if case.facts else (),
        cited=tuple(dict.fromkeys(c.doc_id for c in answer.citations)),
        confidence=answer.confidence,
        latency_ms=round(latency, 1),
        cached=answer.cache_hit,
    )


def run_department(
    assistant: Assistant, dept: Department, *, user: str | None = None, platform: str = "cli"
) -> Report:
    """Run ``dept``'s ``evals:`` block, each case asked of ``dept`` explicitly."""
    evals = dept.evals
    if evals is None:
        raise UsageError(f"{dept.name} has no evals: block in its department file.")
    return _run(assistant, dept.name, evals, user=user, pinned=dept, platform=platform)


def run_file(assistant: Assistant, path: Path, *, user: str | None = None) -> Report:
    """Run an eval file (the ``evals:`` block's format; cases may name a ``department`` or
    ``auto``, the default, to be routed like any question)."""
    if not path.is_file():
        raise UsageError(f"No eval file at {path}.")
    data, _ = load_file(path)
    try:
        evals = Evals.model_validate(data)
    except ValueError as exc:
        first = str(exc).splitlines()[1:3]
        raise ConfigError(
            f"is not a valid eval file: {' '.join(s.strip() for s in first)}", file=path
        ) from None
    return _run(assistant, path.stem, evals, user=user, pinned=None)


def _run(
    assistant: Assistant,
    name: str,
    evals: Evals,
    *,
    user: str | None,
    pinned: Department | None,
    platform: str = "cli",
) -> Report:
    company = assistant.company
    plan: list[tuple[EvalCase, str, str | None]] = []
    for case in evals.cases:
        target = pinned.name if pinned else case.department
        dept = company.department(target) if target and target != AUTO else None  # unknown: usage error
        who = user or case.user or evals.user or (default_user(assistant, pinned) if pinned else None)
        if who is None:
            raise UsageError(
                f"No eval user for {name}: no admin of it may ask it; set evals.user or pass --user."
            )
        _check_user(assistant, who, dept)
        plan.append((case, who, dept.name if dept else None))
    results = tuple(
        run_case(assistant, case, user=who, department=dept, platform=platform) for case, who, dept in plan
    )
    return Report(
        name=name,
        cases=results,
        min_source_hit=evals.min_source_hit,
        min_fact_hit=evals.min_fact_hit,
        min_refusal=evals.min_refusal,
        max_p95_ms=evals.max_p95_ms,
    )


LABEL_CHARS = 80  # failing-case labels kept with a run: enough to recognise the case


def case_label(case: CaseResult) -> str:
    """A short label for a failing case: the eval question (configuration, not a real
    person's question), cut to ``LABEL_CHARS``."""
    text = " ".join(case.question.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def to_run(report: Report, *, department: str, trigger: str, when: datetime) -> EvalRun:
    """The aggregate of ``report`` as stored in the eval-run history (no answer text)."""
    p50, p95 = report.latency() if report.cases else (0.0, 0.0)
    return EvalRun(
        department=department,
        time=when,
        trigger=trigger,
        cases=len(report.cases),
        source_hit=report.source_hit,
        fact_hit=report.fact_hit,
        answered=report.answered,
        refusal=report.refusal,
        p50_ms=round(p50, 1),
        p95_ms=round(p95, 1),
        passed=report.passed,
        below=tuple(report.below()),
        failed_cases=tuple(case_label(c) for c in report.cases if not c.correct),
    )


def table(reports: Sequence[Report]) -> str:
    """One line per department plus one per failed case (no answer text)."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    head = (
        f"{'department':<14} {'cases':>5} {'source':>7} {'facts':>6} {'answered':>9} {'refusal':>8} "
        f"{'median':>8} {'p95':>8}  result"
    )
    lines = [head, "─" * len(head)]
    for r in reports:
        median, p95 = r.latency()
        verdict = "ok" if r.passed else "BELOW: " + "; ".join(r.below())
        lines.append(
            f"{r.name:<14} {len(r.cases):>5} {pct(r.source_hit):>7} {pct(r.fact_hit):>6} "
            f"{pct(r.answered):>9} {pct(r.refusal):>8} {median:>6.0f}ms {p95:>6.0f}ms  {verdict}"
        )
        for c in r.cases:
            if c.correct:
                continue
            why = (
                'answered, expected "I don\'t know"'
                if c.unanswerable
                else f"{c.status}"
                + (f", missing {', '.join(repr(f) for f in c.missing_facts)}" if c.missing_facts else "")
                + (
                    ", expected source not cited"
                    if c.source_hit is False and c.status == Status.ANSWERED.value
                    else ""
                )
            )
            cited = f" [{', '.join(c.cited)}]" if c.cited else ""
            lines.append(f"  ✗ {c.question} — {why}{cited}")
    return "\n".join(lines)
