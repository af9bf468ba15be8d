"""An audience naming a group that does not exist is told to the admin, and stays narrow.

Review finding 7 (session 21): ``audience: ["group:finance-admin"]`` (no "s") in
``knowledge/finance/payroll/_access.yaml`` hid payroll from carol, the finance admin, while
``deptbot check`` said "configuration OK" and ``index`` reported 0 failed. Now both name
the file, line and group; the documents stay hidden (fail closed), and no document text
reaches the warning.
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Department
from bot.knowledge.audiences import unknown_groups
from tests.fakes import CANARIES

GROUPS = {"hr-admins", "finance-admins", "directory-sourced"}


def _dept(kb: Path) -> Department:
    return Department.model_validate({"name": "finance", "title": "Finance", "knowledge": kb, "ask": ["*"]})


def test_unknown_groups_name_file_line_and_entry(tmp_path: Path) -> None:
    kb = tmp_path / "knowledge" / "finance"
    (kb / "payroll").mkdir(parents=True)
    (kb / "payroll" / "_access.yaml").write_text(
        'audience:\n  - "group:finance-admins"\n  - group:Finance-Admin\n'
    )
    (kb / "payroll" / "bands.md").write_text("# Bands\nsecret\n")
    (kb / "memo.md").write_text(
        '---\ntitle: Memo\naudience: ["group:directory-sourced", "group:hr-admin"]\n---\nx\n'
    )
    (kb / "ok.md").write_text('---\naudience: ["group:hr-admins", "carol@example.com"]\n---\nfine\n')
    (kb / "notes.txt").write_text("group:nonexistent is plain text here\n")
    (kb / "refused.md").write_text('---\nAudience: ["group:nope"]\n---\nrefused by the index\n')
    found = unknown_groups(_dept(kb), GROUPS)
    assert [(p.file, p.line, p.field) for p in found] == [
        ("knowledge/finance/memo.md", 3, "audience[1]"),
        ("knowledge/finance/payroll/_access.yaml", 3, "audience[1]"),
    ]
    assert "'hr-admin' does not exist in groups.yaml" in found[0].problem
    assert "'finance-admin' does not exist" in found[1].problem and "folder stays hidden" in found[1].problem


def _break_payroll(root: Path) -> Path:
    access = root / "knowledge" / "finance" / "payroll" / "_access.yaml"
    access.write_text(access.read_text().replace("group:finance-admins", "group:finance-admin"))
    return access


def test_cli_check_and_index_warn_and_payroll_stays_hidden(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("check")
    assert code == 0 and "audience" not in out
    _break_payroll(run.root)
    code, out, err = run("check")
    assert code == 0 and "configuration OK" in out, err
    warning = (
        "warning: knowledge/finance/payroll/_access.yaml:1: audience[0]: group 'finance-admin' does not exist"
    )
    assert warning in out.replace(str(run.root) + "/", "")
    code, out, err = run("index", "finance")
    assert code == 0
    assert "warning: knowledge/finance/payroll/_access.yaml:1: audience[0]: group 'finance-admin'" in out
    assert CANARIES["payroll"] not in out + err
    # fail closed: carol (finance admin) still cannot read payroll, and the admins were told
    code, out, err = run(
        "ask", "payroll salary band L3 code", "--user", "carol@example.com", "--department", "finance"
    )
    assert CANARIES["payroll"] not in out
    code, out, err = run("check")
    assert "audience entries naming a group that does not exist" in out  # the recent notice
    assert "payroll/_access.yaml:1 (group 'finance-admin')" in out


def test_a_groups_yaml_problem_does_not_flood_the_warnings(run) -> None:  # type: ignore[no-untyped-def]
    _break_payroll(run.root)
    groups = run.root / "departments" / "groups.yaml"
    groups.write_text(groups.read_text() + "hr-team: [dup@example.com]\n")  # a duplicate key
    code, out, err = run("check")
    assert code == 2 and "groups.yaml" in err
    assert "does not exist in groups.yaml" not in out


def test_refresh_reports_render_the_warning_everywhere() -> None:
    from bot.adapters.console import report_table
    from bot.adapters.render import report_line
    from bot.adapters.teams.render import refresh_text
    from bot.core.ports import FailedFile, IndexReport

    warning = FailedFile(
        "knowledge/finance/payroll/_access.yaml:1",
        "audience[0]: group 'finance-admin' does not exist in groups.yaml",
    )
    report = IndexReport(department="finance", unchanged=3, warnings=(warning,))
    assert (
        "warning: knowledge/finance/payroll/_access.yaml:1: audience[0]: group 'finance-admin'"
        in report_table([report])
    )
    assert "Warning: _access.yaml:1: audience[0]: group 'finance-admin' does not exist" in report_line(
        report, "Finance"
    )
    assert "Warning: _access.yaml:1: audience[0]: group" in refresh_text("Finance", report)


def test_a_refresh_rereads_only_changed_files(tmp_path: Path) -> None:
    from bot.knowledge.audiences import Seen, unknown_group_uses

    kb = tmp_path / "knowledge" / "finance"
    kb.mkdir(parents=True)
    (kb / "a.md").write_text('---\naudience: ["group:nope"]\n---\nx\n')
    seen: Seen = {}
    assert [u.group for _, u in unknown_group_uses(_dept(kb), GROUPS, seen=seen)] == ["nope"]
    (kb / "a.md").write_text('---\naudience: ["group:hr-admins"]\n---\nxy\n')  # size changes
    assert unknown_group_uses(_dept(kb), GROUPS, seen=seen) == []
    assert [u.group for _, u in unknown_group_uses(_dept(kb), {"finance-admins"}, seen=seen)] == ["hr-admins"]
