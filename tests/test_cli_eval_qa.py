"""``deptbot eval --qa``: answer-level evals through the real pipeline, as a named user."""

from __future__ import annotations

import json
from pathlib import Path

HR_EVALS = """
evals:
  min_source_hit: 1.0
  min_fact_hit: 1.0
  min_refusal: 1.0
  cases:
    - question: How many vacation days do I get per year?
      sources: [time-off.md]
      facts: ["25 days"]
    - question: What is the phone number of the cafeteria?
      unanswerable: true
"""


def _add_evals(root: Path, dept: str, block: str) -> None:
    path = root / "departments" / f"{dept}.yaml"
    path.write_text(path.read_text() + block)


def test_passing_evals_exit_0_with_json_per_department(run) -> None:  # type: ignore[no-untyped-def]
    _add_evals(run.root, "hr", HR_EVALS)
    code, out, err = run("eval", "--qa", "hr", "--json")
    assert code == 0, out + err
    data = json.loads(out)
    assert data["passed"] is True
    [hr] = data["departments"]
    assert hr["name"] == "hr" and hr["cases"] == 2 and hr["answerable"] == 1 and hr["unanswerable"] == 1
    assert hr["source_hit"] == 1.0 and hr["fact_hit"] == 1.0 and hr["refusal"] == 1.0
    assert hr["wrong_answers"] == 0 and hr["below"] == []
    assert set(hr["latency_ms"]) == {"median", "p95"} and hr["latency_ms"]["p95"] > 0
    first, second = hr["results"]
    # asked as the first HR admin who may ask HR (hank), through the real pipeline
    assert first["user"] == "hank@example.com" and first["asked"] == "hr"
    assert first["status"] == "answered" and first["cited"] == ["hr/time-off.md"] and first["correct"]
    assert second["status"] == "dont_know" and second["correct"]


def test_a_missing_fact_exits_1_and_names_it(run) -> None:  # type: ignore[no-untyped-def]
    _add_evals(run.root, "hr", HR_EVALS.replace('facts: ["25 days"]', 'facts: ["30 days"]'))
    code, out, _ = run("eval", "--qa", "hr")
    assert code == 1
    assert "fact hit 0% < 100%" in out
    assert "How many vacation days do I get per year? — answered, missing '30 days'" in out
    code, out, _ = run("eval", "--qa", "--json")  # every department with an evals: block
    assert code == 1 and json.loads(out)["passed"] is False


def test_an_answered_unanswerable_case_lowers_refusal(run) -> None:  # type: ignore[no-untyped-def]
    block = HR_EVALS.replace(
        "What is the phone number of the cafeteria?", "How many vacation days carry over?"
    )
    _add_evals(run.root, "hr", block)
    code, out, _ = run("eval", "--qa", "hr", "--json")
    assert code == 1
    [hr] = json.loads(out)["departments"]
    assert hr["refusal"] == 0.0 and hr["below"] == ["refusal 0% < 100%"]


def test_usage_errors_exit_2(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("eval", "--qa", "hr")
    assert code == 2 and "hr has no evals: block" in err
    code, _, err = run("eval", "--qa")
    assert code == 2 and "No department has an evals: block" in err
    _add_evals(run.root, "hr", HR_EVALS)
    code, _, err = run("eval", "--qa", "nosuch")
    assert code == 2 and "Unknown department 'nosuch'" in err
    code, _, err = run("eval")
    assert code == 2 and "--qa" in err
    code, _, err = run("eval", "--qa", "hr", "--mode", "bm25")
    assert code == 2


def test_the_eval_user_must_be_allowed_by_the_access_rules(run) -> None:  # type: ignore[no-untyped-def]
    block = """
evals:
  cases:
    - question: When do production deploys happen?
      facts: ["Tuesday"]
"""
    _add_evals(run.root, "eng", block)
    # alice may not ask Engineering: refused before anything runs, never bypassed
    code, out, err = run("eval", "--qa", "eng", "--user", "alice@example.com")
    assert code == 2 and "alice@example.com may not ask eng" in err and out == ""
    code, out, err = run("eval", "--qa", "eng", "--json")  # bob, the admin, may ask
    assert code == 0, out + err
    assert json.loads(out)["departments"][0]["results"][0]["user"] == "bob@example.com"


def test_invalid_evals_block_is_a_configuration_error(run) -> None:  # type: ignore[no-untyped-def]
    _add_evals(run.root, "hr", "\nevals:\n  cases:\n    - question: Only a question\n")
    code, _, err = run("eval", "--qa", "hr")
    assert code == 2 and "configuration error" in err and "unanswerable" in err


def test_an_eval_file_routes_cases_and_uses_per_case_users(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "qa.yaml"
    path.write_text(
        """
user: alice@example.com
min_refusal: 1.0
cases:
  - question: How much are meal expenses reimbursed per day?
    sources: [finance/expenses.md]
    facts: ["60 dollars"]
  - question: What does salary band L3 pay?
    unanswerable: true   # payroll is for Finance admins only
  - question: What does salary band L3 pay?
    user: carol@example.com
    sources: [finance/payroll/salary-bands.md]
    facts: ["95,000"]
"""
    )
    code, out, err = run("eval", "--qa", "--file", str(path), "--json")
    assert code == 0, out + err
    [report] = json.loads(out)["departments"]
    results = report["results"]
    assert [r["asked"] for r in results] == ["auto", "auto", "auto"]
    assert results[0]["answered_by"] == "finance" and results[0]["correct"]
    assert results[1]["status"] == "dont_know" and results[1]["cited"] == []
    assert results[2]["user"] == "carol@example.com" and results[2]["correct"]
