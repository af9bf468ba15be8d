"""``deptbot check`` reports every problem in one run and exits 2 when there is any."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.notices import SqliteNotices
from tests.fakes import make_company


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    old_umask = os.umask(0o022)  # main() tightens it; give every test the same start

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    _run.root = tmp_path  # type: ignore[attr-defined]
    yield _run
    os.umask(old_umask)


def test_every_problem_in_every_file_one_line_each(run) -> None:  # type: ignore[no-untyped-def]
    deps = run.root / "departments"
    (deps / "hr.yaml").write_text("title: HR\nknowledge: ../knowledge/hr\nclasification: internal\n")
    (deps / "eng.yaml").write_text("knowledge: ../knowledge/eng\nask: [group:ghosts]\n")
    (deps / "groups.yaml").write_text(
        "hr-team: [alice@example.com, not-an-email]\nhr-admins: [hank@example.com]\n"
        "finance-team: [carol@example.com]\nfinance-admins: [carol@example.com]\n"
        "engineering: [bob@example.com]\n"
    )
    code, out, err = run("check")
    assert code == 2
    lines = err.strip().splitlines()
    assert any(
        line.endswith(
            "hr.yaml:3: clasification: unknown field (check the spelling; see README 'Department config')"
        )
        for line in lines
    )
    assert any(line.endswith("eng.yaml: title: is required") for line in lines)
    assert any(
        line.endswith("eng.yaml:2: ask[0]: group 'ghosts' does not exist in groups.yaml") for line in lines
    )
    assert any(
        line.endswith("groups.yaml:1: hr-team[1]: 'not-an-email' is not an e-mail address") for line in lines
    )
    assert lines[-1] == "4 problems in 3 files — fix them and run deptbot check again"
    assert "configuration OK" not in out


def test_ok_output_when_nothing_is_wrong_and_state_is_not_created(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("check")
    assert code == 0, err
    assert "3 departments, 5 groups — configuration OK" in out
    assert not (run.root / "state").exists()


def test_state_folder_readable_by_others_is_a_problem(run) -> None:  # type: ignore[no-untyped-def]
    state = run.root / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    (state / "audit.db").write_text("")
    os.chmod(state / "audit.db", 0o644)
    code, _, err = run("check")
    assert code == 2
    assert (
        f"{state}: state folder: mode 0755 lets other accounts in; it holds restricted text (chmod 700)"
        in err
    )
    assert f"{state / 'audit.db'}: state file: mode 0644 lets other accounts read it (chmod 600)" in err


def test_recent_admin_notices_are_listed(run) -> None:  # type: ignore[no-untyped-def]
    state = run.root / "state"
    state.mkdir(mode=0o700)
    notices = SqliteNotices.in_state_dir(state)
    notices.notify("finance", "config-invalid", "finance.yaml:3: ask: not a list")
    notices.close()
    for p in state.iterdir():
        os.chmod(p, 0o600)
    code, out, err = run("check")
    assert code == 0, err
    assert "recent admin notices:" in out
    assert "finance  config-invalid  finance.yaml:3: ask: not a list" in out


def test_knowledge_folder_problems_are_listed_with_the_config_ones(run) -> None:  # type: ignore[no-untyped-def]
    access = run.root / "knowledge" / "finance" / "payroll" / "_access.yaml"
    access.write_text('audience: ["group:finance-admins"]\naudience: ["*"]\n')
    (run.root / "departments" / "hr.yaml").write_text("title: HR\nknowledge: ../knowledge/hr\nbogus: 1\n")
    code, _, err = run("check")
    assert code == 2
    lines = err.strip().splitlines()
    assert any("hr.yaml:3: bogus: unknown field" in line for line in lines)
    assert any("payroll/_access.yaml:2" in line and "duplicate key" in line for line in lines)
    assert lines[-1].startswith("2 problems in 2 files")


def test_a_link_problem_names_the_link_not_its_target(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Resolving the reported path followed the link, so the line named the payroll file."""
    hr = run.root / "knowledge" / "hr"
    os.symlink(run.root / "knowledge" / "finance" / "payroll" / "salary-bands.md", hr / "bands.md")
    monkeypatch.chdir(run.root)
    code, _, err = run("check")
    assert code == 2
    assert "knowledge/hr/bands.md: symbolic link pointing outside the knowledge folder" in err
    assert "salary-bands.md" not in err
    monkeypatch.chdir(run.root.parent)  # from elsewhere the path is still right
    _, _, err = run("check")
    assert f"{run.root.name}/knowledge/hr/bands.md: symbolic link" in err
