"""Ingest: every format keeps its citation anchors; broken files are reported, not fatal."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from bot.config import Department
from bot.core.types import Classification
from bot.knowledge import ingest
from tests.knowledge.conftest import TIME_OFF


def parse_all(dept: Department) -> tuple[dict[str, ingest.DocRecord], dict[str, str]]:
    docs, failed = {}, {}
    for src in ingest.scan(dept):
        try:
            docs[src.rel] = ingest.parse_file(src, dept)
        except ingest.IngestError as exc:
            failed[src.rel] = exc.reason
    return docs, failed


def make_pdf(pages: list[str]) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for text in pages:
        c.drawString(72, 720, text)
        c.showPage()
    c.save()
    return buf.getvalue()


def make_docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Expenses", level=1)
    d.add_heading("Travel claims", level=2)
    d.add_paragraph("Submit travel claims within 30 days with receipts attached.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_markdown_front_matter_headings_and_liquid(dept: Department, write: Callable[..., Path]) -> None:
    write("time-off.md", TIME_OFF)
    docs, failed = parse_all(dept)
    doc = docs["time-off.md"]
    assert failed == {}
    assert doc.title == "Time off"
    assert doc.doc_id == "hr/time-off.md"
    assert doc.path == "knowledge/hr/time-off.md"
    anchors = [c.anchor for c in doc.chunks]
    # the H1 repeats the title, so anchors start below it
    assert anchors == ["", "Annual vacation", "Sick leave"]
    text = " ".join(c.text for c in doc.chunks)
    assert "liquid-noise" not in text and "{%" not in text and "keywords" not in text
    assert doc.modified > 0


def test_title_falls_back_to_h1_then_file_name(dept: Department, write: Callable[..., Path]) -> None:
    write("a.md", "# Expense policy\n\nClaims within 30 days.\n")
    write("travel_booking-guide.txt", "Book trains, not planes, under 500 km.")
    docs, _ = parse_all(dept)
    assert docs["a.md"].title == "Expense policy"
    assert docs["travel_booking-guide.txt"].title == "Travel booking guide"
    assert docs["travel_booking-guide.txt"].chunks[0].anchor == ""


def test_html_pdf_docx_csv_anchors(dept: Department, write: Callable[..., Path]) -> None:
    write(
        "benefits.html",
        "<html><head><title>Benefits</title><script>var secret=1;</script></head><body>"
        "<h1>Benefits</h1><h2>Gym</h2><p>The gym subsidy is 40 euros a month.</p></body></html>",
    )
    write(
        "handbook.pdf",
        make_pdf(["Welcome to the company handbook.", "Laptops are replaced every four years."]),
    )
    write("expenses.docx", make_docx())
    write("contacts.csv", "name,role\nAda,Payroll\nGrace,Benefits\n")
    docs, failed = parse_all(dept)
    assert failed == {}
    html = docs["benefits.html"]
    assert html.title == "Benefits"
    assert [(c.anchor, c.text) for c in html.chunks] == [("Gym", "The gym subsidy is 40 euros a month.")]
    pdf = docs["handbook.pdf"]
    assert [c.anchor for c in pdf.chunks] == ["page 1", "page 2"]
    assert "four years" in pdf.chunks[1].text
    word = docs["expenses.docx"]
    assert word.title == "Expenses"
    assert word.chunks[0].anchor == "Travel claims"
    csv_doc = docs["contacts.csv"]
    assert csv_doc.chunks[0].anchor == "rows 2–3"
    assert csv_doc.chunks[0].text.startswith("| name | role |\n|---|---|\n| Ada | Payroll |")


def test_broken_files_are_reported_and_skipped(dept: Department, write: Callable[..., Path]) -> None:
    write("good.md", "# Good\n\nStill indexed.\n")
    write("broken.pdf", b"%PDF-1.4 this is not really a pdf")
    write("fake.pdf", b"just text named pdf")
    write("binary.txt", b"\x00\x01\x02\x03" * 50)
    write("empty.md", "")
    write("latin1.txt", "Caf\xe9 cr\xe8me".encode("latin-1"))
    write("broken.docx", b"PK not a zip")
    write("photo.png", b"\x89PNG")  # unknown extension: ignored, not failed
    write("_draft.md", "# Draft\n\nnot a document")
    write(".hidden.md", "# Hidden\n\nnot a document")
    docs, failed = parse_all(dept)
    assert set(docs) == {"good.md"}
    assert failed == {
        "broken.pdf": "not a valid PDF",
        "fake.pdf": "not a valid PDF",
        "binary.txt": "binary file",
        "empty.md": "empty file",
        "latin1.txt": "not UTF-8 text",
        "broken.docx": "not a valid Word document",
    }


def test_access_files_and_front_matter_narrow_audiences(dept: Department, write: Callable[..., Path]) -> None:
    write("open.md", "# Open\n\nFor everyone.\n")
    write("people/_access.yaml", "audience: ['group:hr-team', 'boss@example.com']\n")
    write("people/reviews/_access.yaml", "audience: ['group:managers']\nclassification: confidential\n")
    write(
        "people/reviews/2024.md",
        "---\ntitle: Reviews 2024\nclassification: restricted\n"
        "audience: [ceo@example.com, '*@board.example.com']\n---\n"
        "# Reviews\n\nCalibration notes.\n",
    )
    write("people/handbook.md", "# People\n\nHow we work.\n")
    docs, _ = parse_all(dept)
    assert docs["open.md"].audiences == ()
    assert docs["open.md"].classification == Classification.INTERNAL
    assert docs["people/handbook.md"].audiences == (("group:hr-team", "boss@example.com"),)
    review = docs["people/reviews/2024.md"]
    assert review.audiences == (
        ("group:hr-team", "boss@example.com"),
        ("group:managers",),
        ("ceo@example.com", "*@board.example.com"),
    )
    assert review.classification == Classification.RESTRICTED
    assert review.title == "Reviews 2024"


def test_invalid_access_file_fails_closed(dept: Department, write: Callable[..., Path]) -> None:
    write("secret/_access.yaml", "audience: ['not an entry']\n")
    write("secret/pay.md", "# Pay\n\nSalaries.\n")
    write("bad-audience.md", "---\naudience: [nobody at all]\n---\n# X\n\ny\n")
    docs, failed = parse_all(dept)
    assert docs == {}
    assert failed["secret/pay.md"].startswith("invalid _access.yaml")
    # The reason now names the line and field (it was "invalid audience in front matter").
    assert failed["bad-audience.md"].startswith("line 2, audience: 'nobody at all' is not an access entry")
