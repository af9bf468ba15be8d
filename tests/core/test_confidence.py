"""Answer-level confidence: "the answer is here", not only "the topic is here"."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bot.config import Company, Department
from bot.core import citations, confidence, routing
from bot.core.pipeline import Assistant
from bot.core.types import AccessScope, Message, SourceChunk, Status
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, add_document

THRESHOLD = 0.35


def chunk(
    text: str, score: float, *, dept: str = "hr", title: str = "Policy", anchor: str = ""
) -> SourceChunk:
    return SourceChunk(
        chunk_id=f"{dept}/doc.md#0",
        doc_id=f"{dept}/doc.md",
        department=dept,
        title=title,
        path=f"knowledge/{dept}/doc.md",
        text=text,
        score=score,
        anchor=anchor,
    )


# ── the question's shape ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many vacation days do I get?", "amount"),
        ("How much does a webinar licence cost?", "money"),
        ("How much is the weekly allowance in euros?", "money"),
        ("How long is the probation period?", "duration"),
        ("How often must I change my password?", "duration"),
        ("When is the Q2 launch?", "date"),
        ("Which days are suppliers paid?", "date"),
        ("What is the payroll date this month?", "date"),
        ("What is the phone number for claims?", "phone"),
        ("What is the support e-mail address?", "email"),
        ("Can I work from home full time?", ""),
        ("How do I undo a bad release?", ""),
    ],
)
def test_answer_type(question: str, kind: str) -> None:
    assert confidence.answer_type(question) == kind


def test_asked_for_entities_and_live_state() -> None:
    assert confidence.asked_for("What is the cafeteria menu on Tuesday?") == "menu"
    assert confidence.asked_for("What is on the cafeteria menu today?") == "menu"
    assert confidence.asked_for("Which team owns the billing service?") == "team"
    assert confidence.asked_for("How do I book a desk?") == ""
    assert confidence.entities("What is the merit budget for 2028 at Northwind?") == ["2028", "Northwind"]
    assert confidence.entities("Is Grammarly allowed? I use it daily.") == ["Grammarly"]
    # personal data around a question is context, not what the answer must contain
    assert confidence.question_part("How many days carry over? I am jane@example.com, IBAN GB82.") == (
        "How many days carry over?"
    )
    for live in (
        "What is the status of my laptop order?",
        "Who is my onboarding buddy?",
        "How many vacation days do I have left?",
        "Who is on call this week?",
    ):
        assert confidence.assess(live, [chunk("Laptops and buddies and on call.", 0.8)]).live, live


# ── assess ────────────────────────────────────────────────────────────────────────────


def test_a_passage_about_the_topic_without_the_asked_thing_is_not_an_answer() -> None:
    topic = chunk("There is a cafeteria on the ground floor of the office, open from 8:00.", 0.6)
    judged = confidence.assess("What is on the cafeteria menu today?", [topic])
    assert judged.retrieval == 0.6  # the retriever was sure about the topic...
    assert "menu" in judged.missing_entities and judged.score < THRESHOLD  # ...not the answer


def test_a_typed_value_next_to_the_key_terms_raises_the_score() -> None:
    row = chunk(
        "| City | Limit per night |\n|---|---|\n| London, Paris | €260 |\n| Other cities | €150 |", 0.3
    )
    judged = confidence.assess("What is the hotel limit per night in London?", [row])
    assert judged.answer_type == "amount" and judged.type_found
    assert judged.score > THRESHOLD > judged.retrieval


def test_no_value_of_the_asked_type_lowers_the_score() -> None:
    text = "Contact Meridian Health directly using the number on your insurance card."
    judged = confidence.assess("What is the phone number for Meridian Health claims?", [chunk(text, 0.8)])
    assert judged.answer_type == "phone" and not judged.type_found
    assert judged.score < THRESHOLD
    listed = chunk("Meridian Health claims: call +44 20 5555 0199, 24/7.", 0.8)
    assert confidence.assess("What is the phone number for Meridian Health claims?", [listed]).score > 0.8


def test_a_value_next_to_another_subject_does_not_count() -> None:
    rows = chunk(
        "| Product | Licence | Notes |\n|---|---|---|\n"
        "| Adobe Acrobat Pro | Paid | About 190 EUR per user per year |\n"
        "| Adobe Creative Cloud | Paid | Design team only |",
        0.5,
    )
    judged = confidence.assess("How much does an Adobe Creative Cloud licence cost per year?", [rows])
    assert judged.answer_type == "money" and not judged.type_found and judged.score < THRESHOLD


def test_a_missing_year_or_name_lowers_the_score() -> None:
    text = "The merit budget for April 1, 2026 is 3.5 % of total base salaries."
    judged = confidence.assess("What is the merit budget for 2028?", [chunk(text, 0.6)])
    assert judged.missing_entities == ("2028",) and judged.score < THRESHOLD
    assert confidence.assess("What is the merit budget for 2026?", [chunk(text, 0.6)]).score > 0.6


def test_margin_helps_only_questions_that_ask_for_no_value() -> None:
    how = [chunk("Roll back with deployctl rollback <service> --to <version>.", 0.3, dept="eng")]
    assert confidence.assess("How do I undo a bad release?", how, margin=0.3).score > THRESHOLD
    assert confidence.assess("How do I undo a bad release?", how).score < THRESHOLD
    typed = [chunk("There is a cafeteria near reception.", 0.3)]
    assert confidence.assess("What is on the cafeteria menu?", typed, margin=0.3).score < THRESHOLD


def test_no_chunks_no_confidence() -> None:
    judged = confidence.assess("How many vacation days do I get?", [])
    assert judged.score == 0.0 and judged.retrieval == 0.0


# ── the answer text ───────────────────────────────────────────────────────────────────


def test_supports_checks_the_generated_answer_for_the_asked_value() -> None:
    q = "How quickly does IT respond to a SEV1 incident?"
    wrong = (
        "From IT incident severity levels › Roles during SEV1 incidents [1]:\n\n"
        "The incident commander coordinates the response. Call extension 4357 (24/7 line)."
    )
    right = (
        "From IT incident severity levels › SEV1 — Critical [1]:\n\n"
        "- Response: acknowledge within 15 minutes, 24/7."
    )
    assert confidence.supports(q, wrong) is False
    assert confidence.supports(q, right) is True
    assert confidence.supports("Can I work from home?", "Yes [1].") is None


def test_citation_confidence_uses_the_assessment() -> None:
    sources = [chunk("Full-time employees receive 25 days.", 0.9)]
    cited = citations.validate("Full-time employees receive 25 days [1].", sources)
    assert citations.confidence(sources, cited) > citations.confidence(sources, cited, assessed=0.2)
    assert citations.confidence(sources, cited, assessed=0.2) < THRESHOLD


# ── through the pipeline ──────────────────────────────────────────────────────────────


def _add_cafeteria_page(company: Company, retriever: FakeRetriever) -> None:
    """An HR page that is on topic for cafeteria questions but says only where it is."""
    add_document(
        company,
        retriever,
        "hr/office.md",
        """\
        # Office
        ## Cafeteria
        The cafeteria is on the ground floor of the office and opens at 8:00.
        """,
    )


def test_on_topic_question_without_the_answer_gets_an_honest_dont_know(
    company: Company, retriever: FakeRetriever
) -> None:
    _add_cafeteria_page(company, retriever)
    assistant = Assistant(
        company=company, retriever=retriever, indexer=FakeIndexer(), generator=_never(), audit=MemoryAudit()
    )
    message = Message(
        user_id="alice", email="alice@example.com", text="What is on the cafeteria menu?", department="hr"
    )
    answer = assistant.ask(message)
    assert answer.status is Status.DONT_KNOW and answer.confidence < THRESHOLD
    # the topic question the same page does answer still gets its answer
    generated = Assistant(
        company=company, retriever=retriever, indexer=FakeIndexer(), generator=_echo(), audit=MemoryAudit()
    ).ask(
        Message(
            user_id="alice", email="alice@example.com", text="When does the cafeteria open?", department="hr"
        )
    )
    assert generated.status is Status.ANSWERED


def _never() -> object:
    class Never:
        def generate(self, request: object, *, on_delta: object = None) -> object:
            raise AssertionError("a question the knowledge does not answer must not reach generation")

    return Never()


def _echo() -> object:
    from bot.core.types import Generation, GenerationRequest

    class Echo:
        def generate(self, request: GenerationRequest, *, on_delta: object = None) -> Generation:
            return Generation(
                text=f"{request.sources[0].text} [1]", generator="echo", model="echo", route="local"
            )

    return Echo()


# ── routing ───────────────────────────────────────────────────────────────────────────


class StaticRetriever:
    """Fixed passages per department, whatever the question (routing decisions only)."""

    def __init__(self, by_dept: dict[str, Sequence[SourceChunk]]) -> None:
        self.by_dept = by_dept

    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        return list(self.by_dept.get(scope.department, []))[:top_k]

    def index_version(self, department: str) -> str | None:
        return "v1"

    def audience_entries(self, department: str) -> frozenset[str]:
        return frozenset()


def test_a_question_goes_to_the_department_whose_text_holds_the_answer(company: Company) -> None:
    """No department named; HR's page is about meals (higher retrieval score) but only
    Finance's says how much: the question goes to Finance."""
    hr, finance = company.department("hr"), company.department("finance")
    retriever = StaticRetriever(
        {
            "hr": [
                chunk("Team meals and dinners are part of our culture; ask your manager about meals.", 0.6)
            ],
            "finance": [
                chunk(
                    "Meal expenses are reimbursed up to 60 dollars per day when travelling.",
                    0.5,
                    dept="finance",
                )
            ],
        }
    )
    depts: list[Department] = [hr, finance]
    scopes = {d.name: AccessScope(d.name, frozenset({"*"})) for d in depts}
    route = routing.best_department(
        "How much are dinner meals reimbursed per day?", depts, scopes, retriever, top_k=6
    )
    assert route.department.name == "finance"
    assert route.assessment is not None and route.assessment.type_found and route.assessment.margin


