"""``deptbot audit verify|export`` and ``deptbot retention run``: exit codes and what they print."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.audit import SqliteAuditLog
from tests.fakes import make_company
from tests.governance.test_audit_chain import KEY, entry

Run = Callable[..., tuple[int, str, str]]


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


def _log(tmp_path: Path, n: int = 5) -> SqliteAuditLog:
    log = SqliteAuditLog(path=tmp_path / "state" / "audit.db", env={"DEPTBOT_AUDIT_KEY": KEY})
    now = datetime.now(UTC)
    for i in range(1, n + 1):
        log.record(entry(i, time=now - timedelta(days=n - i)))
    return log


def test_verify_without_a_log_says_so(run: Run) -> None:
    code, out, _ = run("audit", "verify")
    assert code == 0 and "No audit log" in out


def test_verify_exits_0_with_count_head_and_checkpoint_line(run: Run, tmp_path: Path) -> None:
    head = _log(tmp_path).verify().head_mac
    code, out, err = run("audit", "verify")
    assert code == 0, err
    assert "audit chain intact: 5 rows, 5 verified (rows 1–5)" in out
    assert f"chain head: row 5, MAC {head}" in out
    assert f"deptbot-audit-checkpoint seq=5 mac={head} count=5 " in out
    assert run("audit", "verify", "--expect", f"5:{head}")[0] == 0


def test_verify_exits_1_naming_the_edited_row(run: Run, tmp_path: Path) -> None:
    log = _log(tmp_path)
    conn = sqlite3.connect(log.path)
    conn.execute("update requests set department = 'finance' where seq = 3")
    conn.commit()
    code, out, err = run("audit", "verify")
    assert code == 1 and "FAILED at row 3 (edited)" in err and "2 rows verified before it" in err
    assert "Traceback" not in out + err


def test_verify_catches_a_cut_tail_against_an_expected_checkpoint(run: Run, tmp_path: Path) -> None:
    log = _log(tmp_path)
    head = log.verify()
    conn = sqlite3.connect(log.path)
    conn.execute("delete from requests where seq = 5")
    conn.commit()
    code, _, err = run("audit", "verify", "--expect", f"seq={head.head_seq} mac={head.head_mac}")
    assert code == 1 and "FAILED at row 5 (truncated)" in err
    assert run("audit", "verify", "--expect", "nonsense")[0] == 2


def test_verify_never_invents_a_key(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _log(tmp_path)
    monkeypatch.delenv("DEPTBOT_AUDIT_KEY")
    code, _, err = run("audit", "verify")
    assert code == 2 and "audit key file does not exist" in err
    assert not (tmp_path / "state" / "keys" / "audit.key").exists()


def test_export_verifies_offline_and_a_tampered_export_fails(run: Run, tmp_path: Path) -> None:
    _log(tmp_path)
    out_file = tmp_path / "audit.jsonl"
    code, _, err = run("audit", "export", "--out", str(out_file))
    assert code == 0 and "wrote 5 audit rows" in err
    assert out_file.stat().st_mode & 0o777 == 0o600
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert all({"prev_hash", "row_hash"} <= set(r) and "question" not in r for r in rows)
    code, out, err = run("audit", "verify", "--file", str(out_file))
    assert code == 0 and "5 verified" in out, err

    rows[3]["status"] = "denied"
    out_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run("audit", "verify", "--file", str(out_file))
    assert code == 1 and "FAILED at row 4 (edited)" in err

    del rows[1]  # a row left out of the export
    rows[2]["status"] = "answered"
    out_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run("audit", "verify", "--file", str(out_file))
    assert code == 1 and "FAILED at row 2 (deleted)" in err


def test_export_since_a_date_starts_there_and_still_verifies(run: Run, tmp_path: Path) -> None:
    _log(tmp_path)
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    code, out, _ = run("audit", "export", "--since", since)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seq"] for r in rows][-1] == 5 and rows[0]["seq"] >= 4
    (tmp_path / "part.jsonl").write_text(out)
    code, out, _ = run("audit", "verify", "--file", str(tmp_path / "part.jsonl"))
    assert code == 0 and f"starts at row {rows[0]['seq']}" in out
    assert run("audit", "export", "--since", "yesterday")[0] == 2


def test_export_with_text_and_as_csv(run: Run, tmp_path: Path) -> None:
    _log(tmp_path, n=2)
    code, out, _ = run("audit", "export", "--with-text")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["question"] for r in rows] == ["question 1", "question 2"]
    (tmp_path / "text.jsonl").write_text(out)
    assert run("audit", "verify", "--file", str(tmp_path / "text.jsonl"))[0] == 0
    code, out, _ = run("audit", "export", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["seq"] for r in table] == ["1", "2"] and table[0]["row_hash"]


def test_retention_run_dry_run_then_for_real(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(tmp_path)
    code, out, _ = run("retention", "run")
    assert code == 0 and "Retention is off" in out
    monkeypatch.setenv("DEPTBOT_RETENTION__AUDIT_DAYS", "2")
    code, out, _ = run("retention", "run", "--dry-run")
    assert code == 0 and "audit" in out and "would delete 3" in out
    code, out, _ = run("retention", "run")
    assert code == 0 and "deleted 3" in out
    code, out, _ = run("audit", "verify")
    assert code == 0 and "3 verified (rows 4–6)" in out  # 2 kept + the retention row
