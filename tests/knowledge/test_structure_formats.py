"""Tables stay tables (pipe rows under their header) and lists stay lists, in every format."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from bot.config import Department
from bot.knowledge import ingest
from bot.knowledge.chunking import PIECE_CHARS, chunk_sections
from bot.knowledge.formats import parse_csv

ROWS = [
    ("Amount", "Approver"),
    ("up to 5,000 EUR", "Budget owner"),
    ("5,000.01 - 25,000 EUR", "Department head"),
]
TABLE = (
    "| Amount | Approver |\n|---|---|\n| up to 5,000 EUR | Budget owner |\n"
    "| 5,000.01 - 25,000 EUR | Department head |"
)


def parse(dept: Department, rel: str) -> str:
    src = next(s for s in ingest.scan(dept) if s.rel == rel)
    return "\n\n".join(c.text for c in ingest.parse_file(src, dept).chunks)


def test_html_table_cells_are_separated_under_their_header(
    dept: Department, write: Callable[..., Path]
) -> None:
    cells = "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in ROWS[1:])
    write(
        "approvals.html",
        "<html><body><h1>Approvals</h1><p>Purchases need approval as follows:</p>"
        f"<table><tr><th>Amount</th><th>Approver</th></tr>{cells}</table>"
        "<p>To request:</p><ul><li>Open a ticket</li><li>Attach the <b>quote</b></li></ul></body></html>",
    )
    text = parse(dept, "approvals.html")
    assert TABLE in text  # was "AmountApproverup to 5,000 EURBudget owner…"
    assert "To request:\n\n- Open a ticket\n- Attach the quote" in text


def test_pdf_table_keeps_its_cells(dept: Department, write: Callable[..., Path]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Table

    buf = io.BytesIO()
    ss = getSampleStyleSheet()
    story = [
        Paragraph("Purchases need approval as follows:", ss["Normal"]),
        Table([list(r) for r in ROWS]),
        Paragraph("To request:", ss["Normal"]),
        ListFlowable(
            [ListItem(Paragraph(t, ss["Normal"])) for t in ("Open a ticket", "Attach the quote")],
            bulletType="bullet",
        ),
    ]
    SimpleDocTemplate(buf, pagesize=A4).build(story)
    write("approvals.pdf", buf.getvalue())
    text = parse(dept, "approvals.pdf")
    assert TABLE in text  # plain extraction gave one cell per line, no rows
    assert "- Open a ticket\n- Attach the quote" in text


def test_docx_table_and_list(dept: Department, write: Callable[..., Path]) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Approvals", level=1)
    d.add_paragraph("Purchases need approval as follows:")
    table = d.add_table(rows=3, cols=2)
    for i, (a, b) in enumerate(ROWS):
        table.cell(i, 0).text, table.cell(i, 1).text = a, b
    d.add_paragraph("To request:")
    d.add_paragraph("Open a ticket", style="List Bullet")
    d.add_paragraph("Attach the quote", style="List Bullet")
    d.add_paragraph("Check", style="List Number")
    buf = io.BytesIO()
    d.save(buf)
    write("approvals.docx", buf.getvalue())
    text = parse(dept, "approvals.docx")
    assert TABLE in text  # cells were separate paragraphs without a header
    assert "- Open a ticket\n- Attach the quote\n1. Check" in text


def test_markdown_table_and_list_are_kept(dept: Department, write: Callable[..., Path]) -> None:
    write(
        "approvals.md",
        f"# Approvals\n\nPurchases need approval as follows:\n\n{TABLE}\n\n"
        "To request:\n\n- Open a ticket\n- Attach the quote\n",
    )
    text = parse(dept, "approvals.md")
    assert TABLE in text and "- Open a ticket\n- Attach the quote" in text


def test_csv_rows_are_small_tables_with_the_header() -> None:
    wide = "x" * 200
    _, sections = parse_csv(f"leave,days,notes\nVacation,25,{wide}\nSick,20,{wide}\nBereavement,5,short\n")
    assert [a for a, _ in sections] == ["row 2", "row 3", "row 4"]
    assert sections[2][1] == "| leave | days | notes |\n|---|---|---|\n| Bereavement | 5 | short |"


def test_a_long_table_is_split_between_rows_with_the_header_in_every_chunk() -> None:
    rows = "\n".join(f"| item {i} | {'y' * 60} | {i * 100} EUR |" for i in range(80))
    text = (
        "Long intro. " * 40 + "\n\nThe limits are:\n\n| Item | Description | Amount |\n|---|---|---|\n" + rows
    )
    chunks = chunk_sections([("Limits", text)])
    tables = [c.text for c in chunks if "| item" in c.text]
    assert len(tables) > 3
    assert tables[0].startswith("The limits are:\n\n| Item | Description | Amount |")  # intro kept
    for t in tables:
        lines = t[t.index("| Item") :].splitlines()
        assert lines[:2] == ["| Item | Description | Amount |", "|---|---|---|"]
        assert all(line.startswith("| item ") and line.endswith("EUR |") for line in lines[2:])  # whole rows
        assert len(t) <= PIECE_CHARS
    body = [line for t in tables for line in t.splitlines()[2:] if line.startswith("| item ")]
    assert len(body) == 80 and len(set(body)) == 80  # every row once


def test_a_list_is_not_cut_from_the_sentence_introducing_it() -> None:
    text = (
        "Background paragraph. " * 45
        + "\n\nYou must bring the following documents:\n\n"
        + "\n".join(f"- document number {i}" for i in range(8))
    )
    chunks = chunk_sections([("Docs", text)])
    holder = next(c.text for c in chunks if "following documents" in c.text)
    assert "- document number 0" in holder and "- document number 7" in holder
