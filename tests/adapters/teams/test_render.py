"""The outbound half of the adapter: Answer in, activity dicts and Adaptive Cards out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.adapters.teams import render as tr
from bot.core.types import Answer, Citation, Status


def _answer(**kw: object) -> Answer:
    cites = (
        Citation(
            n=1,
            title="Time off policy",
            path="knowledge/hr/time-off.md",
            department="hr",
            score=0.8,
            snippet="Full-time employees receive 25 days " + "x" * 300,
            anchor="Annual vacation",
            modified=datetime(2026, 9, 14, tzinfo=UTC),
        ),
    )
    fields: dict[str, object] = dict(
        text="You get 25 days [1].",
        request_id="7f3c2a0b1c2d",
        citations=cites,
        department="hr",
        department_title="Human Resources",
    )
    fields.update(kw)
    return Answer(**fields)  # type: ignore[arg-type]


def test_chat_answer_has_ai_entity_and_feedback() -> None:
    act = tr.render_answer(_answer(generator="anthropic"), kind=tr.PERSONAL)
    assert act["channelData"] == {"feedbackLoopEnabled": True}
    [entity] = act["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    appearance = entity["citation"][0]["appearance"]
    assert appearance["name"] == "Time off policy › Annual vacation"
    assert len(appearance["abstract"]) <= 160
    assert "request 7f3c2a0b1c2d" in act["text"]


def test_denials_and_errors_are_plain_text() -> None:
    for status in (Status.DENIED, Status.ERROR):
        act = tr.render_answer(_answer(status=status, citations=()), kind=tr.GROUP)
        assert set(act) == {"type", "text", "textFormat"}


def test_dont_know_gets_feedback_but_no_ai_label() -> None:
    act = tr.render_answer(_answer(status=Status.DONT_KNOW, citations=()), kind=tr.PERSONAL)
    assert act["channelData"]["feedbackLoopEnabled"] and "entities" not in act


def test_channel_answer_is_a_card_with_sources_and_votes() -> None:
    act = tr.render_answer(_answer(), kind=tr.CHANNEL)
    card = act["attachments"][0]["content"]
    assert card["version"] == tr.CARD_VERSION
    facts = card["body"][2]["facts"]
    assert facts == [
        {"title": "[1]", "value": "Time off policy › Annual vacation · Human Resources · updated 2026-09-14"}
    ]
    assert [a["data"] for a in card["actions"]] == [
        {"deptbot": "feedback", "value": v, "request_id": "7f3c2a0b1c2d"} for v in ("up", "down")
    ]
    voted = tr.answer_card(_answer(), voted="up")
    assert "actions" not in voted and "👍" in voted["body"][-1]["text"]


@pytest.mark.parametrize(
    ("raw", "bad", "kept"),
    [
        (
            "see [the form](https://evil.example/x) now [1]",
            "](",
            "the form (`https://evil.example/x`) now [1]",
        ),
        ("visit https://evil.example/login today", "visit https", "`https://evil.example/login`"),
        ("or www.evil.example", "or www", "`www.evil.example`"),
        ("<at>Everyone</at> look", "<at>", "&lt;at&gt;Everyone&lt;/at&gt;"),
        ('<a href="x">y</a>', "<a", "&lt;a href"),
        ("![img](javascript:alert(1))", "![", "img (`javascript:alert(1`)"),
        ("already `https://x.example` code", "``", "`https://x.example`"),
    ],
)
def test_neutralize(raw: str, bad: str, kept: str) -> None:
    out = tr.neutralize(raw)
    assert bad not in out and kept in out


def test_neutralize_for_cards_keeps_text_readable() -> None:
    assert tr.neutralize("a <at>b</at> & c", for_card=True) == "a ‹at›b‹/at› & c"


def test_refresh_report_names_failed_files() -> None:
    from bot.core.ports import FailedFile, IndexReport

    report = IndexReport(
        department="hr",
        added=3,
        changed=2,
        removed=1,
        unchanged=304,
        seconds=41.2,
        failed=(FailedFile("knowledge/hr/old-handbook.pdf", "not a valid PDF"),),
    )
    assert tr.refresh_text("HR", report) == (
        "HR knowledge refreshed in 41 s: 3 added, 2 changed, 1 removed, 304 unchanged, 1 failed "
        "(old-handbook.pdf: not a valid PDF)."
    )


def test_channel_card_sources_cannot_carry_live_links() -> None:
    """FactSet values render Markdown: a document title must not become a clickable link."""
    cite = _answer().citations[0]
    evil = type(cite)(**{**cite.__dict__, "title": "[Reset your password](https://evil.example/login)"})
    card = tr.render_answer(_answer(citations=(evil,)), kind=tr.CHANNEL)["attachments"][0]["content"]
    facts = next(b for b in card["body"] if b["type"] == "FactSet")["facts"]
    assert "](https://" not in facts[0]["value"]
    assert "Reset your password" in facts[0]["value"]


def test_citation_links_only_to_https_docs_url() -> None:
    from dataclasses import replace

    base = _answer()
    linked = replace(
        base, citations=(replace(base.citations[0], url="https://intranet.example.com/hr/t.md"),)
    )
    [entity] = tr.render_answer(linked, kind=tr.PERSONAL)["entities"]
    assert entity["citation"][0]["appearance"]["url"] == "https://intranet.example.com/hr/t.md"
    plain_http = replace(base, citations=(replace(base.citations[0], url="http://intranet/hr/t.md"),))
    [entity] = tr.render_answer(plain_http, kind=tr.PERSONAL)["entities"]
    assert "url" not in entity["citation"][0]["appearance"]
