"""Every answer deptbot renders for Teams stays within Teams' published limits (see ``limits``).

Citation keywords (≤ 3, ≤ 28 characters each), names (≤ 80), abstracts (≤ 160), at most 20
citations with every ``[n]`` in the text pointing at one of them, and Adaptive Card basics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest

from bot.adapters.teams import render as tr
from bot.config import Company
from bot.core.types import Answer, Citation, Status
from tests.adapters.teams.conftest import Harness
from tests.adapters.teams.limits import card_problems, problems, units
from tests.fakes import FakeRetriever, add_document

LONG_DEPARTMENT = "people-operations-and-workplace-services"  # 39 characters
LONG_FILE = "knowledge/hr/annual-leave-and-carry-over-rules-2026.md"  # a 43-character name


def _citation(n: int, **kw: object) -> Citation:
    fields: dict[str, object] = dict(
        n=n,
        title=f"Policy {n}",
        path=f"knowledge/hr/policy-{n}.md",
        department="hr",
        score=0.5,
        snippet=f"Snippet {n}",
    )
    fields.update(kw)
    return Citation(**fields)  # type: ignore[arg-type]


def _answer(citations: tuple[Citation, ...], text: str, **kw: object) -> Answer:
    fields: dict[str, object] = dict(
        text=text,
        request_id="7f3c2a0b1c2d",
        citations=citations,
        department="hr",
        department_title="Human Resources",
    )
    fields.update(kw)
    return Answer(**fields)  # type: ignore[arg-type]


def _claims(activity: dict[str, object]) -> list[dict[str, object]]:
    [entity] = activity["entities"]  # type: ignore[misc]
    return list(entity["citation"])


# ── 1. keywords ─────────────────────────────────────────────────────────────────────────


def test_keywords_of_long_department_and_file_names_fit_in_28_characters() -> None:
    cite = _citation(1, department=LONG_DEPARTMENT, path=LONG_FILE)
    activity = tr.render_answer(_answer((cite,), "You get 25 days [1]."), kind=tr.PERSONAL)
    keywords = _claims(activity)[0]["appearance"]["keywords"]  # type: ignore[index]
    assert 1 <= len(keywords) <= 3
    assert all(0 < units(k) <= 28 for k in keywords), keywords
    assert keywords[0].startswith("people-operations")
    assert problems(activity) == []


def test_limits_count_utf16_units_so_emoji_names_fit_too() -> None:
    cite = _citation(1, title="🏖️ " * 40, department="🌍" * 20, path="knowledge/hr/" + "📄" * 20 + ".md")
    activity = tr.render_answer(_answer((cite,), "See [1]."), kind=tr.PERSONAL)
    appearance = _claims(activity)[0]["appearance"]
    assert units(appearance["name"]) <= 80  # type: ignore[index]
    assert all(units(k) <= 28 for k in appearance["keywords"])  # type: ignore[index]
    assert problems(activity) == []


# ── 3. more than 20 sources ───────────────────────────────────────────────────────────────


def _many(count: int) -> Answer:
    cites = tuple(_citation(n) for n in range(1, count + 1))
    text = " ".join(f"Rule {n} applies [{n}]." for n in range(1, count + 1))
    if count >= 3:
        text += f" See also [3][{count}]."
    return _answer(cites, text)


def test_more_than_20_sources_chat_text_cites_only_the_20_citations_it_carries() -> None:
    activity = tr.render_answer(_many(23), kind=tr.PERSONAL)
    claims = _claims(activity)
    assert [c["position"] for c in claims] == list(range(1, 21))
    text = str(activity["text"])
    assert {int(n) for n in re.findall(r"\[(\d+)\]", text)} == set(range(1, 21))
    assert "Rule 21 applies." in text and "See also [3]." in text  # sentences stay, markers go
    assert "More sources: Policy 21; Policy 22; Policy 23" in text  # nothing used is hidden
    assert problems(activity) == []


def test_more_than_20_sources_channel_card_lists_the_same_sources_as_its_text() -> None:
    activity = tr.render_answer(_many(23), kind=tr.CHANNEL)
    card = activity["attachments"][0]["content"]  # type: ignore[index]
    texts = " ".join(b["text"] for b in card["body"] if b["type"] == "TextBlock")
    facts = next(b for b in card["body"] if b["type"] == "FactSet")["facts"]
    assert [f["title"] for f in facts] == [f"[{n}]" for n in range(1, 21)]
    assert {int(n) for n in re.findall(r"\[(\d+)\]", texts)} == set(range(1, 21))
    assert "More sources: Policy 21; Policy 22; Policy 23" in texts
    assert card_problems(card) == [] and problems(activity) == []


def test_sources_only_answers_list_at_most_20_numbered_sources() -> None:
    answer = replace(
        _many(22), text="I found these documents but no answer in them.", status=Status.SOURCES_ONLY
    )
    activity = tr.render_answer(answer, kind=tr.PERSONAL)
    assert len(_claims(activity)) == 20
    assert "[21]" not in str(activity["text"]) and "Policy 21; Policy 22" in str(activity["text"])
    assert problems(activity) == []


@pytest.mark.parametrize("kind", [tr.PERSONAL, tr.GROUP, tr.CHANNEL])
@pytest.mark.parametrize("count", [0, 1, 20, 21, 40])
def test_every_rendering_passes_the_payload_checks(kind: str, count: int) -> None:
    answer = _many(count) if count else _answer((), "I don't know.", status=Status.DONT_KNOW)
    assert problems(tr.render_answer(answer, kind=kind)) == []
    if count:
        assert card_problems(tr.answer_card(answer, voted="up")) == []
    assert card_problems(tr.welcome_card()) == []


def test_the_checker_catches_what_teams_refuses() -> None:
    good = tr.render_answer(_many(2), kind=tr.PERSONAL)
    bad = replace(_many(2), text="See [1] and [7].")
    assert any("[7]" in p for p in problems(tr.render_answer(bad, kind=tr.PERSONAL)))
    entity = dict(good["entities"][0])  # type: ignore[index]
    claim = dict(entity["citation"][0])
    claim["appearance"] = {**claim["appearance"], "keywords": ["x" * 29, "a", "b", "c"]}
    entity["citation"] = [claim] * 21
    found = problems({**good, "entities": [entity, entity]})
    assert any("more than one root" in p for p in found)
    assert any("21 citations" in p for p in found)
    assert any("at most 3 keywords" in p for p in found)
    assert card_problems({"type": "AdaptiveCard", "version": "1.6", "body": [{"type": "Media"}]}) == [
        "version '1.6' (Teams renders 1.5 or earlier)",
        "body[0]: element type 'Media' is not one deptbot uses",
    ]


# ── end to end: the fake connector refuses what Teams would ─────────────────────────────


def test_answers_citing_long_file_names_are_accepted(
    teams: Callable[..., None], company: Company, retriever: FakeRetriever
) -> None:
    add_document(
        company,
        retriever,
        "hr/annual-leave-and-sabbatical-rules-for-2026.md",
        "# Sabbatical\n\nAfter seven years of service, employees may take a three-month sabbatical.\n",
    )

    async def scenario(h: Harness) -> None:
        posted = await h.ask(h.activity("Can I take a sabbatical after seven years of service?"))
        reply = posted[-1].body
        assert "entities" in reply, reply  # the cited answer itself, not an apology
        keywords = [k for c in _claims(reply) for k in c["appearance"]["keywords"]]  # type: ignore[index]
        assert any(k.startswith("annual-leave") for k in keywords), (keywords, reply["text"])

    teams(scenario)


def test_a_bracketed_number_in_a_listed_title_does_not_read_as_a_citation() -> None:
    cites = (_citation(1, title="Form [3] instructions"),)
    answer = _answer(cites, "I found these documents.", status=Status.SOURCES_ONLY)
    text = str(tr.render_answer(answer, kind=tr.PERSONAL)["text"])
    assert "[1] Form (3) instructions" in text and "[3]" not in text
