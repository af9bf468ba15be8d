"""``knowledge.max_chunks_per_file`` bites before the splitter has made the cap's worth of chunks.

A file of hundreds of thousands of tiny paragraphs (a generated DOCX, a log pasted into a
.txt) made the splitter cut and tokenise character by character for 23-40 s just to reach
the cap. Each block now has a floor (``chunking._floor``), the fewest chunks the splitter
can make of it, so such a file is refused before, or early in, the splitting. These tests
count what the splitter produced (a spy), never time. The floor must never exceed what
the splitter makes, or a file under the cap would be refused: checked on random text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Department
from bot.knowledge import chunking, formats, ingest
from bot.knowledge.chunking import ChunkLimit, chunk_sections
from bot.knowledge.formats import IngestError
from tests.knowledge.test_docx_bounds import docx_with

TINY = "word x.\n\n"  # one tiny paragraph


class Spy:
    """Counts the chunks the real splitter makes."""

    def __init__(self, real: Any) -> None:
        self.real, self.made, self.calls = real, 0, 0

    def split_text(self, text: str) -> list[str]:
        out: list[str] = self.real.split_text(text)
        self.calls += 1
        self.made += len(out)
        return out


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    watcher = Spy(chunking._splitter())
    monkeypatch.setattr(chunking, "_splitter", lambda: watcher)
    return watcher


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html", ".docx"])
def test_a_file_far_over_the_cap_is_refused_before_splitting(
    suffix: str, spy: Spy, dept: Department, write: Callable[..., Path]
) -> None:
    n = 60_000  # ~940 chunks, floors ~600: a cap of 500 is below even the floors
    if suffix == ".docx":
        data = docx_with(b"<w:p><w:r><w:t>word x.</w:t></w:r></w:p>" * n)
    elif suffix == ".html":
        data = ("<html><body>" + "<p>word x.</p>" * n + "</body></html>").encode()
    else:
        data = (TINY * n).encode()
    write(f"big{suffix}", data)
    src = next(s for s in ingest.scan(dept) if s.rel == f"big{suffix}")
    limits = ingest.Limits(max_chunks_per_file=500)
    with pytest.raises(IngestError, match=r"more than 500 chunks \(setting knowledge.max_chunks_per_file\)"):
        ingest.parse_file(src, dept, limits)
    assert spy.calls == 0 and spy.made == 0  # refused on the floors alone
    assert len(chunk_sections(_sections(suffix, data))) > 500  # and rightly: it does hold more


def _sections(suffix: str, data: bytes) -> list[tuple[str, str]]:
    if suffix == ".docx":
        return formats.parse_docx(data)[1]
    text = data.decode()
    parse = {".html": formats.parse_html, ".md": formats.parse_markdown}.get(suffix, formats.parse_text)
    return parse(text)[1]


def test_a_file_just_over_the_cap_stops_early(spy: Spy) -> None:
    """Floors below the cap: the splitter runs, and stops once the chunks made plus the
    floors ahead exceed it, well before it has made the cap's worth."""
    sections = formats.parse_text(TINY * 60_000)[1]
    real = len(chunk_sections(sections))  # no cap: every chunk
    spy.made = spy.calls = 0
    floors = sum(chunking._floor(b) for b in chunking._blocks(sections[0][1]))
    cap = (floors + real) // 2
    assert floors <= cap < real
    with pytest.raises(ChunkLimit):
        chunk_sections(sections, max_chunks=cap)
    assert 0 < spy.made < cap * 0.75  # before: the splitter made cap + 1


def test_a_long_prose_unit_in_a_section_with_lists_stops_at_the_cap(spy: Spy) -> None:
    """Sections with tables or lists are chunked one chunk at a time too (before: all of it)."""
    sections = formats.parse_markdown("# T\n\n- item\n\n" + "a\n" * 200_000)[1]
    with pytest.raises(ChunkLimit):
        chunk_sections(sections, max_chunks=20)
    assert spy.calls <= 6  # before: every one of ~50 blocks


def test_under_the_cap_nothing_changes(spy: Spy) -> None:
    sections = formats.parse_text(TINY * 3_000)[1]
    free = chunk_sections(sections)
    assert chunk_sections(sections, max_chunks=len(free)) == free
    with pytest.raises(ChunkLimit):
        chunk_sections(sections, max_chunks=len(free) - 1)


ALPHABET = [
    "a", "b", "Z", "é", "ж", "中", "1", "23", ".", ",", ";", " ", "  ", "\n", "\n\n", "\n\n\n", "\t",
    "-", "|", "!", "?", "'s", "<|endoftext|>", "<|fim_prefix|>", "\u3000", "😀", "x.", "Dr.", "¹", "\r\n",
]  # fmt: skip


def test_the_floor_never_exceeds_what_the_splitter_makes() -> None:
    rng = random.Random(20261130)
    splitter = chunking._splitter()
    checked = 0
    for _ in range(120):
        weights = [rng.random() ** 3 for _ in ALPHABET]
        text = "".join(rng.choices(ALPHABET, weights, k=rng.randint(400, 3500)))
        for block in chunking._blocks(text):
            if len(block) < chunking.CHUNK_TOKENS * 3:
                continue
            made = len([p for p in splitter.split_text(block) if p.strip()])
            assert chunking._floor(block) <= made, block[:120]
            checked += 1
    assert checked > 60


def test_the_floor_assumes_the_splitters_tokenizer() -> None:
    """``_floor`` reasons about cl100k_base's pre-tokenizer and special tokens."""
    encode = chunking._splitter()._tokenizer
    encoding = encode.func.__self__
    assert encoding.name == "cl100k_base"
    assert set(chunking.SPECIAL_TOKENS) == set(encoding.special_tokens_set)
