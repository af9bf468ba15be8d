"""The offline answerer quotes whole units: table rows by amount, lists with their items,
the variant the question names, never a cut sentence (issue #15, item 2)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.render import Table, parts
from bot.core.types import GenerationRequest, SourceChunk
from bot.llm.extract.amounts import question_amounts, ranges
from bot.llm.extract.units import LIST, PARAGRAPH, TABLE, split_units
from bot.llm.extractive import ExtractiveGenerator

APPROVALS = """Who signs off on a purchase depends on its total value, excluding VAT.

| Order value | Who approves | Quotes |
|---|---|---|
| up to €5,000 | Budget holder | 1 quote |
| €5,000.01 – €25,000 | Budget holder and department head | 2 quotes |
| €25,000.01 – €50,000 | Department head and Finance Director | 3 quotes |
| above €50,000 | Finance Director and CEO | Tender |
"""

PASSWORDS = """Passwords do not expire on a schedule. You must change your password immediately when:

- you suspect someone else knows it;
- the Help Desk asks you to;
- a temporary password was issued to you.
"""

LEAVE = """Birth parents receive 20 weeks of fully paid leave, starting up to four weeks before the due date.

Fathers and partners (non-birth parents) receive 12 weeks of fully paid leave within a year of the birth.

Leave for twins is the same as for one child."""


def chunk(
    text: str, *, title: str = "Purchasing rules", anchor: str = "Approval limits", n: int = 1
) -> SourceChunk:
    return SourceChunk(
        chunk_id=f"c{n}",
        doc_id=f"finance/doc{n}.md",
        department="finance",
        title=title,
        path=f"knowledge/finance/doc{n}.md",
        text=text,
        score=0.8,
        anchor=anchor,
    )


def ask(question: str, *sources: SourceChunk) -> str:
    request = GenerationRequest(question, "finance", "Finance", tuple(sources))
    return ExtractiveGenerator().generate(request).text


def table_rows(text: str) -> list[tuple[str, ...]]:
    [table] = [p for p in parts(text) if isinstance(p, Table)]
    return list(table.rows)


def test_an_amount_picks_the_row_whose_range_contains_it() -> None:
    text = ask("Who approves a purchase of 12,000 euros?", chunk(APPROVALS))
    assert text.startswith("From Purchasing rules › Approval limits [1]:")
    rows = table_rows(text)
    assert rows == [("€5,000.01 – €25,000", "Budget holder and department head", "2 quotes")]
    assert "| Order value | Who approves | Quotes |" in text  # the header comes with it


def test_a_large_amount_picks_the_open_ended_row() -> None:
    rows = table_rows(ask("Who can sign a 100,000 euro contract?", chunk(APPROVALS)))
    assert rows == [("above €50,000", "Finance Director and CEO", "Tender")]


def test_amounts_are_read_as_people_write_them() -> None:
    assert question_amounts("a €12k laptop") == [12000.0]
    assert question_amounts("EUR 2.5m deal in 2026") == [2_500_000.0]  # a bare year is not an amount
    assert question_amounts("12,000 euros") == [12000.0]
    assert ranges("up to €5,000")[0].contains(5000) and not ranges("up to €5,000")[0].contains(5000.01)
    assert ranges("over 50k")[0].contains(50001) and not ranges("over 50k")[0].contains(50000)
    assert ranges("€1,000 to €2,000")[0].contains(1500)
    assert ranges("3 written quotes") == []  # a lone number is not a range


def test_a_question_about_the_whole_small_table_gets_all_of_it() -> None:
    rows = table_rows(ask("What are the purchase approval limits?", chunk(APPROVALS)))
    assert len(rows) == 4


def test_a_list_question_gets_the_intro_and_every_item() -> None:
    text = ask(
        "How often must I change my password?",
        chunk(PASSWORDS, title="Password policy", anchor="How often to change it"),
    )
    assert "You must change your password immediately when:" in text
    for item in (
        "- you suspect someone else knows it;",
        "- the Help Desk asks you to;",
        "- a temporary password",
    ):
        assert item in text
    assert "when [1]" not in text and not re.search(r"when:\s*$", text)


def test_the_variant_the_question_names_wins() -> None:
    source = chunk(LEAVE, title="Parental leave", anchor="How much leave")
    fathers = ask("How much parental leave do fathers get?", source)
    assert "Fathers and partners (non-birth parents) receive 12 weeks" in fathers
    assert "Birth parents receive 20 weeks" not in fathers
    birth = ask("How much leave does the birth parent get?", source)
    assert "Birth parents receive 20 weeks" in birth


def test_table_rows_named_by_the_question_are_preferred() -> None:
    table = (
        "| Type | Fully paid | Unpaid |\n|---|---|---|\n| Birth parent leave | 20 weeks | 12 weeks |\n"
        "| Non-birth parent leave | 12 weeks | 12 weeks |\n| Adoption leave | 16 weeks | 12 weeks |\n"
        "| Foster placement | 16 weeks | 12 weeks |\n"
    )
    rows = table_rows(ask("How much birth parent leave is fully paid?", chunk(table, title="Parental leave")))
    assert rows == [("Birth parent leave", "20 weeks", "12 weeks")]


def test_the_generation_says_what_it_quoted() -> None:
    request = GenerationRequest("Who approves 12,000 euros?", "finance", "Finance", (chunk(APPROVALS),))
    generation = ExtractiveGenerator().generate(request)
    [first, *_] = generation.quoted
    assert (first.source, first.chunk_id, first.kind, first.rows_by) == (1, "c1", TABLE, "amount")
    assert 0 < first.coverage <= 1


def test_a_chunk_cut_mid_sentence_is_quoted_from_its_first_whole_sentence() -> None:
    units = split_units("employees who joined before 2020. New starters get 25 days a year. The rest is")
    assert [u.text for u in units] == ["New starters get 25 days a year."]


def test_an_intro_without_its_list_is_not_shown() -> None:
    units = split_units("Passwords do not expire. You must change your password immediately when:")
    assert [u.text for u in units] == ["Passwords do not expire."]


def test_a_table_repeated_header_is_not_a_row() -> None:
    [unit] = split_units("| A | B |\n|---|---|\n| 1 | 2 |\n| A | B |\n|---|---|\n| 3 | 4 |")
    assert unit.rows == (("1", "2"), ("3", "4"))


_WORDS = st.sampled_from(
    "the leave policy approves budget owner days weeks €5,000 up to above parental when: "  # noqa: SIM905
    "must change password you apply for and a is of 12 20 quotes".split()
)
_LINE = st.one_of(
    st.lists(_WORDS, min_size=1, max_size=14).map(" ".join),
    st.lists(_WORDS, min_size=1, max_size=14).map(lambda ws: " ".join(ws) + "."),
    st.lists(_WORDS, min_size=1, max_size=6).map(lambda ws: "- " + " ".join(ws)),
    st.lists(_WORDS, min_size=1, max_size=6).map(lambda ws: "1. " + " ".join(ws) + ";"),
    st.lists(st.lists(_WORDS, min_size=1, max_size=3).map(" ".join), min_size=2, max_size=3).map(
        lambda cells: "| " + " | ".join(cells) + " |"
    ),
    st.just("|---|---|"),
    st.just(""),
    st.just("## Heading"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, min_size=1, max_size=14).map("\n".join))
def test_no_emitted_unit_is_a_fragment(text: str) -> None:
    for unit in split_units(text):
        if unit.kind == PARAGRAPH:
            assert re.search(r"[.!?…][\"'”’)\]]*$", unit.text), unit
        if unit.intro:
            assert re.search(r"[.!?:…][\"'”’)\]]*$", unit.intro), unit
        if unit.kind == LIST:
            assert unit.items and all(re.match(r"\s*(?:-|\d{1,3}[.)]) \S", i) for i in unit.items), unit
        if unit.kind == TABLE:
            assert unit.header and unit.rows and all(len(r) == len(unit.header) for r in unit.rows), unit
    answer = ask("leave policy password budget owner 12", chunk(text))
    for part in parts(answer):
        if isinstance(part, Table):
            assert part.rows
            continue
        for paragraph in part.text.split("\n\n"):
            last = paragraph.rstrip().splitlines()[-1]
            is_item = re.match(r"\s*(?:-|\d{1,3}[.)]) ", last)
            assert is_item or re.search(r"[.!?:…][\"'”’)\]]*$", last), (paragraph, answer)


def test_a_long_list_keeps_its_intro_and_the_matching_items() -> None:
    items = "\n".join(f"- Rule {n}: desks are cleaned on day {n}." for n in range(1, 15))
    text = ask(
        "Which rule covers the printer toner?",
        chunk(f"Office rules:\n\n{items}\n- Rule 15: printer toner is in room 2."),
    )
    assert "Office rules:" in text and "- Rule 15: printer toner is in room 2." in text
    assert "- Rule 3:" not in text and "of the 15 items; the source has the rest." in text


def test_a_numbered_heading_is_not_a_one_item_list() -> None:
    units = split_units(
        "1. Scope\n\nThe policy covers mail and files.\n\n"
        "2. Laptops are not backed up\n\nStore files in Drive."
    )
    assert [(u.kind, u.heading, u.text) for u in units] == [
        (PARAGRAPH, "Scope", "The policy covers mail and files."),
        (PARAGRAPH, "Laptops are not backed up", "Store files in Drive."),
    ]


def test_a_numbered_heading_right_above_bullets_is_their_heading() -> None:
    [unit] = split_units("2. HOW TO REPORT THAT YOU ARE SICK\n- Tell your manager.\n- Record it in Workday.")
    assert unit.kind == LIST and unit.heading == "HOW TO REPORT THAT YOU ARE SICK"
    assert unit.items == ("- Tell your manager.", "- Record it in Workday.")


# A typed question ("how long", "what are the … allowances") is answered by the unit that
# holds that kind of value next to its key terms, from whichever source has it, and a
# table whose section names the question's qualifier beats prose that mentions it in passing.
GREENHOUSE_INTRO = """This procedure explains how seed samples are received, labelled and checked
by the greenhouse team. Following it means every sample can be traced and none is lost.

