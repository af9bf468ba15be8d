"""The one flow, end to end through the real Assistant with fake ports."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import pytest

from bot.core.cachekey import cache_key
from bot.core.pipeline import Assistant
from bot.core.types import ChannelReaders, Classification, Message, Status, Turn
from bot.errors import AccessDenied, ProviderUnavailable, UsageError
from bot.sensitivity import PatternClassifier
from tests.fakes import CANARIES, FakeIndexer, FakeRetriever, MemoryAudit, RecordingGenerator


def ask(assistant: Assistant, user: str, text: str, **kw: object) -> object:
    return assistant.ask(Message(user_id=user, email=user, text=text, **kw))  # type: ignore[arg-type]


def test_answer_cites_the_time_off_policy(assistant: Assistant, audit: MemoryAudit) -> None:
    a = assistant.ask(Message(user_id="alice@example.com", text="How many vacation days do I get?"))
    assert a.status is Status.ANSWERED and a.department == "hr"
    assert "25 days" in a.text and "[1]" in a.text
    assert a.citations[0].title == "Time off policy" and a.citations[0].anchor == "Annual vacation"
    assert 0 < a.confidence <= 1 and a.generator == "extractive"
    assert a.timings.total_ms >= a.timings.retrieve_ms >= 0
    row = audit.entries[-1]
    assert (row.request_id, row.decision, row.status) == (a.request_id, "allowed", "answered")
    assert row.doc_ids == ("hr/time-off.md",)


def test_denied_request_is_recorded_and_makes_no_retrieval_or_generation(
    assistant: Assistant, retriever: FakeRetriever, generator: RecordingGenerator, audit: MemoryAudit
) -> None:
    a = ask(assistant, "grace@example.com", "How do deploys work?", department="eng")
    assert a.status is Status.DENIED  # type: ignore[attr-defined]
    assert "group:engineering" in a.text and "bob@example.com" in a.text  # type: ignore[attr-defined]
    assert retriever.calls == [] and generator.requests == []
    assert audit.entries[-1].decision == "denied" and audit.entries[-1].rule == "ask:no-match"


def test_unknown_user_is_denied_and_recorded(
    assistant: Assistant, retriever: FakeRetriever, audit: MemoryAudit
) -> None:
    a = assistant.ask(Message(user_id="U123", text="vacation days?"))
    assert a.status is Status.DENIED and retriever.calls == []
    assert audit.entries[-1].rule == "unknown-user"


def test_template_is_role_checked(assistant: Assistant, generator: RecordingGenerator) -> None:
    denied = ask(assistant, "grace@example.com", "Jane Doe, engineer", template="offer-letter")
    assert denied.status is Status.DENIED and generator.requests == []  # type: ignore[attr-defined]
    ok = ask(assistant, "alice@example.com", "Jane Doe, vacation days", template="offer-letter")
    assert ok.department == "hr"  # type: ignore[attr-defined]
    assert generator.requests[-1].task == "template:offer-letter"  # type: ignore[attr-defined]
    assert "Draft an offer letter for: Jane Doe" in generator.requests[-1].question  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [("   ", "Please type a question."), ("x" * 4001, "under 4,000")],
)
def test_empty_or_too_long_question(assistant: Assistant, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ask(assistant, "alice@example.com", text)


def test_unknown_department_lists_valid_ones(assistant: Assistant) -> None:
    with pytest.raises(UsageError, match="Valid departments: eng, finance, hr"):
        ask(assistant, "alice@example.com", "hi", department="legal")


def test_dont_know_names_admins(assistant: Assistant, generator: RecordingGenerator) -> None:
    a = ask(assistant, "alice@example.com", "What is the cafeteria menu on Tuesday?", department="hr")
    assert a.status is Status.DONT_KNOW  # type: ignore[attr-defined]
    assert "couldn't find this in the Human Resources knowledge" in a.text  # type: ignore[attr-defined]
    assert "hank@example.com" in a.text and generator.requests == []  # type: ignore[attr-defined]


def test_channel_mapping_routes(assistant: Assistant) -> None:
    a = assistant.ask(
        Message(user_id="dave@example.com", text="meal expenses per day", platform="slack", channel="C0FIN")
    )
    assert a.department == "finance" and a.status is Status.ANSWERED


def test_restricted_answer_is_not_channel_safe(assistant: Assistant) -> None:
    q = "payroll salary band L3"
    in_dm = ask(assistant, "carol@example.com", q, department="finance")
    both = ChannelReaders(frozenset({"carol@example.com", "dave@example.com"}))
    in_channel = ask(
        assistant,
        "carol@example.com",
        q,
        department="finance",
        in_channel=True,
        channel="C0FIN",
        channel_readers=both,
    )
    assert in_dm.channel_safe and CANARIES["payroll"] in in_dm.citations[0].snippet  # type: ignore[attr-defined]
    assert not in_channel.channel_safe  # type: ignore[attr-defined]
    assert in_channel.private_reason == "restricted-sources"  # type: ignore[attr-defined]
    public = ask(
        assistant,
        "carol@example.com",
        "meal expenses",
        department="finance",
        in_channel=True,
        channel="C0FIN",
        channel_readers=both,
    )
    assert public.channel_safe  # type: ignore[attr-defined]


def test_effective_label_includes_document_labels(
    assistant: Assistant, generator: RecordingGenerator
) -> None:
    ask(assistant, "carol@example.com", "payroll salary band L3", department="finance")
    assert generator.requests[-1].classification is Classification.RESTRICTED  # type: ignore[attr-defined]


def test_classifier_error_counts_as_restricted(company, retriever, audit) -> None:  # type: ignore[no-untyped-def]
    class Broken:
        def classify(self, text, department):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    gen = RecordingGenerator(__import__("bot.llm.extractive", fromlist=["x"]).ExtractiveGenerator())
    a = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=gen,
        audit=audit,
        classifier=Broken(),
    )
    ask(a, "alice@example.com", "vacation days", department="hr")
    assert gen.requests[-1].classification is Classification.RESTRICTED  # type: ignore[attr-defined]


def test_provider_failure_gives_sources_only_without_exception_text(company, retriever, audit) -> None:  # type: ignore[no-untyped-def]
    class Down:
        name = "down"

        def generate(self, request, *, on_delta=None):  # type: ignore[no-untyped-def]
            raise ProviderUnavailable("The private model is unavailable, so here are the sources only.")

    a = Assistant(company=company, retriever=retriever, indexer=FakeIndexer(), generator=Down(), audit=audit)
    ans = ask(a, "alice@example.com", "vacation days", department="hr")
    assert ans.status is Status.SOURCES_ONLY and ans.citations  # type: ignore[attr-defined]
    assert "private model is unavailable" in ans.text  # type: ignore[attr-defined]
    assert audit.entries[-1].error == "ProviderUnavailable"


def test_unexpected_failure_is_friendly(company, retriever, audit) -> None:  # type: ignore[no-untyped-def]
    class Buggy:
        name = "buggy"

        def generate(self, request, *, on_delta=None):  # type: ignore[no-untyped-def]
            raise KeyError("secret internal detail")

    a = Assistant(company=company, retriever=retriever, indexer=FakeIndexer(), generator=Buggy(), audit=audit)
    ans = ask(a, "alice@example.com", "vacation days", department="hr")
    assert ans.status is Status.ERROR and "secret internal detail" not in ans.text  # type: ignore[attr-defined]
    assert ans.request_id in ans.text and audit.entries[-1].error == "KeyError"  # type: ignore[attr-defined]


def test_refresh_is_admin_only_and_recorded(assistant: Assistant, audit: MemoryAudit) -> None:
    with pytest.raises(AccessDenied, match="Only Human Resources admins"):
        assistant.refresh("hr", user="alice@example.com")
    assert audit.entries[-1].decision == "denied"
    report = assistant.refresh("hr", user="hank@example.com")
    assert report.department == "hr"


def test_feedback_is_stored(assistant: Assistant, audit: MemoryAudit) -> None:
    assistant.feedback("abc123", user="alice@example.com", value="down", reason="outdated")
    assert audit.feedback == [("abc123", "alice@example.com", "down", "outdated")]
    with pytest.raises(UsageError):
        assistant.feedback("abc123", user="alice@example.com", value="meh")


USERS = [
    "alice@example.com",
    "hank@example.com",
    "carol@example.com",
    "dave@example.com",
    "bob@example.com",
    "grace@example.com",
]
QUESTIONS = [
    "vacation days carried over",
    "investigations handled",
    "meal expenses receipts",
    "payroll salary band L3 runs",
    "production deploys rollbacks",
    "reference code case",
]
VISIBLE = {  # who may see each canary (from the fake company's configs)
    "hr": set(USERS),
    "hr-private": {"hank@example.com"},
    "finance": set(USERS),
    "payroll": {"carol@example.com"},
    "eng": {"bob@example.com"},
}


@pytest.mark.parametrize("user", USERS)
def test_canary_matrix(
    assistant: Assistant, generator: RecordingGenerator, audit: MemoryAudit, user: str
) -> None:
    """Canaries a user may not see never reach the answer, citations, generator or audit."""
    outputs: list[str] = []
    for question, dept in itertools.product(QUESTIONS, [None, "hr", "finance", "eng"]):
        a = ask(assistant, user, question, department=dept)
        outputs.append(repr(asdict(a)))  # type: ignore[call-overload]
    outputs += [repr(r) for r in generator.requests] + [repr(e) for e in audit.entries]
    blob = "\n".join(outputs)
    for name, canary in CANARIES.items():
        if user in VISIBLE[name]:
            continue
        assert canary not in blob, f"{name} canary leaked to {user}"
    # The matrix is meaningful only if allowed canaries do show up somewhere.
    allowed = [c for n, c in CANARIES.items() if user in VISIBLE[n]]
    assert any(c in blob for c in allowed)


def test_auto_routing_picks_best_department_and_says_when_nothing_matches(assistant: Assistant) -> None:
    a = ask(assistant, "dave@example.com", "meal expenses receipts")
    assert a.department == "finance" and a.status is Status.ANSWERED  # type: ignore[attr-defined]
    none = ask(assistant, "dave@example.com", "What is the cafeteria menu on Tuesday?")
    assert none.status is Status.DONT_KNOW  # type: ignore[attr-defined]
    assert "knowledge you can ask (" in none.text  # type: ignore[attr-defined]
    assert "Engineering" not in none.text  # dave cannot ask engineering  # type: ignore[attr-defined]


def test_cache_shared_only_between_people_with_the_same_relevant_access(company, retriever, audit) -> None:  # type: ignore[no-untyped-def]
    from bot.core.types import Answer
    from bot.llm.extractive import ExtractiveGenerator

    class DictCache:
        def __init__(self) -> None:
            self.data: dict[str, Answer] = {}

        def get(self, key: str) -> Answer | None:
            return self.data.get(key)

        def put(self, key: str, answer: Answer) -> None:
            self.data[key] = answer

    gen = RecordingGenerator(ExtractiveGenerator())
    cache = DictCache()
    a = Assistant(
        company=company, retriever=retriever, indexer=FakeIndexer(), generator=gen, audit=audit, cache=cache
    )
    q = "meal expenses receipts"
    ask(a, "dave@example.com", q, department="finance")
    ask(a, "grace@example.com", q, department="finance")  # same finance-relevant access as dave
    assert len(gen.requests) == 1
    assert audit.entries[-1].cache_hit
    ask(a, "carol@example.com", q, department="finance")  # finance-admins: sees payroll too
    assert len(gen.requests) == 2
    # a channel hit is re-checked against that channel's members, not cached per channel
    everyone = ChannelReaders(frozenset({"dave@example.com", "grace@example.com"}))
    shared = ask(
        a,
        "dave@example.com",
        q,
        department="finance",
        in_channel=True,
        channel="C0X",
        channel_readers=everyone,
    )
    assert len(gen.requests) == 2 and shared.cache_hit and shared.channel_safe  # type: ignore[attr-defined]
    unknown = ask(a, "dave@example.com", q, department="finance", in_channel=True, channel="C0X")
    assert unknown.cache_hit and not unknown.channel_safe  # type: ignore[attr-defined]
    retriever.version = "v2"
    ask(a, "dave@example.com", q, department="finance")
    assert len(gen.requests) == 3  # a refresh invalidates


def test_missing_index_is_built_and_staleness_checked_once_per_department(company, retriever, audit) -> None:  # type: ignore[no-untyped-def]
    """The one-shot commands (no watcher): one staleness check per department per process,
    before its first answer; a missing index is rebuilt at once. A watched Assistant
    (``check_staleness=False``, ``deptbot serve``) never checks: tests/knowledge/test_watcher.py."""
    from bot.core.ports import IndexStatus
    from bot.llm.extractive import ExtractiveGenerator

    class CountingIndexer(FakeIndexer):
        def __init__(self) -> None:
            super().__init__()
            self.status_calls = 0

        def status(self, department):  # type: ignore[no-untyped-def]
            self.status_calls += 1
            return IndexStatus(department=department.name, version="v1", stale=True)

    indexer = CountingIndexer()
    a = Assistant(
        company=company, retriever=retriever, indexer=indexer, generator=ExtractiveGenerator(), audit=audit
    )
    for _ in range(3):
        ask(a, "alice@example.com", "vacation days", department="hr")
    assert indexer.status_calls == 1 and indexer.refreshed == ["hr"]
    retriever.version = None  # type: ignore[assignment]  # index deleted: rebuilt at once
    ask(a, "alice@example.com", "vacation days", department="hr")
    assert indexer.refreshed == ["hr", "hr"] and indexer.status_calls == 1
    retriever.version = "v2"  # type: ignore[assignment]
    for _ in range(3):  # no interval any more: a long chat does not re-scan
        ask(a, "alice@example.com", "vacation days", department="hr")
    assert indexer.status_calls == 1


def test_history_turn_labels_count_like_document_labels(company, retriever, audit) -> None:  # type: ignore[no-untyped-def]
    """An answer confidential only through its documents stays confidential as history."""
    gen = RecordingGenerator(__import__("bot.llm.extractive", fromlist=["x"]).ExtractiveGenerator())
    a = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=gen,
        audit=audit,
        classifier=PatternClassifier(),  # sees nothing in these texts
    )
    earlier = "The relocation allowance is 7,500 dollars for moves over 50 kilometres [1]."
    question = "How many vacation days do I get?"
    unlabelled = (Turn("user", "What is the relocation allowance?"), Turn("assistant", earlier))
    ask(a, "alice@example.com", question, department="hr", history=unlabelled)
    # an assistant turn without a label is treated as restricted (fail closed)
    assert gen.requests[-1].classification is Classification.RESTRICTED  # type: ignore[attr-defined]
    internal = (unlabelled[0], Turn("assistant", earlier, label=Classification.INTERNAL))
    ask(a, "alice@example.com", question, department="hr", history=internal)
    assert gen.requests[-1].classification is Classification.INTERNAL  # type: ignore[attr-defined]

    labelled = (unlabelled[0], Turn("assistant", earlier, label=Classification.CONFIDENTIAL))
    ask(a, "alice@example.com", question, department="hr", history=labelled)
    request = gen.requests[-1]
    assert request.classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]
    assert "thread-history" in request.label_reasons  # type: ignore[attr-defined]
    assert {s.classification for s in request.sources} == {Classification.INTERNAL}  # type: ignore[attr-defined]

    # the text classifier still reads every history turn
    pii = (Turn("assistant", "Write to jane.doe@example.org", label=Classification.PUBLIC),)
    ask(a, "alice@example.com", question, department="hr", history=pii)
    assert gen.requests[-1].classification is Classification.CONFIDENTIAL  # type: ignore[attr-defined]
    assert "email-address" in gen.requests[-1].label_reasons  # type: ignore[attr-defined]


def test_history_labels_are_part_of_the_cache_key_only_when_set() -> None:
    base = {"question": "q", "department": "hr", "access_keys": ["*"], "index_version": "v1"}
    plain = cache_key(**base, history=("earlier",))  # type: ignore[arg-type]
    assert cache_key(**base, history=("earlier",), history_labels=("",)) == plain  # type: ignore[arg-type]
    assert cache_key(**base, history=("earlier",), history_labels=("confidential",)) != plain  # type: ignore[arg-type]


def test_close_departments_are_both_named(assistant: Assistant) -> None:
    # "days" scores the same in HR (vacation days) and Finance (receipts within 30 days).
    a = ask(assistant, "dave@example.com", "How many days?")
    assert a.status is Status.ANSWERED  # type: ignore[attr-defined]
    chosen, other = {"hr": "Human Resources", "finance": "Finance"}, a.alternative_department  # type: ignore[attr-defined]
    assert {a.department, other} == {"hr", "finance"}  # type: ignore[attr-defined]
    assert a.notice == f"Answered from {chosen[a.department]}; {chosen[other]} also looked relevant."  # type: ignore[attr-defined,index]
