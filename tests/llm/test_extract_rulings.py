"""A "Can I …?" question is answered by a ruling on what it asks about (issue 15: "Can I
expense a client dinner with alcohol?" quoted the how-to-claim steps, whose example
mentions a dinner, instead of the rule on alcohol)."""

from __future__ import annotations

from bot.core.types import SourceChunk
from bot.llm.extract.select import candidates


def _chunk(n: int, text: str, anchor: str, doc: str) -> SourceChunk:
    return SourceChunk(
        chunk_id=f"finance/{doc}#{n}",
        doc_id=f"finance/{doc}",
        department="finance",
        title=doc.removesuffix(".md").replace("-", " ").capitalize(),
        path=f"knowledge/finance/{doc}",
        text=text,
        score=0.7 - n / 10,
        anchor=anchor,
    )


SOURCES = [
    _chunk(
        1,
        "- Submit claims in Expensify. Photograph each receipt with the app.\n"
        '- Choose the expense category and write the business purpose, for example "Dinner with '
        'Acme Corp during contract renewal".\n'
        "- Submit within 30 days of the expense. Claims older than 90 days are not reimbursed.",
        "How to claim",
        "expense-policy.md",
    ),
    _chunk(
        2,
        "- Personal items: clothing and toiletries.\n"
        "- Fines and penalties, including parking fines.\n"
        "- Alcohol without a meal, and minibar charges.",
        "What is not reimbursable",
        "expense-policy.md",
    ),
    _chunk(
        3,
        "Tips are reimbursable up to 10 % of the bill. Alcohol is allowed in moderation as part of a meal.",
        "Limits",
        "business-entertainment.md",
    ),
]


def test_can_i_question_quotes_the_ruling_not_the_procedure() -> None:
    best = candidates("Can I expense a client dinner with alcohol?", SOURCES)[0]
    assert "Alcohol" in best.unit.plain(), best.unit.plain()


def test_the_same_words_asked_as_how_keep_the_procedure() -> None:
    """Only permission questions look for a ruling: "how do I claim" wants the steps."""
    best = candidates("How do I claim a client dinner expense?", SOURCES)[0]
    assert best.source == 1 and "Expensify" in best.unit.plain()
