"""Files outside the folder: links, special files and swaps between scan and read.

Only regular files whose real path stays inside the department's knowledge folder are
indexed; every skipped entry is reported with a reason (issue 8, class 3).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Department
from bot.knowledge import KnowledgeBase, ingest
from tests.knowledge.conftest import scope
from tests.knowledge.test_kb_ingest import make_pdf, parse_all

CANARY = "PAYROLL-CANARY-7731"


@pytest.fixture
def finance(tmp_path: Path) -> Path:
    """A sibling department's restricted file, outside knowledge/hr."""
    path = tmp_path / "repo" / "knowledge" / "finance" / "payroll" / "bands.md"
    path.parent.mkdir(parents=True)
    path.write_text(f"# Salary bands\n\nL3 band is 90k. {CANARY}\n", encoding="utf-8")
    return path


def everything(kb: KnowledgeBase, query: str) -> str:
    return "\n".join(c.text for c in kb.retrieve(query, scope(), top_k=50))


def reasons(report_failed: tuple[object, ...]) -> dict[str, str]:
    return {f.path: f.reason for f in report_failed}  # type: ignore[attr-defined]


def test_link_to_another_department_or_etc_passwd_is_not_indexed(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path], finance: Path
) -> None:
    write("open.md", "# Open\n\nFor everyone.\n")
    os.symlink(os.path.relpath(finance, dept.knowledge), dept.knowledge / "bands.md")
    os.symlink("/etc/passwd", dept.knowledge / "passwd.txt")
    report = kb.refresh(dept)
    assert CANARY not in everything(kb, "salary bands L3 payroll")
    assert "root:" not in everything(kb, "root bin bash nologin")
    failed = reasons(report.failed)
    assert "outside the knowledge folder" in failed["knowledge/hr/bands.md"]
    assert "outside the knowledge folder" in failed["knowledge/hr/passwd.txt"]
    assert report.added == 1


def test_folder_link_to_outside_is_not_followed(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path], finance: Path
) -> None:
    write("open.md", "# Open\n\nFor everyone.\n")
    os.symlink(finance.parent, dept.knowledge / "shared")
    report = kb.refresh(dept)
    assert CANARY not in everything(kb, "salary bands L3")
    assert "outside the knowledge folder" in reasons(report.failed)["knowledge/hr/shared"]


def test_links_inside_are_skipped_by_default(dept: Department, write: Callable[..., Path]) -> None:
    write("policies/leave.md", "# Leave\n\nTake your leave.\n")
    os.symlink("policies/leave.md", dept.knowledge / "leave.md")
    docs, failed = parse_all(dept)
    assert set(docs) == {"policies/leave.md"}
    assert failed["leave.md"].startswith("symbolic link: not followed")


def test_special_files_are_skipped_with_a_reason(dept: Department, write: Callable[..., Path]) -> None:
    write("open.md", "# Open\n\nFor everyone.\n")
    os.mkfifo(dept.knowledge / "pipe.md")
    docs, failed = parse_all(dept)
    assert set(docs) == {"open.md"}
    assert failed["pipe.md"].startswith("not a regular file")


def test_file_swapped_for_a_link_after_the_scan_is_not_read(
    dept: Department, write: Callable[..., Path], finance: Path
) -> None:
    path = write("notes.md", "# Notes\n\nHarmless.\n")
    (src,) = ingest.scan(dept)
    path.unlink()
    os.symlink(finance, path)
    with pytest.raises(ingest.IngestError) as caught:
        ingest.parse_file(src, dept)
    assert "changed" in caught.value.reason


def test_pdf_is_parsed_from_the_bytes_checked_not_reopened(
    dept: Department, write: Callable[..., Path]
) -> None:
    path = write("handbook.pdf", make_pdf(["Welcome to the handbook."]))
    (src,) = ingest.scan(dept)
    replacement = path.with_name("new.tmp")
    replacement.write_bytes(make_pdf([f"Swapped in later {CANARY}"]))
    os.replace(replacement, path)  # a new inode at the same path
    try:
        doc = ingest.parse_file(src, dept)
    except ingest.IngestError as exc:
        assert "changed" in exc.reason
    else:
        assert all(CANARY not in c.text for c in doc.chunks)


INSIDE = ingest.Limits(follow_links="inside")


def test_links_inside_may_be_followed_and_keep_both_narrowings(
    dept: Department, write: Callable[..., Path]
) -> None:
    write("public/_access.yaml", 'audience: ["group:hr-team"]\n')
    write("private/_access.yaml", 'audience: ["group:hr-admins"]\n')
    write("private/cases/notes.md", f"# Notes\n\nCase notes {CANARY}.\n")
    os.symlink("../private/cases/notes.md", dept.knowledge / "public" / "notes.md")
    os.symlink("../private/cases", dept.knowledge / "public" / "cases")
    os.symlink("../../private", dept.knowledge / "private" / "cases" / "loop")
    docs, failed = {}, {}
    for src in ingest.scan(dept, INSIDE):
        try:
            docs[src.rel] = ingest.parse_file(src, dept, INSIDE)
        except ingest.IngestError as exc:
            failed[src.rel] = exc.reason
    both = {("group:hr-team",), ("group:hr-admins",)}
    assert set(docs["public/notes.md"].audiences) == both
    assert set(docs["public/cases/notes.md"].audiences) == both
    assert docs["private/cases/notes.md"].audiences == (("group:hr-admins",),)
    assert "loop" in failed["private/cases/loop"]


def test_followed_links_never_reach_hidden_or_non_documents(
    dept: Department, write: Callable[..., Path], finance: Path
) -> None:
    write(".git/config.md", "# Git\n\nremote secrets\n")
    write("notes.txt", "plain notes")
    os.symlink(".git/config.md", dept.knowledge / "git.md")
    os.symlink("notes.txt", dept.knowledge / "notes.md")  # .txt read as Markdown: refused
    os.symlink(os.path.relpath(finance, dept.knowledge), dept.knowledge / "bands.md")
    failed = {s.rel: s.refused for s in ingest.scan(dept, INSIDE) if s.refused}
    assert "hidden" in failed["git.md"]
    assert "not a document of the same type" in failed["notes.md"]
    assert "outside the knowledge folder" in failed["bands.md"]


def test_an_access_file_that_cannot_be_stated_keeps_its_folder_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listed _access.yaml that vanishes or cannot be stat'ed (a save in progress) was
    skipped, so its folder was indexed under the parent's rules only."""
    from bot.knowledge import folder
    from tests.fakes import make_company

    company = make_company(tmp_path)
    fin = company.department("finance")
    real = folder._lstat
    monkeypatch.setattr(folder, "_lstat", lambda e: None if e.name == "_access.yaml" else real(e))
    sources = ingest.scan(fin)
    payroll = [s for s in sources if s.rel.startswith("payroll/")]
    assert payroll and all(s.refused for s in payroll)
