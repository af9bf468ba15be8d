"""A cached answer carries the sensitivity label today's rules give the request, never a
lower one from before a rule change (review s21, finding 8).

The label decides where later turns of the conversation may be sent (it travels into
Slack/Teams history metadata), so a hit is re-labelled: the text classifier runs again on
this request's own words, history and the department's current keywords and floor, and
the result is the higher of that and the label stored with the answer (which already
holds the documents' labels: the index version is part of the key).
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.types import Classification, Message, Status
from bot.llm.extractive import ExtractiveGenerator
from bot.sensitivity import PatternClassifier
from bot.store.cache import MemoryAnswerCache
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit

MEALS = "How much are meal expenses reimbursed per day?"


def _assistant(company: Company, retriever: FakeRetriever, audit: MemoryAudit) -> Assistant:
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=audit,
        classifier=PatternClassifier(),
        cache=MemoryAnswerCache(),
    )


def _ask(assistant: Assistant, text: str = MEALS, user: str = "dave@example.com") -> object:
    return assistant.ask(Message(user_id=user, email=user, text=text, department="finance"))


def _edit_finance(tmp_path: Path, extra: str) -> Company:
    path = tmp_path / "departments" / "finance.yaml"
    path.write_text(path.read_text() + extra)
    return load_company(tmp_path / "departments")


def test_a_keyword_added_after_caching_raises_the_cached_answers_label(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit, tmp_path: Path
) -> None:
    assistant = _assistant(company, retriever, audit)
    first = _ask(assistant)
    assert first.status is Status.ANSWERED and first.classification is Classification.INTERNAL  # type: ignore[attr-defined]
    assistant.reconfigure(_edit_finance(tmp_path, 'sensitive_keywords: ["meal"]\n'))
    again = _ask(assistant)
    assert again.cache_hit  # type: ignore[attr-defined]
    assert again.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]
    fresh = _ask(assistant, "What is the daily meal allowance when travelling for work?")
    assert fresh.classification is again.classification  # type: ignore[attr-defined]


def test_a_raised_department_floor_raises_the_cached_answers_label(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit, tmp_path: Path
) -> None:
    assistant = _assistant(company, retriever, audit)
    assert _ask(assistant).classification is Classification.INTERNAL  # type: ignore[attr-defined]
    path = tmp_path / "departments" / "finance.yaml"
    path.write_text(path.read_text().replace("classification: internal", "classification: confidential"))
    assistant.reconfigure(load_company(tmp_path / "departments"))
    again = _ask(assistant)
    assert again.cache_hit and again.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]


def test_a_cached_label_never_goes_down_on_a_hit(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit, tmp_path: Path
) -> None:
    """The stored label holds the documents' labels, which a hit cannot see again: the
    re-label only ever raises it (fail closed), and a refresh or the TTL clears it."""
    company = _edit_finance(tmp_path, 'sensitive_keywords: ["meal"]\n')
    assistant = _assistant(company, retriever, audit)
    assert _ask(assistant).classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]
    path = tmp_path / "departments" / "finance.yaml"
    path.write_text(path.read_text().replace('sensitive_keywords: ["meal"]\n', ""))
    assistant.reconfigure(load_company(tmp_path / "departments"))
    again = _ask(assistant)
    assert again.cache_hit and again.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]


def test_a_classifier_that_fails_on_a_hit_labels_it_restricted(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit
) -> None:
    assistant = _assistant(company, retriever, audit)
    assert _ask(assistant).status is Status.ANSWERED  # type: ignore[attr-defined]

    class Broken:
        def classify(self, text: str, department: object) -> tuple[Classification, tuple[str, ...]]:
            raise RuntimeError("detector crashed")

    assistant._classifier = Broken()  # type: ignore[assignment]
    again = _ask(assistant)
    assert again.cache_hit and again.classification is Classification.RESTRICTED  # type: ignore[attr-defined]