def test_an_answer_without_the_asked_value_becomes_an_honest_dont_know(
    company: Company, retriever: FakeRetriever
) -> None:
    _add_cafeteria_page(company, retriever)
    from bot.core.types import Generation, GenerationRequest

    class Beside:
        """Quotes the right document but not the value (like a neighbouring table row)."""

        def __init__(self, name: str) -> None:
            self.name = name

        def generate(self, request: GenerationRequest, *, on_delta: object = None) -> Generation:
            text = "The cafeteria is on the ground floor [1]."
            return Generation(text=text, generator=self.name, model=self.name, route="local")

    message = Message(
        user_id="alice", email="alice@example.com", text="When does the cafeteria open?", department="hr"
    )
    audit = MemoryAudit()
    quoted = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=Beside("extractive"),
        audit=audit,
    ).ask(message)
    assert quoted.status is Status.DONT_KNOW
    assert audit.entries[-1].status == "dont_know"
    # a model's answer may word the value differently: only quotes are held to it
    worded = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=Beside("anthropic"),
        audit=audit,
    ).ask(message)
    assert worded.status is Status.ANSWERED


# ── entries, columns and "which X" (issue 15: calibration) ────────────────────────────

SOFTWARE = (
    "| name | category | licence | how_to_install | approval_needed |\n|---|---|---|---|---|\n"
    "| Grammarly | Writing | Not supported | Not allowed | blocked |"
)


