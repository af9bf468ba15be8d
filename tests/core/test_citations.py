"""[n] markers are validated against the sources; uncited answers are low-confidence."""

from __future__ import annotations

from bot.core.citations import confidence, validate
from bot.core.types import SourceChunk


def _src(i: int, score: float = 0.8) -> SourceChunk:
    return SourceChunk(f"c{i}", f"d/{i}", "hr", f"Doc {i}", f"knowledge/hr/{i}.md", f"text {i}", score)


def test_dangling_markers_removed_and_renumbered_by_first_use() -> None:
    sources = [_src(1), _src(2), _src(3)]
    cited = validate("Second fact [3]. First fact [1][9]. Again [3, 1].", sources)
    assert cited.text == "Second fact [1]. First fact [2]. Again [1][2]."
    assert [(c.n, c.title) for c in cited.citations] == [(1, "Doc 3"), (2, "Doc 1")]
    assert cited.dangling == 1
    assert cited.coverage == 1.0


def test_no_valid_citation_caps_confidence() -> None:
    sources = [_src(1, 0.95)]
    cited = validate("An answer that cites nothing [7].", sources)
    assert cited.citations == ()
    assert confidence(sources, cited) <= 0.3
    good = validate("An answer [1].", sources)
    assert confidence(sources, good) > 0.8


def test_chunks_of_one_section_share_a_number() -> None:
    a1 = SourceChunk("a#0", "hr/a.md", "hr", "A", "knowledge/hr/a.md", "one", 0.9, anchor="Leave")
    a2 = SourceChunk("a#1", "hr/a.md", "hr", "A", "knowledge/hr/a.md", "two", 0.8, anchor="Leave")
    b = SourceChunk("b#0", "hr/b.md", "hr", "B", "knowledge/hr/b.md", "three", 0.7)
    cited = validate("One [1]. Two [2]. Three [3].", [a1, a2, b])
    assert cited.text == "One [1]. Two [1]. Three [2]."
    assert [c.title for c in cited.citations] == ["A", "B"]


def test_citations_link_to_the_department_docs_url(company) -> None:  # type: ignore[no-untyped-def]
    hr = company.department("hr").model_copy(update={"docs_url": "https://intranet.example.com/hr/{path}"})
    src = SourceChunk("a#0", "hr/time off.md", "hr", "Time off", "knowledge/hr/time off.md", "x", 0.9)
    cited = validate("Fact [1].", [src], hr.link)
    assert cited.citations[0].url == "https://intranet.example.com/hr/time%20off.md"
    assert validate("Fact [1].", [src]).citations[0].url == ""
