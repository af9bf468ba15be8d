"""A quoted table reaches Slack as one native table block, through the stub Web API (which
checks every payload against Slack's limits), with the "quoted, not AI" wording."""

from __future__ import annotations

from typing import Any

from bot.adapters.slack import blocks as bk
from bot.config import Company
from tests.adapters.slack.conftest import SlackHarness, mention
from tests.adapters.slack.test_slack_server import run
from tests.adapters.test_render_tables import table_problems
from tests.fakes import FakeRetriever, add_document

APPROVALS = """\
# Purchasing approvals

## Approval limits

Who signs off on a purchase depends on its total value, excluding VAT.

| Order value | Who approves | Quotes |
|---|---|---|
| up to €5,000 | Budget holder | 1 quote |
| €5,000.01 – €25,000 | Budget holder and department head | 2 quotes |
| above €25,000 | Finance Director | 3 quotes |
"""


def test_a_table_answer_posts_a_table_block_and_says_it_is_quoted(
    harness: SlackHarness, company: Company, retriever: FakeRetriever
) -> None:
    add_document(company, retriever, "hr/approvals.md", APPROVALS)

    async def scenario(h: SlackHarness) -> None:
        await h.event(mention("Who approves a purchase of 12,000 euros?"))
        (post,) = await h.stub.wait_for("chat.postMessage")
        assert h.stub.violations == []
        blocks: list[dict[str, Any]] = post["blocks"]
        assert table_problems(blocks) == []
        (table,) = [b for b in blocks if b["type"] == "table"]
        texts = [[bk.cell_text(c) for c in row] for row in table["rows"]]
        assert texts == [
            ["Order value", "Who approves", "Quotes"],
            ["€5,000.01 – €25,000", "Budget holder and department head", "2 quotes"],
        ]
        footer = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
        assert any("no AI model wrote this" in t for t in footer)

    run(harness, scenario)
