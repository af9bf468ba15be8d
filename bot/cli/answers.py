"""``deptbot ask``, ``run`` and ``templates``: one answer, one template run, and the
templates a person may run with a command line for each."""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.cli.assistant import _ask, _build
from bot.cli.output import EXIT_DENIED, EXIT_ERROR, EXIT_OK, _out
from bot.core.types import Message, Status
from bot.errors import UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.config import Department
    from bot.core.pipeline import Assistant
    from bot.wiring import Wired


def _ask_once(args: argparse.Namespace, wired: Wired, message: Message) -> int:
    from bot.adapters.console import render_json, render_text

    answer = _ask(wired, message)
    _out(render_json(answer) if args.json else render_text(answer))
    if answer.status == Status.DENIED:
        return EXIT_DENIED
    return EXIT_ERROR if answer.status == Status.ERROR else EXIT_OK


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    question = " ".join(args.question)
    return _ask_once(
        args,
        _build(settings),
        Message(user_id=args.user, email=args.user, text=question, department=args.department),
    )


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    wired = _build(settings)
    message = Message(
        user_id=args.user,
        email=args.user,
        text=args.input,
        department=args.department,
        template=args.template,
    )
    try:
        return _ask_once(args, wired, message)
    except UsageError as exc:
        company = wired.assistant.company
        if args.department not in (None, *company.departments) or _template_exists(
            wired.assistant, args.template, args.department
        ):
            raise  # an unknown department or an unusable input: the message says it all
        raise UsageError(f"{exc.user_message} {_runnable_hint(wired.assistant, args.user)}") from None


def _template_exists(assistant: Assistant, template: str, department: str | None) -> bool:
    depts = [assistant.company.department(department)] if department else list(assistant.company)
    return any(template in d.templates for d in depts)


def _runnable_hint(assistant: Assistant, user: str) -> str:
    """What ``user`` may run instead, for "no such template" messages."""
    runnable = [f"{name} ({dept.name})" for dept, name in _sorted_templates(assistant.templates_for(user))]
    if not runnable:
        return f"{user} may not run any templates."
    details = f"deptbot templates --user {shlex.quote(user)}"
    return f"Templates you may run: {', '.join(runnable)}. Details: {details}"


def _sorted_templates(pairs: Sequence[tuple[Department, str]]) -> list[tuple[Department, str]]:
    """By department name; each department's templates in the order its file lists them."""
    return sorted(pairs, key=lambda pair: pair[0].name)


def cmd_templates(args: argparse.Namespace, settings: Settings) -> int:
    """Every template, or those ``--user`` may run, with a command line that runs it."""
    assistant = _build(settings).assistant
    company = assistant.company
    everything = [(d, name) for d in company for name in d.templates]
    pairs = _sorted_templates(assistant.templates_for(args.user) if args.user else everything)
    owners: dict[str, int] = {}
    for _, name in everything:
        owners[name] = owners.get(name, 0) + 1
    rows = []
    for dept, name in pairs:
        template = dept.templates[name]
        example = f'deptbot run {name} "INPUT" --user {shlex.quote(args.user) if args.user else "EMAIL"}'
        if owners[name] > 1:  # two departments share the name: run needs --department
            example += f" --department {dept.name}"
        rows.append(
            {
                "department": dept.name,
                "department_title": dept.title,
                "name": name,
                "description": template.description,
                "allowed": list(template.allowed),
                "example": example,
            }
        )
    if args.json:
        _out(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        _out(f"{args.user} may not run any templates." if args.user else "No department has templates.")
        return EXIT_OK
    if args.user:
        _out(f"Templates {args.user} may run:")
    else:
        _out("All templates (deptbot templates --user EMAIL lists those one person may run):")
    for row in rows:
        allowed = row["allowed"]
        who = f"anyone who may ask {row['department_title']}" if allowed == ["*"] else ", ".join(allowed)
        _out()
        _out(f"{row['name']} — {row['description']}")
        _out(f"  {row['department_title']} ({row['department']}) · for {who}")
        _out(f"  {row['example']}")
    return EXIT_OK
