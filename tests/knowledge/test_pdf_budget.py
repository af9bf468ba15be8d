"""A PDF page over pypdf's parsing budget is refused after one pass, not two.

The reviewer's 23 KB PDF (400,000 text operators on one page) spent 10 s in layout mode,
then 10 s more in plain mode, which parses the same content stream with the same budget.
"""

from __future__ import annotations

import pytest
from pypdf.errors import LimitReachedError

from bot.knowledge import formats


class _Page:
    """A page whose content stream is over the budget in every extraction mode."""

    def __init__(self) -> None:
        self.modes: list[str] = []

    def extract_text(self, extraction_mode: str = "plain") -> str:
        self.modes.append(extraction_mode)
        raise LimitReachedError("Reached maximum number of tokens per stream.")


class _StrictLayoutPage(_Page):
    """Layout mode fails for another reason: plain mode is still tried."""

    def extract_text(self, extraction_mode: str = "plain") -> str:
        self.modes.append(extraction_mode)
        if extraction_mode == "layout":
            raise ValueError("layout mode could not place a run")
        return "Plain text."


def test_a_page_over_the_budget_is_not_parsed_again_in_plain_mode() -> None:
    page = _Page()
    with pytest.raises(LimitReachedError):
        formats._page_text(page)
    assert page.modes == ["layout"]


def test_other_layout_failures_still_fall_back_to_plain_text() -> None:
    page = _StrictLayoutPage()
    assert formats._page_text(page) == "Plain text."
    assert page.modes == ["layout", "plain"]
