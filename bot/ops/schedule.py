"""``refresh:`` in a department file: when its knowledge is refreshed on a schedule.

Two forms, because admins think in both: a whole number of minutes (``refresh: 60``, every
hour from when the server starts) or a five-field cron expression in UTC
(``refresh: "0 6 * * 1-5"``, 06:00 on weekdays), read into apscheduler's ``CronTrigger``
— with the day of the week in cron's numbering (``weekdays``), which apscheduler 3's own
``from_crontab`` gets wrong — so what is validated is exactly what runs. A string of digits
counts as minutes. Anything else is a configuration error naming the field; ``deptbot
check`` and the config watcher report it with file and line like every other field.
"""

from __future__ import annotations

from typing import Any

MIN_MINUTES = 5  # a refresh walks the whole folder; more often than this is a mistake
MAX_MINUTES = 31 * 24 * 60


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # standard cron: 0 (and 7) is Sunday


def _day(token: str) -> int:
    token = token.strip().lower()
    if token in _DAYS:
        return _DAYS.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"{token!r} is not a day of the week (0-7 or sun-sat)")


def weekdays(field: str) -> str:
    """The day-of-week field of a standard crontab for apscheduler 3.

    apscheduler 3 numbers days from Monday = 0 (its ``from_crontab`` warns it differs from
    cron, where 0 and 7 are Sunday and 1-5 is Monday to Friday). Admins write cron, so the
    field is expanded here to day names, which both agree on: "1-5" → "mon,tue,wed,thu,fri".
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{part!r} has a bad step")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _day(a), _day(b)
            if b.strip() == "7":
                last = 7
            if first > last:
                raise ValueError(f"{base!r} runs backwards")
        else:
            first = _day(base)
            last = 6 if step else first
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    order = (1, 2, 3, 4, 5, 6, 0)  # apscheduler's Monday-first week
    return ",".join(_DAYS[d] for d in order if d in days)


def _cron(text: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, dow = text.split(" ")
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=weekdays(dow), timezone="UTC"
    )


def check_refresh(value: Any) -> int | str | None:
    """The validated ``refresh`` value: minutes (int), a cron expression (str) or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError('must be a number of minutes (e.g. 60) or a cron expression (e.g. "0 6 * * *")')
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        if not MIN_MINUTES <= value <= MAX_MINUTES:
            raise ValueError(f"must be between {MIN_MINUTES} and {MAX_MINUTES} minutes, not {value}")
        return value
    text = " ".join(value.split())
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"{value!r} is not a cron expression: it needs 5 fields (minute hour day month weekday), "
            f"found {len(fields)}"
        )
    if fields[2] not in ("*", "?") and fields[4] not in ("*", "?"):
        raise ValueError(
            f"{value!r} restricts both the day of the month and the day of the week; cron runs "
            "when either matches and apscheduler only when both do, so give one of them as *"
        )
    try:
        _cron(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid cron expression ({exc})") from None
    return text


def trigger_for(value: int | str) -> Any:
    """The apscheduler trigger for a validated ``refresh`` value (UTC)."""
    if isinstance(value, int):
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(minutes=value, timezone="UTC")
    return _cron(value)


def describe_refresh(value: int | str) -> str:
    return f"every {value} minutes" if isinstance(value, int) else f'on cron "{value}" (UTC)'
