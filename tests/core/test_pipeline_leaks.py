"""Security review regressions: what an answer may carry into a channel or to a cloud model."""

from __future__ import annotations

import pytest

from bot.core.pipeline import Assistant
from bot.core.types import Classification, Generation, GenerationRequest, Message, Status, Turn
from bot.llm.extractive import ExtractiveGenerator
from bot.sensitivity import PatternClassifier
from tests.fakes import FakeIndexer, MemoryAudit, RecordingGenerator


def test_dont_know_naming_restricted_titles_is_not_channel_safe(assistant: Assistant) -> None:
    """The "closest documents are …" line names titles; in a channel they must be ones all readers may see."""
    a = assistant.ask(
        Message(
            user_id="carol@example.com",
            email="carol@example.com",
            text="payroll cafeteria menu tuesday lunch parking",
            department="finance",
            channel="C0FIN",
            in_channel=True,
        )
    )
    assert a.status is Status.DONT_KNOW and "salary-bands" in a.text  # a payroll title is named
    assert not a.channel_safe


def test_uncited_restricted_source_still_makes_the_answer_private(company, retriever) -> None:  # type: ignore[no-untyped-def]
    """A model sees every source; leaving one uncited must not make its content channel-safe."""

    class Paraphraser:
        name = "paraphraser"

        def generate(self, request: GenerationRequest, *, on_delta=None) -> Generation:  # type: ignore[no-untyped-def]
            public = next(i for i, s in enumerate(request.sources, 1) if "payroll/" not in s.doc_id)
            assert any("payroll/" in s.doc_id for s in request.sources)
            return Generation(
                text=f"Meals are reimbursed up to 60 dollars [{public}]. Band L3 is 95,000 to 120,000.",
                model="m",
                generator="paraphraser",
            )

    a = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=Paraphraser(),
        audit=MemoryAudit(),
    )
    ans = a.ask(
        Message(
            user_id="carol@example.com",
            email="carol@example.com",
            text="meal expenses payroll salary band",
            department="finance",
            channel="C0FIN",
            in_channel=True,
        )
    )
    assert ans.status is Status.ANSWERED and "95,000" in ans.text
    assert all("payroll/" not in c.doc_id for c in ans.citations)
    assert not ans.channel_safe


def test_thread_history_counts_for_the_sensitivity_label(company, retriever) -> None:  # type: ignore[no-untyped-def]
    """Earlier turns go into the prompt, so personal data in them keeps the request off the cloud."""
    gen = RecordingGenerator(ExtractiveGenerator())
    a = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=gen,
        audit=MemoryAudit(),
        classifier=PatternClassifier(),
    )
    history = (
        Turn("user", "My phone is +1 415 555 0134; can I expense meals?"),
        Turn("assistant", "Meal expenses are reimbursed up to 60 dollars per day [1]."),
    )
    a.ask(
        Message(
            user_id="dave@example.com",
            email="dave@example.com",
            text="and what about receipts?",
            department="finance",
            history=history,
        )
    )
    request = gen.requests[-1]
    assert request.history == history  # type: ignore[attr-defined]
    assert request.classification >= Classification.CONFIDENTIAL  # type: ignore[attr-defined]


def test_answer_cached_across_a_refresh_is_not_served_to_narrower_access(company, audit) -> None:  # type: ignore[no-untyped-def]
    """The cache key is computed before retrieval; if a refresh lands in between, the answer
    was built from another index version and must not be stored under the earlier key."""
    from tests.fakes import CANARIES, FakeRetriever, chunks_from_folder

    class RefreshedMidRequest(FakeRetriever):
        """v1 had no payroll folder; a refresh to v2 (which has it) lands during retrieval."""

        flip = True

        def audience_entries(self, department: str) -> frozenset[str]:
            return frozenset() if self.version == "v1" else super().audience_entries(department)

        def retrieve(self, query, scope, *, top_k=8):  # type: ignore[no-untyped-def]
            if self.flip:
                self.version = "v2"
                return super().retrieve(query, scope, top_k=top_k)
            return [c for c in super().retrieve(query, scope, top_k=top_k) if "payroll/" not in c.doc_id]

    class DictCache(dict):  # type: ignore[type-arg]
        def put(self, key: str, answer: object) -> None:
            self[key] = answer

    retriever = RefreshedMidRequest([c for d in company for c in chunks_from_folder(d)])
    a = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=audit,
        cache=DictCache(),  # type: ignore[arg-type]
        auto_index=False,
    )
    q = "payroll salary band L3 runs"
    carol = a.ask(Message(user_id="c", email="carol@example.com", text=q, department="finance"))
    assert CANARIES["payroll"] in repr(carol)
    retriever.version, retriever.flip = "v1", False  # the same version id again (e.g. a revert)
    dave = a.ask(Message(user_id="d", email="dave@example.com", text=q, department="finance"))
    assert CANARIES["payroll"] not in repr(dave)


@pytest.mark.parametrize("reply", ["[9]", "   ", "[7] [8].", "\n[12]\n"])
def test_a_reply_with_no_words_left_is_sources_only(company, retriever, audit, reply: str) -> None:  # type: ignore[no-untyped-def]
    """A model reply made only of out-of-range markers or whitespace was an empty answer."""
    from bot.core.types import Generation

    class Fixed:
        name = "fixed"

        def generate(self, request, *, on_delta=None):  # type: ignore[no-untyped-def]
            return Generation(text=reply, model="m", generator="fixed", route="cloud")

    a = Assistant(company=company, retriever=retriever, indexer=FakeIndexer(), generator=Fixed(), audit=audit)
    answer = a.ask(Message(user_id="alice@example.com", text="How many vacation days?", department="hr"))
    assert answer.status is Status.SOURCES_ONLY
    assert answer.text.strip() and answer.citations
    assert "no usable answer" in answer.text
