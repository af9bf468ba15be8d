"""The words that form a question ("how often") are not what it is about (issue 15)."""

from __future__ import annotations

from bot.core.types import SourceChunk
from bot.llm.extract.select import candidates
from bot.llm.extract.text import question_words


def _chunk(n: int, text: str, anchor: str, doc: str) -> SourceChunk:
    return SourceChunk(
        chunk_id=f"it/{doc}#{n}",
        doc_id=f"it/{doc}",
        department="it",
        title=doc,
        path=f"knowledge/it/{doc}",
        text=text,
        score=0.7 - n / 10,
        anchor=anchor,
    )


def test_how_often_is_the_question_form_not_a_key_term() -> None:
    words = {w for w in question_words("How often are laptops replaced?").values()}
    assert "often" not in words and {"laptop", "replac"} <= words
    assert "long" not in set(question_words("How long do we keep invoices?").values())
    assert "long" in set(question_words("Is there a long notice period?").values())


def test_a_section_headed_how_often_does_not_answer_another_how_often_question() -> None:
    """IT's eval "How often are laptops replaced?" quoted the MFA page's "How often you are
    asked" list (heading words "how often" counted as the question's key terms)."""
    sources = [
        _chunk(
            1,
            "- Laptops are replaced every 4 years (Standard) or 3 years (Developer and Design).",
            "Replacement cycle",
            "laptop-request.md",
        ),
        _chunk(
            2,
            "- On a managed laptop in the office or on VPN: once every 12 hours.\n"
            "- On a new or unmanaged device: every sign-in.",
            "How often you are asked",
            "mfa.md",
        ),
    ]
    best = candidates("How often are laptops replaced?", sources)[0]
    assert best.source == 1 and "4 years" in best.unit.plain()
