"""The ``evals:`` block of a department file: answer-level checks ``deptbot eval --qa`` runs
through the real pipeline (``bot.evals.qa``).

Why in the department file: the people who own a department's documents know which
questions it must answer, which facts the answer must contain, and which questions it must
refuse; keeping them next to the access rules means a refresh or a config change can be
checked against them (the operations issue runs them after each refresh).

    evals:
      user: grace@example.com     # who asks (default: the first admin who may ask)
      min_source_hit: 0.8         # share of answerable cases citing an expected document
      min_fact_hit: 0.8           # share of answerable cases whose answer has every fact
      min_refusal: 0.8            # share of unanswerable cases answered "I don't know"
      max_p95_ms: 5000            # optional latency bound
      cases:
        - question: How many vacation days do I get?
          sources: [time-off.md]  # relative to the knowledge folder, or "hr/time-off.md"
          facts: ["25 days"]      # each must appear; "a|b" accepts either
        - question: What is on the cafeteria menu?
          unanswerable: true
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _email(value: str) -> str:
    if "@" not in value or value.strip() != value:
        raise ValueError("must be an e-mail address")
    return value


Email = Annotated[str, AfterValidator(_email)]  # who an eval case is asked as


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalCase(_Strict):
    """One question and what a correct answer (or refusal) looks like."""

    question: str = Field(min_length=1, max_length=4000)
    sources: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    unanswerable: bool = False
    user: Email | None = None  # ask as this person instead of the block's user
    department: str | None = None  # eval files only: ask this department ("auto": route)

    @model_validator(mode="after")
    def _consistent(self) -> EvalCase:
        if self.unanswerable and (self.sources or self.facts):
            raise ValueError("an unanswerable case has no sources or facts")
        if not self.unanswerable and not (self.sources or self.facts):
            raise ValueError("give sources, facts, or unanswerable: true")
        return self


class Evals(_Strict):
    """A department's eval cases and the bars they must clear."""

    user: Email | None = None
    min_source_hit: float = Field(default=0.8, ge=0.0, le=1.0)
    min_fact_hit: float = Field(default=0.8, ge=0.0, le=1.0)
    min_refusal: float = Field(default=0.8, ge=0.0, le=1.0)
    max_p95_ms: float | None = Field(default=None, gt=0)
    cases: list[EvalCase] = Field(min_length=1, max_length=1000)
