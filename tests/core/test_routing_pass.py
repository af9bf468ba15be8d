"""``best_department`` uses ``retrieve_many`` when the retriever has it and loops otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bot.core import routing
from bot.core.types import AccessScope, SourceChunk
from tests.fakes import FakeRetriever, chunks_from_folder, make_company


class OnePassRetriever(FakeRetriever):
    """FakeRetriever plus ``retrieve_many``; counts one-pass calls."""

    many_calls = 0

    def retrieve_many(
        self, query: str, scopes: Sequence[AccessScope], *, top_k: int = 8
    ) -> list[list[SourceChunk]]:
        self.many_calls += 1
        return [FakeRetriever.retrieve(self, query, s, top_k=top_k) for s in scopes]


def _setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    company = make_company(tmp_path)
    depts = list(company)
    chunks = [c for d in depts for c in chunks_from_folder(d)]
    keys = frozenset({"*", "bob@example.com", "group:engineering"})
    scopes = {d.name: AccessScope(department=d.name, keys=keys) for d in depts}
    return depts, chunks, scopes


def test_fake_retriever_without_retrieve_many_still_routes(tmp_path: Path) -> None:
    depts, chunks, scopes = _setup(tmp_path)
    fake = FakeRetriever(chunks)
    route = routing.best_department("meal expenses travelling", depts, scopes, fake, top_k=4)
    assert route.department.name == "finance" and route.how == "auto"
    assert len(fake.calls) == len(depts)


def test_retrieve_many_is_called_once_and_decides_the_same(tmp_path: Path) -> None:
    depts, chunks, scopes = _setup(tmp_path)
    for question in ("meal expenses travelling", "vacation days", "deploy", "sick days per year", "menu"):
        one = OnePassRetriever(chunks)
        after = routing.best_department(question, depts, scopes, one, top_k=4)
        before = routing.best_department(question, depts, scopes, FakeRetriever(chunks), top_k=4)
        assert one.many_calls == 1 and one.calls == [(question, scopes[d.name]) for d in depts]
        assert after == before


def _assess_all(question, depts, scopes, retriever):  # type: ignore[no-untyped-def]
    """The ranking before pruning: every department assessed, stable sort by route score."""
    found = routing.retrieve_each(retriever, question, [scopes[d.name] for d in depts], top_k=4)
    ranked = sorted(
        ((routing.route_score(routing.assess(question, c)), d, c) for d, c in zip(depts, found, strict=True)),
        key=lambda r: r[0],
        reverse=True,
    )
    (best, dept, chunks), (runner, other, _) = ranked[0], ranked[1]
    alternative = other if best - runner <= routing.CLOSE_MARGIN and runner > 0 else None
    judged = routing.assess(question, chunks, margin=round(best - runner, 4))
    return dept, alternative, tuple(chunks), judged


def test_assessing_only_departments_that_can_win_decides_the_same(tmp_path: Path) -> None:
    depts, chunks, scopes = _setup(tmp_path)
    questions = (
        "meal expenses travelling", "vacation days", "deploy", "sick days per year", "menu",
        "How many vacation days do I get in 2025?", "when is the cafeteria open?", "xyzzy",
    )  # fmt: skip
    for question in questions:
        route = routing.best_department(question, depts, scopes, FakeRetriever(chunks), top_k=4)
        dept, alternative, probe, judged = _assess_all(question, depts, scopes, FakeRetriever(chunks))
        assert (route.department, route.alternative, route.probe, route.assessment) == (
            dept,
            alternative,
            probe,
            judged,
        )
        assert sorted(route.searched) == sorted(d.title for d in depts)


def test_score_bound_is_an_upper_bound() -> None:
    for r in (0.0, 0.1234, 0.5, 0.8765, 1.0):  # chunk scores carry four decimals
        assert routing.score_bound(r, typed=False) == r
        assert r <= routing.score_bound(r, typed=True) <= 1.0
