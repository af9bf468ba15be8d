"""Validate ``[n]`` markers against the sources and compute confidence.

Generators (extractive or LLM) number sources 1..k in the order given. Whatever they
write, only markers that point at a real source survive; citations are renumbered in
order of first use so the reader sees [1], [2], … and every number under the answer was
actually cited. An answer with no valid citation is low-confidence by definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.core.types import Citation, SourceChunk

MARKER_RE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]?")
SNIPPET_CHARS = 240


@dataclass(frozen=True)
class CitedText:
    text: str
    citations: tuple[Citation, ...]
    coverage: float  # share of sentences carrying at least one valid citation
    dangling: int  # markers removed because no such source exists


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """A one-line excerpt for hover cards and source lists."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0]
    return cut + "…"


def validate(
    text: str, sources: Sequence[SourceChunk], link: Callable[[str], str] = lambda doc_id: ""
) -> CitedText:
    """Drop dangling markers, renumber the rest by first use, build Citation objects."""
    # Chunks of the same document section are one source for the reader.
    key_of = [(s.doc_id, s.anchor) for s in sources]
    number_of_key: dict[tuple[str, str], int] = {}
    order: dict[int, int] = {}  # first source index (1-based) of each key → new number
    dangling = 0

    def renumber(match: re.Match[str]) -> str:
        nonlocal dangling
        kept: list[int] = []
        for raw in match.group(1).split(","):
            n = int(raw)
            if 1 <= n <= len(sources):
                key = key_of[n - 1]
                if key not in number_of_key:
                    number_of_key[key] = len(number_of_key) + 1
                    order[n] = number_of_key[key]
                if number_of_key[key] not in kept:
                    kept.append(number_of_key[key])
            else:
                dangling += 1
        return "".join(f"[{k}]" for k in kept)

    cleaned = MARKER_RE.sub(renumber, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    citations = tuple(
        Citation(
            n=new,
            title=sources[old - 1].title,
            path=sources[old - 1].path,
            department=sources[old - 1].department,
            score=sources[old - 1].score,
            snippet=snippet(sources[old - 1].text),
            anchor=sources[old - 1].anchor,
            modified=sources[old - 1].modified,
            date_kind=sources[old - 1].date_kind,
            doc_id=sources[old - 1].doc_id,
            chunk_id=sources[old - 1].chunk_id,
            url=link(sources[old - 1].doc_id),
        )
        for old, new in sorted(order.items(), key=lambda kv: kv[1])
    )
    sentences = [s for s in SENTENCE_RE.findall(cleaned) if len(s.strip()) > 3]
    covered = 0
    for s in sentences:
        if MARKER_RE.search(s):
            covered += 1
    # A marker often trails the period: "… per year. [1]" — count the sentence before it.
    trailing = len(re.findall(r"[.!?]\s*\[\d+\]", cleaned))
    coverage = min(1.0, (covered + trailing) / len(sentences)) if sentences else 0.0
    return CitedText(text=cleaned, citations=citations, coverage=coverage, dangling=dangling)


def confidence(sources: Sequence[SourceChunk], cited: CitedText, *, assessed: float | None = None) -> float:
    """0..1 from the evidence for the answer and how much of the answer is cited.

    ``assessed`` is the answer-level confidence (``bot.core.confidence.assess``: does the
    retrieved text hold the answer, not only the topic); without it the retriever's
    calibrated top score stands in. The best cited source matters most, and an answer with
    no valid citation is capped low whatever the evidence said.
    """
    if not sources:
        return 0.0
    top = max(s.score for s in sources) if assessed is None else assessed
    if not cited.citations:
        return round(min(0.3, top * 0.5), 3)
    cited_best = max(c.score for c in cited.citations)
    if assessed is not None:
        # a cited passage can only lower the evidence, never raise it past the assessment
        cited_best = min(cited_best, assessed)
    base = 0.6 * cited_best + 0.4 * top
    return round(max(0.0, min(1.0, base * (0.75 + 0.25 * cited.coverage))), 3)
