"""Citation dates mean something: the document's own date, its last commit, or when it
was first indexed ("indexed") — never the mtime a clone leaves behind."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase, dates, ingest
from bot.knowledge.embedders import Embedder


def one(dept: Department, rel: str, dated: dict[str, datetime] | None = None) -> ingest.DocRecord:
    src = next(s for s in ingest.scan(dept) if s.rel == rel)
    return ingest.parse_file(src, dept, dated=dated)


def day(doc: ingest.DocRecord) -> str:
    return f"{doc.date_kind} {datetime.fromtimestamp(doc.modified, UTC):%Y-%m-%d}"


def test_pdf_metadata_date(dept: Department, write: Callable[..., Path]) -> None:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=True)  # fixed dates: 2000-01-01 unless set below
    c.drawString(72, 720, "Laptops are replaced every four years.")
    c.save()
    data = buf.getvalue().replace(b"D:20000101000000+00'00'", b"D:20250301120000+01'00'")
    write("laptops.pdf", data)
    assert day(one(dept, "laptops.pdf")) == "updated 2025-03-01"


def test_docx_core_properties(dept: Department, write: Callable[..., Path]) -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("Travel claims within 30 days.")
    d.core_properties.modified = datetime(2025, 3, 1, 9, 30)
    buf = io.BytesIO()
    d.save(buf)
    write("travel.docx", buf.getvalue())
    assert day(one(dept, "travel.docx")) == "updated 2025-03-01"


def test_python_docx_blank_template_date_is_not_an_update(
    dept: Department, write: Callable[..., Path]
) -> None:
    import docx

    d = docx.Document()  # carries 2013-12-23, the template's own date
    d.add_paragraph("Travel claims within 30 days.")
    buf = io.BytesIO()
    d.save(buf)
    write("travel.docx", buf.getvalue())
    assert one(dept, "travel.docx").date_kind == "indexed"


@pytest.mark.skipif(shutil.which("git") is None, reason="no git binary")
def test_git_history_dates_files_without_their_own(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "kb" / "sub").mkdir(parents=True)
    (repo / "kb" / "sub" / "printers.html").write_text("<p>Printers.</p>")
    (repo / "kb" / "notes.txt").write_text("Notes.")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_COMMITTER_DATE": "2025-03-01T10:00:00+00:00",
        "GIT_AUTHOR_DATE": "2025-03-01T10:00:00+00:00",
    }
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "docs"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env, capture_output=True)
    (repo / "kb" / "notes.txt").write_text("Notes, edited and not committed.")
    found = dates.git_dates(repo / "kb")
    assert {k: f"{v:%Y-%m-%d}" for k, v in found.items()} == {"sub/printers.html": "2025-03-01"}
    assert dates.git_dates(tmp_path) == {}  # not a repository: skipped


def test_a_plain_file_keeps_its_first_indexed_date_after_touching_it(
    dept: Department, write: Callable[..., Path], tmp_path: Path, wordllama: Embedder
) -> None:
    path = write("sick-leave.txt", "Report sickness before 10:00 on the first day.")
    old = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    os.utime(path, (old, old))  # an mtime must never be shown
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=wordllama)
    kb.refresh(dept)
    scope = AccessScope(department=dept.name, keys=frozenset({"*"}))
    first = kb.retrieve("sickness first day", scope)[0]
    assert first.date_kind == "indexed"
    assert first.modified is not None and first.modified.year == datetime.now(UTC).year
    os.utime(path, None)  # touched (a clone, a copy): same content
    kb.refresh(dept)
    again = kb.retrieve("sickness first day", scope)[0]
    assert (again.date_kind, again.modified) == ("indexed", first.modified)


def test_front_matter_date_is_an_update(dept: Department, write: Callable[..., Path]) -> None:
    write("a.md", "---\nupdated: 2025-03-01\n---\n# A\n\nText.\n")
    assert day(one(dept, "a.md")) == "updated 2025-03-01"


def test_pdf_date_strings() -> None:
    assert dates.parse_pdf_date("D:20250301120000+01'00'") == datetime(2025, 3, 1, 11, tzinfo=UTC)
    assert dates.parse_pdf_date("D:2025") == datetime(2025, 1, 1, tzinfo=UTC)
    assert dates.parse_pdf_date("garbage") is None
    assert dates.parse_pdf_date("D:18000101") is None  # placeholder years are not dates


def test_every_surface_labels_the_date_honestly() -> None:
    from bot.adapters import render
    from bot.adapters.console import source_line
    from bot.adapters.teams.render import citation_detail
    from bot.core.types import Citation

    when = datetime(2026, 11, 30, tzinfo=UTC)
    c = Citation(
        1, "Sick leave", "knowledge/hr/sick-leave.txt", "hr", 0.9, "", modified=when, date_kind="indexed"
    )
    assert render.updated(c) == "indexed Nov 30, 2026"
    assert source_line(c).endswith("(indexed 2026-11-30)")
    assert citation_detail(c, "HR").endswith("indexed 2026-11-30")
    dated = Citation(1, "Time off", "knowledge/hr/time-off.md", "hr", 0.9, "", modified=when)
    assert render.updated(dated) == "updated Nov 30, 2026"
