"""What a person sees when something goes wrong in the CLI: one line that says what to do,
a documented exit code, never a traceback or an exception's text (review s21, findings 4
and 10). Uses the shared ``run`` fixture (tests/conftest.py): ``main`` in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import AccessDenied, UsageError

# What ``deptbot ask "$(printf '\xff\xfe')"`` hands Python: argv is decoded with
# surrogateescape, so undecodable bytes arrive as lone surrogates.
BROKEN = "\udcff\udcfe"
VACATION = "How many vacation days do I get?"


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _last_audit_row(run) -> dict[str, object]:  # type: ignore[no-untyped-def]
    code, out, err = run("audit", "tail", "-n", "1", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows, "no audit row was written"
    return rows[-1]  # type: ignore[no-any-return]


# ── 4a: text that is not valid UTF-8 ─────────────────────────────────────────────────


def test_an_undecodable_question_is_refused_and_still_audited(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("ask", f"{BROKEN} vacation days", "--user", "alice@example.com")
    line = _one_line(err)
    assert code == 2, err
    assert "UTF-8" in line and "codec" not in line and "surrogate" not in line
    row = _last_audit_row(run)
    assert row["user"] == "alice@example.com" and row["status"] == "error"


def test_an_undecodable_line_in_chat_does_not_end_the_session(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    feed: Iterator[str] = iter([f"{BROKEN}?", VACATION, "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(feed))
    code, out, err = run("chat", "--user", "alice@example.com", "--department", "hr")
    assert code == 0, err
    assert "UTF-8" in out and "Traceback" not in err  # chat says it like any other refusal
    assert "25 days" in out.split("UTF-8", 1)[1]  # and the next question is answered


# ── 4b: paths an admin got wrong, and the catch-all ──────────────────────────────────


@pytest.mark.parametrize(
    "argv",
    [
        ["--state", "{root}/afile", "ask", VACATION, "--user", "alice@example.com"],
        ["--state", "{root}/no/such/parent/state", "ask", VACATION, "--user", "alice@example.com"],
        ["--settings", "{root}", "ask", VACATION, "--user", "alice@example.com"],
        ["audit", "export", "--out", "{root}/no/such/dir/x.csv"],
    ],
    ids=["state-is-a-file", "state-parent-missing", "settings-is-a-folder", "export-into-missing-folder"],
)
def test_an_unusable_path_is_one_line_naming_it_exit_2(run, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    root: Path = run.root
    (root / "afile").write_text("not a folder\n")
    if argv[0] == "--state" and "no/such" in argv[1]:
        (root / "no").write_text("a file where a folder should be\n")
    if argv[0] == "audit":  # an audit log must exist for export to open the output file
        assert run("ask", VACATION, "--user", "alice@example.com")[0] == 0
    filled = [a.format(root=root) for a in argv]
    code, _, err = run(*filled)
    line = _one_line(err)
    assert code == 2, err
    assert str(root) in line  # the path the admin gave (or the part of it that is wrong)


def test_an_unexpected_error_is_one_line_without_its_text(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    def boom(args: object, settings: object) -> int:
        raise RuntimeError("PERSONAL-TEXT-7f3a from a question")

    monkeypatch.setattr("bot.cli.parser.cmd_templates", boom)
    code, _, err = run("templates")
    line = _one_line(err)
    assert code == 70, err
    assert "PERSONAL-TEXT-7f3a" not in err and "RuntimeError" not in line
    assert "-vv" in line


def test_the_catch_all_logs_the_details_only_at_debug(
    run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    def boom(args: object, settings: object) -> int:
        raise RuntimeError("PERSONAL" + "-TEXT-7f3a")  # split: the frame shows this source line

    monkeypatch.setattr("bot.cli.parser.cmd_templates", boom)
    with caplog.at_level("DEBUG", logger="bot"):
        assert run("templates")[0] == 70
    records = [r for r in caplog.records if r.exc_info]
    assert records and all(r.levelname == "DEBUG" for r in records)
    assert "PERSONAL-TEXT-7f3a" not in caplog.text  # exception messages are never logged


@pytest.mark.parametrize(
    ("raised", "code"),
    [(UsageError("bad"), 2), (AccessDenied("no"), 3), (KeyboardInterrupt(), 130)],
)
def test_the_documented_exit_codes_are_not_swallowed(
    run, monkeypatch: pytest.MonkeyPatch, raised: BaseException, code: int
) -> None:  # type: ignore[no-untyped-def]
    def fail(args: object, settings: object) -> int:
        raise raised

    monkeypatch.setattr("bot.cli.parser.cmd_templates", fail)
    assert run("templates")[0] == code


# ── 10: new-user and careless-admin rough edges ──────────────────────────────────────


def test_user_without_a_domain_is_told_it_is_not_an_email(run, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exited:
        run("ask", VACATION, "--user", "alice")
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "'alice' is not an e-mail address" in err and "don't know who you are" not in err


def test_a_missing_departments_folder_says_how_to_point_at_one(
    run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("DEPTBOT_DEPARTMENTS")
    code, _, err = run("ask", VACATION, "--user", "alice@example.com")
    assert code == 2 and "--departments" in err and str(elsewhere / "departments") in err


def test_departments_pointing_at_a_file_says_it_is_a_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hr_file = str(tmp_path / "departments" / "hr.yaml")
    code, _, err = run("--departments", hr_file, "ask", VACATION, "--user", "alice@example.com")
    assert code == 2 and "is a file" in err and "does not exist" not in err


def test_groups_yml_is_named_once_with_the_fix(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    departments = tmp_path / "departments"
    (departments / "groups.yaml").rename(departments / "groups.yml")
    code, out, err = run("check")
    assert code == 2
    text = out + err
    assert "groups.yml" in text and "rename it to groups.yaml" in text
    assert "title: is required" not in text and "unknown field" not in text


def test_a_crashing_server_logs_its_frames_at_error_without_the_text(
    run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """A server's crash may not happen twice: the operator's log gets the frames at ERROR
    (types and frames only), the terminal one line, exit 70."""

    def boom(args: object, settings: object) -> int:
        raise RuntimeError("PERSONAL" + "-TEXT-7f3a")

    monkeypatch.setattr("bot.cli.parser.cmd_serve", boom)
    with caplog.at_level("WARNING", logger="bot"):
        code, _, err = run("serve")
    assert code == 70
    assert "-vv" in _one_line(err)
    records = [r for r in caplog.records if r.exc_info]
    assert records and all(r.levelname == "ERROR" for r in records)
    assert "boom" in caplog.text  # the frame that failed
    assert "PERSONAL-TEXT-7f3a" not in caplog.text


def test_a_server_failing_on_a_system_call_logs_its_frames_at_error(
    run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """Review R3: EMFILE/ENOSPC inside ``serve`` took the OSError branch, whose frames were
    logged only at -vv and whose exit said "usage"; a server's crash may not repeat."""
    import errno

    def boom(args: object, settings: object) -> int:
        raise OSError(errno.EMFILE, "Too many open files", "/srv/deptbot/state/cache.db")

    monkeypatch.setattr("bot.cli.parser.cmd_serve", boom)
    with caplog.at_level("WARNING", logger="bot"):
        code, _, err = run("serve")
    assert code == 1
    _one_line(err)
    records = [r for r in caplog.records if r.exc_info]
    assert records and all(r.levelname == "ERROR" for r in records)