HOW SAMPLES ARRIVE

- Growers post seed samples in sealed envelopes to the greenhouse office. Samples handed
  over in person are logged the same day.
- Seed samples are registered in the lab system within 2 working days. The team checks
  each label against the form.
"""
GREENHOUSE_LABELS = "Each seed sample gets a barcode label with the grower, variety and harvest year."
GREENHOUSE_GROWERS = "Growers who send samples for the first time fill in the grower form."
GREENHOUSE_RECORDS = """Germination results are entered on the day of the test.

RECORDS

Samples and their test records are stored in the cold room for 7 years, as the certification body requires.
"""


def test_the_unit_with_the_asked_for_value_wins_from_a_lower_ranked_source() -> None:
    sources = [
        chunk(GREENHOUSE_INTRO, title="Seed sample handling", anchor="", n=1),
        chunk(GREENHOUSE_LABELS, title="Seed sample handling", anchor="Labels", n=2),
        chunk(GREENHOUSE_GROWERS, title="Grower onboarding", anchor="", n=3),
        chunk(GREENHOUSE_LABELS.replace("barcode", "printed"), title="Grower onboarding", anchor="", n=4),
        chunk(GREENHOUSE_GROWERS.replace("first", "second"), title="Grower onboarding", anchor="", n=5),
        chunk(GREENHOUSE_RECORDS, title="Seed sample handling", anchor="", n=6),
    ]
    text = ask("How long do we keep seed samples?", *sources)
    assert "7 years" in text.split("\n\n")[1], text


ALLOWANCE_REVIEW = """- The allowance budget for 2026 rises by 4 % across all travel allowances.
- Allowances were raised by an average of 3 % compared with 2025 (contractors +2 %, staff +3.5 %).
- Receipts are needed for any claim above 10 % of the daily allowance.
"""
ALLOWANCE_CONTRACTORS = """| Grade | Role examples | Daily | Monthly cap |
|---|---|---|---|
| C1 | Field contractor | €40 | €600 |
| C2 | Senior field contractor | €55 | €800 |
| C3 | Lead contractor | €70 | €1,000 |
"""
ALLOWANCE_STAFF = """| Grade | Role examples | Daily | Monthly cap |
|---|---|---|---|
| S1 | Field technician | €45 | €650 |
| S2 | Senior technician | €60 | €900 |
"""


def test_a_table_whose_section_names_the_qualifier_beats_prose_mentioning_it() -> None:
    title = "Travel allowances 2026"
    sources = [
        chunk(ALLOWANCE_REVIEW, title=title, anchor="Annual review", n=1),
        chunk(ALLOWANCE_CONTRACTORS, title=title, anchor="Contractors and agency staff", n=2),
        chunk(ALLOWANCE_STAFF, title=title, anchor="Employees", n=3),
    ]
    text = ask("What are the travel allowances for contractors?", *sources)
    assert text.startswith("From Travel allowances 2026 › Contractors and agency staff [2]:"), text
    assert "| C2 | Senior field contractor | €55 | €800 |" in text


def test_a_table_is_not_promoted_when_the_question_has_no_qualifier() -> None:
    # every term is the document's topic: no qualifier, the prose that answers stays first
    sources = [
        chunk(LEAVE, title="Parental leave", anchor="", n=1),
        chunk(ALLOWANCE_STAFF, title="Travel allowances 2026", anchor="Employees", n=2),
    ]
    text = ask("How much parental leave do fathers get?", *sources)
    assert "12 weeks" in text.split("\n\n")[1], text
