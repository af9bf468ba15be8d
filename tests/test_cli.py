"""End to end through ``deptbot`` (the same ``main`` the console script runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import CANARIES

FIXTURE_BEIR = Path(__file__).parent / "fixtures" / "beir-tiny"


def test_ask_builds_the_index_and_answers_with_a_citation(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("ask", "How many vacation days do I get?", "--user", "alice@example.com")
    assert code == 0
    assert out.startswith("Human Resources · 1 source · confidence")
    assert "From Time off policy › Annual vacation [1]:" in out
    assert "25 days of paid vacation per year." in out
    assert "[1] Time off policy — knowledge/hr/time-off.md › Annual vacation" in out
    assert "Traceback" not in out + err


def test_ask_json_has_every_answer_field(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("ask", "vacation days", "--user", "alice@example.com", "--department", "hr", "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "answered" and data["department"] == "hr"
    c = data["citations"][0]
    assert {"n", "title", "path", "anchor", "department", "score", "snippet", "modified"} <= set(c)
    assert set(data["timings"]) == {"retrieve_ms", "generate_ms", "total_ms"}
    assert data["generator"] == "extractive" and 0 <= data["confidence"] <= 1 and data["request_id"]


def test_denied_exits_3_and_says_who_can_help(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("ask", "deploys", "--user", "grace@example.com", "--department", "eng")
    assert code == 3
    assert "You can't ask Engineering: it answers group:engineering." in out
    assert "bob@example.com" in out and "request " in out


def test_usage_errors_exit_2_without_traceback(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("ask", "hi", "--user", "alice@example.com", "--department", "legal")
    assert code == 2 and "Valid departments: eng, finance, hr" in err
    code, _, err = run("ask", "   ", "--user", "alice@example.com")
    assert code == 2 and "Please type a question" in err
    code, _, err = run("ask", "x" * 4001, "--user", "alice@example.com")
    assert code == 2 and "4,000" in err


def test_dont_know_exits_0_and_names_admins(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        "ask", "What is the cafeteria menu on Tuesday?", "--user", "alice@example.com", "--department", "hr"
    )
    assert code == 0 and "couldn't find this in the Human Resources knowledge" in out
    assert "hank@example.com" in out


def test_run_template_is_role_checked(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("run", "offer-letter", "Jane Doe, 25 vacation days", "--user", "grace@example.com")
    assert code == 3
    code, out, _ = run("run", "offer-letter", "Jane Doe, 25 vacation days", "--user", "alice@example.com")
    assert code == 0 and "Human Resources" in out
    code, _, err = run("run", "no-such-template", "x", "--user", "alice@example.com")
    assert code == 2 and "No department has a template" in err


def test_index_counts_are_incremental(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("index", "hr")
    assert code == 0 and out.splitlines()[1].split()[:6] == ["hr", "2", "0", "0", "0", "0"]
    root: Path = run.root
    (root / "knowledge" / "hr" / "time-off.md").write_text("# Time off\nNow 26 days.\n")
    (root / "knowledge" / "hr" / "broken.pdf").write_bytes(b"not a pdf at all")
    code, out, _ = run("index", "hr")
    lines = out.splitlines()
    assert lines[1].split()[:6] == ["hr", "0", "1", "0", "1", "1"]
    assert any(line.startswith("failed: knowledge/hr/broken.pdf") and "skipped" in line for line in lines)


def test_check_reports_config_errors_with_file_line_field(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("check")
    assert code == 0 and "3 departments" in out and "extractive" in out
    (run.root / "departments" / "hr.yaml").write_text(
        "title: HR\nknowledge: ../knowledge/hr\nask: [group:ghosts]\n"
    )
    code, _, err = run("check")
    assert code == 2 and "hr.yaml:3: ask[0]: group 'ghosts' does not exist" in err


def test_audit_tail_shows_decisions_not_document_text(run) -> None:  # type: ignore[no-untyped-def]
    run("ask", "payroll salary band L3", "--user", "carol@example.com", "--department", "finance")
    run("ask", "deploys", "--user", "grace@example.com", "--department", "eng")
    code, out, _ = run("audit", "tail", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["decision"] for r in rows] == ["allowed", "denied"]
    assert rows[0]["doc_ids"] == ["finance/payroll/salary-bands.md"]
    assert CANARIES["payroll"] not in out
    code, out, _ = run("audit", "tail")
    assert "denied" in out and "grace@example.com" in out


def test_eval_on_the_tiny_beir_fixture(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("eval", str(FIXTURE_BEIR), "--json", "--mode", "bm25")
    data = json.loads(out)
    # Hand-checked in tests/fixtures/beir-tiny/README (BM25 ranks): see test_kb_evaluate.
    assert code == 0 and data["queries"] == 3 and 0 < data["ndcg_at_10"] <= 1
    code, out, _ = run("eval", str(FIXTURE_BEIR))
    assert code == 0 and "nDCG@10" in out and "MRR@10" in out


def test_usage_and_manifest_commands(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("usage")
    assert code == 0 and "No usage recorded." in out
    code, _, err = run("usage", "--since", "yesterday")
    assert code == 2 and "--since" in err
    code, out, _ = run("manifest", "slack", "--url", "https://bot.example.com")
    assert code == 0 and "https://bot.example.com/slack/events" in out
    code, _, err = run("manifest", "teams")
    assert code == 2 and "--app-id" in err


def test_chat_keeps_history_and_pins_departments(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    lines = iter(["How many vacation days do I get?", "/dept finance", "meal expenses per day", "", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code, out, _ = run("chat", "--user", "alice@example.com")
    assert code == 0
    assert "departments you can ask: finance, hr" in out
    assert "From Time off policy › Annual vacation [1]:" in out
    assert "25 days of paid vacation per year." in out
    assert "department: finance" in out
    assert "60 dollars per day" in out and out.count("Sources") == 2


def test_python_dash_m_bot_is_the_same_cli() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "deptbot" in result.stdout and "ask" in result.stdout


def test_audit_tail_neutralizes_terminal_control_characters(run) -> None:  # type: ignore[no-untyped-def]
    run("ask", "vacation days", "--user", "alice@example.com", "--department", "hr")
    from bot.store.audit import SqliteAuditLog

    log = SqliteAuditLog(path=run.root / "state" / "audit.db")
    log._db.execute("update requests set user = ?", ["evil\x1b[2J@example.com"])
    code, out, _ = run("audit", "tail")
    assert code == 0 and "\x1b" not in out and "evil?[2J@example.com" in out