def test_an_entry_named_after_what_the_question_names_is_evidence_of_the_answer() -> None:
    """Asked with the department named (no routing margin), a software-list row labelled
    "Grammarly" answers "Is Grammarly allowed …?" although its wording is a table row's."""
    row = [chunk(SOFTWARE, 0.3, dept="it", title="Supported software", anchor="row 32")]
    judged = confidence.assess("Is Grammarly allowed on work laptops?", row)
    assert judged.score > THRESHOLD > judged.retrieval
    # a name several retrieved documents mention in passing is context, not an entry's subject
    printers = chunk("| Location | Queue |\n|---|---|\n| Lisbon Street 14, floor 2 | LS-F2 |", 0.3, dept="it")
    backup = SourceChunk(
        **{**printers.__dict__, "doc_id": "it/backup.md", "text": "Lisbon Street file servers."}
    )
    park = confidence.assess("Where can I park my car at the Lisbon Street office?", [printers, backup])
    assert park.score <= park.retrieval < THRESHOLD


def test_a_column_named_like_the_asked_thing_is_the_answer_for_which_questions() -> None:
    table = chunk(
        "| category | gl_account | description |\n|---|---|---|\n"
        "| Hotel | 6112 | Hotel accommodation |\n| Training and conferences | 6310 | Conference tickets |",
        0.3,
        dept="finance",
    )
    judged = confidence.assess("Which category should I pick for a conference ticket?", [table])
    assert judged.type_found and judged.score > THRESHOLD > judged.retrieval


def test_which_x_needs_a_particular_x_next_to_the_question_terms() -> None:
    """ "Which bike shop …" asks for a shop's name: a benefits list that describes the
    scheme without naming one is the topic, not the answer; a sentence that names the VPN
    client is the answer to "Which VPN client do we use?"."""
    benefits = chunk(
        "- **Bike-to-work scheme:** lease a bicycle through pre-tax pay deductions over 36 months.\n"
        "- **Learning budget:** €1,500 per year per employee.",
        0.45,
    )
    judged = confidence.assess(
        "Which bike shop do we lease bikes from under the bike-to-work scheme?", [benefits]
    )
    assert not judged.type_found and judged.score < THRESHOLD
    vpn = chunk(
        "The GlobalProtect VPN client is installed automatically by device management.", 0.45, dept="it"
    )
    named = confidence.assess("Which VPN client do we use?", [vpn])
    assert named.type_found and named.score > 0.45


def test_routing_may_stop_early_only_below_what_assess_can_reach() -> None:
    """``routing.score_bound`` bounds every raise ``assess`` can make without a margin."""
    assert confidence.MARGIN_BOOST <= confidence.FOUND_BOOST
    assert confidence.may_raise("Is Grammarly allowed on work laptops?")  # an entry may exist
    assert confidence.may_raise("Which category should I pick for a conference ticket?")
    assert confidence.may_raise("How long is the probation period?")
    assert not confidence.may_raise("How do I undo a bad release?")
    row = [chunk(SOFTWARE, 0.3, dept="it", title="Supported software", anchor="row 32")]
    judged = confidence.assess("Is Grammarly allowed on work laptops?", row)
    assert routing.route_score(judged) <= routing.score_bound(0.3, typed=True)
