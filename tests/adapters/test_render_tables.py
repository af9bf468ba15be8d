"""Tables and lists in answers render natively on every surface, and the label says who
wrote the words (issue #15, items 2 and 8)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.adapters import console
from bot.adapters import render as shared
from bot.adapters.slack import blocks as bk
from bot.adapters.slack import limits as slack_limits
from bot.adapters.teams import render as tr
from bot.core.types import Answer, Citation, Status
from tests.adapters.teams import limits as teams_limits

TEXT = """From Purchasing rules › Approval limits [1]:

Who signs off depends on the total value.

| Order value | Who approves | Quotes |
|---|---|---|
| €5,000.01 – €25,000 | Budget holder and department head | 2 quotes |
| <!channel> | <@U123> | |

You must also:

- ask Legal for non-standard terms;
- ask IT for software."""


def answer(text: str = TEXT, **kw: Any) -> Answer:
    cite = Citation(
        n=1,
        title="Purchasing rules",
        path="knowledge/finance/purchasing.md",
        department="finance",
        score=0.8,
        snippet="Who signs off depends on the total value.",
        anchor="Approval limits",
        modified=datetime(2026, 1, 20, tzinfo=UTC),
    )
    fields: dict[str, Any] = dict(
        text=text,
        request_id="abc123",
        citations=(cite,),
        department="finance",
        department_title="Finance",
        generator="extractive",
        model="extractive",
    )
    fields.update(kw)
    return Answer(**fields)


def table_problems(blocks: list[dict[str, Any]]) -> list[str]:
    """Slack's table-block rules (docs.slack.dev table-block), which ``limits`` does not know:
    one table per message, ≤ 100 rows of ≤ 20 cells, every cell with visible text."""
    tables = [b for b in blocks if b["type"] == "table"]
    found = ["more than one table"] if len(tables) > 1 else []
    for t in tables:
        if not 1 <= len(t["rows"]) <= bk.TABLE_ROWS:
            found.append("rows")
        for row in t["rows"]:
            if not 1 <= len(row) <= bk.TABLE_CELLS or len(row) != len(t["rows"][0]):
                found.append("cells")
            found += ["empty cell" for c in row if not bk.cell_text(c).strip()]
        if len(t.get("column_settings", [])) > bk.TABLE_CELLS:
            found.append("column_settings")
    return found


def test_parts_split_prose_and_tables() -> None:
    found = shared.parts(TEXT)
    assert [type(p).__name__ for p in found] == ["Prose", "Table", "Prose"]
    table = found[1]
    assert isinstance(table, shared.Table)
    assert table.header == ("Order value", "Who approves", "Quotes")
    assert table.rows[0] == ("€5,000.01 – €25,000", "Budget holder and department head", "2 quotes")
    assert shared.parts("a | b | c") == [shared.Prose("a | b | c")]  # no separator: not a table


def test_terminal_shows_aligned_columns_within_the_width() -> None:
    out = console.render_text(answer(), width=60)
    assert "Order value" in out and " │ " in out and "─┼─" in out
    assert "|---|" not in out
    assert max(len(line) for line in out.splitlines()) <= 60, out
    assert "- ask Legal for non-standard terms;" in out  # the list stays a list


def test_slack_sends_one_native_table_block_within_limits() -> None:
    blocks = bk.answer_blocks(answer())
    assert slack_limits.problems("chat.postMessage", {"text": "x", "blocks": blocks}) == []
    assert table_problems(blocks) == []
    [table] = [b for b in blocks if b["type"] == "table"]
    assert table["rows"][0][0]["type"] == "rich_text"
    assert bk.cell_text(table["rows"][0][0]) == "Order value"
    assert bk.cell_text(table["rows"][1][1]) == "Budget holder and department head"
    cells = [bk.cell_text(c) for row in table["rows"] for c in row]
    assert all(c.strip() for c in cells)  # raw_text needs at least one character
    assert "<" not in "".join(cells)  # no cell can spell a mention
    assert all(len(row) == 3 for row in table["rows"])
    mrkdwn = " ".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    assert "• ask Legal" in mrkdwn and "|---|" not in mrkdwn


def test_slack_second_or_oversized_table_falls_back_to_a_code_block() -> None:
    big = "| a | b |\n|---|---|\n" + "\n".join(f"| {i} | row {i} |" for i in range(150))
    text = TEXT + "\n\n" + big
    blocks = bk.answer_blocks(answer(text))
    assert slack_limits.problems("chat.postMessage", {"text": "x", "blocks": blocks}) == []
    assert table_problems(blocks) == []
    assert sum(b["type"] == "table" for b in blocks) == 1  # Slack allows one table per message
    code = [b for b in blocks if b["type"] == "section" and b["text"]["text"].startswith("```")]
    assert code and len(code[0]["text"]["text"]) <= slack_limits.TEXT
    assert bk.table_block(shared.parts(big)[0]) is None  # type: ignore[arg-type]  # 151 rows > 100


def test_teams_chat_reply_carries_the_table_as_an_adaptive_card_table() -> None:
    act = tr.render_answer(answer(), kind=tr.PERSONAL)
    assert teams_limits.problems(act) == []
    assert "|---|" not in act["text"] and "- ask Legal for non-standard terms;" in act["text"]
    text = act["text"]
    assert text.index("total value.") < text.index("(The table is below.)") < text.index("You must also:")
    card = act["attachments"][0]["content"]
    assert card["version"] == "1.5"
    [table] = card["body"]
    assert table["type"] == "Table" and table["firstRowAsHeader"] is True
    assert len(table["columns"]) == 3 and len(table["rows"]) == 3
    header = [c["items"][0]["text"] for c in table["rows"][0]["cells"]]
    assert header == ["Order value", "Who approves", "Quotes"]
    assert "<" not in str(table)  # card text is made inert like the rest


def test_teams_channel_card_keeps_text_table_text_in_order() -> None:
    act = tr.render_answer(answer(), kind=tr.CHANNEL)
    assert teams_limits.problems(act) == []
    card = act["attachments"][0]["content"]
    kinds = [b["type"] for b in card["body"]]
    assert kinds[:3] == ["TextBlock", "Table", "TextBlock"] and card["version"] == "1.5"
    plain = tr.render_answer(answer("You get 25 days [1]."), kind=tr.CHANNEL)
    assert plain["attachments"][0]["content"]["version"] == tr.CARD_VERSION  # no table: unchanged


QUOTED = "Quoted from Finance documents — no AI model wrote this."


def test_quoted_answers_are_not_labelled_ai_on_teams() -> None:
    act = tr.render_answer(answer(), kind=tr.PERSONAL)
    [entity] = act["entities"]
    assert "additionalType" not in entity and entity["citation"][0]["position"] == 1
    assert QUOTED in act["text"]
    card = tr.render_answer(answer(), kind=tr.CHANNEL)["attachments"][0]["content"]
    assert any(b.get("text") == QUOTED for b in card["body"])


def test_model_answers_keep_the_ai_label_on_teams() -> None:
    act = tr.render_answer(answer(generator="anthropic", model="claude"), kind=tr.PERSONAL)
    [entity] = act["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    assert "Quoted from" not in act["text"]
    assert teams_limits.problems(act) == []


def test_sources_only_is_neither_ai_nor_quoted() -> None:
    act = tr.render_answer(answer(status=Status.SOURCES_ONLY, generator=""), kind=tr.PERSONAL)
    assert "additionalType" not in act["entities"][0] and "Quoted from" not in act["text"]


def _footer(blocks: list[dict[str, Any]]) -> str:
    contexts = [b for b in blocks if b["type"] == "context"]
    return " ".join(e["text"] for e in contexts[-1]["elements"])


def test_slack_wording_says_who_wrote_the_answer() -> None:
    assert QUOTED in _footer(bk.answer_blocks(answer()))
    model = _footer(bk.answer_blocks(answer(generator="openai", model="gpt")))
    assert "AI-generated from Finance documents" in model and "Quoted" not in model
    dont_know = _footer(bk.answer_blocks(answer(status=Status.DONT_KNOW, generator="")))
    assert "AI-generated" not in dont_know and "Quoted" not in dont_know


def test_a_table_too_wide_for_the_terminal_is_shown_row_by_row() -> None:
    header = " | ".join(f"column_{k}" for k in range(8))
    row = " | ".join(f"value number {k}" for k in range(8))
    text = f"From Leave types [1]:\n\n| {header} |\n|{'---|' * 8}\n| {row} |"
    out = console.render_text(answer(text), width=60)
    assert "column_0: value number 0" in out and "column_7: value number 7" in out
    assert max(len(line) for line in out.splitlines()) <= 60, out
