"""``refresh:`` (minutes or a 5-field cron expression) and ``alerts:`` in department files,
and the ``[ops]`` settings: strict validation naming file, line and field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import check_company, describe
from bot.errors import ConfigError
from bot.ops.schedule import check_refresh, trigger_for
from bot.settings_schema import validate
from tests.fakes import make_company


@pytest.mark.parametrize(
    ("value", "expected"),
    [(60, 60), ("30", 30), (" 15 ", 15), ("0 6 * * 1-5", "0 6 * * 1-5"), ("*/30  *  * * *", "*/30 * * * *")],
)
def test_minutes_and_cron_are_accepted(value: object, expected: object) -> None:
    assert check_refresh(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (2, "between 5 and"),
        (0, "between 5 and"),
        (True, "number of minutes"),
        (1.5, "number of minutes"),
        ("every hour", "needs 5 fields"),
        ("0 6 * *", "found 4"),
        ("0 6 * * * *", "found 6"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 25 * * *", "not a valid cron expression"),
        ("0 6 * * mon-xyz", "not a valid cron expression"),
        ("0 6 1 * 1", "both the day of the month and the day of the week"),
    ],
)
def test_bad_values_say_why(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_refresh(value)


def test_the_trigger_fires_when_the_expression_says() -> None:
    cron = trigger_for("0 6 * * 1-5")  # weekdays 06:00 UTC
    friday_noon = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)
    assert cron.get_next_fire_time(None, friday_noon) == datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
    every = trigger_for(90)
    assert every.interval.total_seconds() == 90 * 60


def _problems(root: Path, text: str) -> list[str]:
    path = root / "departments" / "hr.yaml"
    path.write_text(path.read_text() + text)
    _, problems = check_company(root / "departments")
    return [describe(p, root) for p in problems]


def test_a_bad_refresh_names_file_line_and_field(tmp_path: Path) -> None:
    make_company(tmp_path)
    lines = (tmp_path / "departments" / "hr.yaml").read_text().count("\n")
    [problem] = _problems(tmp_path, 'refresh: "0 25 * * *"\n')
    assert problem.startswith(f"departments/hr.yaml:{lines + 1}: refresh: ")
    assert "not a valid cron expression" in problem


def test_bad_alert_destinations_are_refused(tmp_path: Path) -> None:
    make_company(tmp_path)
    problems = _problems(tmp_path, 'alerts:\n  slack: "#hr-admins"\n  email: x@example.com\n')
    assert any(p.startswith("departments/hr.yaml:") and "alerts.slack" in p for p in problems)
    assert any("alerts.email" in p and "unknown field" in p for p in problems)


def test_valid_fields_load(tmp_path: Path) -> None:
    make_company(tmp_path)
    fields = 'refresh: 120\nalerts:\n  slack: C0HRADMIN\n  teams: "19:abc@thread.tacv2"\n'
    assert _problems(tmp_path, fields) == []
    company, _ = check_company(tmp_path / "departments")
    assert company is not None
    hr = company.department("hr")
    assert hr.refresh == 120 and hr.alerts is not None and hr.alerts.slack == "C0HRADMIN"
    assert company.department("finance").refresh is None and company.department("finance").alerts is None


def test_the_digest_schedule_setting_is_checked() -> None:
    values, problems = validate({"ops": {"digest": "0 8 * * 1"}}, {})
    assert problems == [] and values.ops.digest == "0 8 * * 1"
    _, problems = validate({"ops": {"digest": "monday"}}, {})
    assert problems and all(isinstance(p, ConfigError) for p in problems)
    assert "ops.digest" in str(problems[0])


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("6-7", "sat,sun"),
        ("0-6", "mon,tue,wed,thu,fri,sat,sun"),
        ("*/2", "tue,thu,sat,sun"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("1,3,5", "mon,wed,fri"),
        ("*", "*"),
    ],
)
def test_weekdays_use_cron_numbering_not_apschedulers(field: str, expected: str) -> None:
    from bot.ops.schedule import weekdays

    assert weekdays(field) == expected


def test_sunday_zero_fires_on_sunday() -> None:
    cron = trigger_for("30 2 * * 0")
    monday = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    assert cron.get_next_fire_time(None, monday) == datetime(2026, 1, 11, 2, 30, tzinfo=UTC)  # a Sunday
