"""``deptbot chat``: an interactive terminal session that keeps history, with its own
commands (/dept pins a department, /help, /quit)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.cli.assistant import _ask, _build
from bot.cli.output import EXIT_OK, _out, _say
from bot.core.labels import answer_turns
from bot.core.types import Message, Turn
from bot.errors import AccessDenied, DeptbotError, UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.core.pipeline import Assistant

CHAT_HISTORY_TURNS = 6


CHAT_HELP = """\
Commands:
  /dept NAME   ask only NAME from now on (you can ask: {names})
  /dept        choose the department for each question automatically again
  /help        this list
  /quit        leave (also /exit or Ctrl-D)
Anything else is a question (a line starting with a path such as /etc/hosts is too)."""


def _chat_command(line: str) -> tuple[str, str] | None:
    """``("/dept", "hr")`` for a chat command; None for a question. A first word with a
    second slash is a path (``/etc/hosts``), so that line is a question."""
    if not line.startswith("/"):
        return None
    word, _, rest = line.partition(" ")
    if "/" in word[1:]:
        return None
    return word.lower(), rest.strip()


def _askable_department(assistant: Assistant, user: str, name: str) -> str:
    """``name`` when ``user`` may ask it; otherwise UsageError (no such department) or
    AccessDenied (the same reason ``ask`` gives), each listing what they can ask."""
    from bot.core import replies
    from bot.core.types import Decision

    askable = [d.name for d in assistant.departments_for(user)]
    you_can = f"You can ask: {', '.join(askable)}." if askable else "You can't ask any department."
    name = name.strip().lower()
    if name not in assistant.company.departments:
        raise UsageError(f"Unknown department {name!r}. {you_can}")
    if name not in askable:
        dept = assistant.company.department(name)
        principal = assistant.principal(user)
        decision = (
            assistant.policy.may_ask(principal, dept) if principal else Decision(False, "unknown-user", "")
        )
        raise AccessDenied(f"{replies.denial(decision, dept, assistant.admins_of(dept))} {you_can}")
    return name


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import render_text

    wired = _build(settings)
    assistant = wired.assistant
    department: str | None = None
    if args.department:  # checked now, not on the first question
        department = _askable_department(assistant, args.user, args.department)
    names = ", ".join(d.name for d in assistant.departments_for(args.user)) or "none"
    _out(f"deptbot chat as {args.user} — departments you can ask: {names}")
    _out("Type a question, or /help for the commands (/dept NAME pins a department, /quit leaves).")
    if department:
        _out(f"department: {department}")
    history: list[Turn] = []
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            _out()
            return EXIT_OK
        if not line:
            continue
        command = _chat_command(line)
        if command is not None:
            word, rest = command
            if word in ("/quit", "/exit"):
                return EXIT_OK
            if word == "/help":
                _out(CHAT_HELP.format(names=names))
            elif word == "/dept":
                try:
                    department = _askable_department(assistant, args.user, rest) if rest else None
                except DeptbotError as exc:
                    _say(f"{exc.user_message} Still asking: {department or 'automatic'}.")
                    continue
                _out(f"department: {department or 'automatic'}")
            else:
                _say(f"Unknown command {word} — type /help for the commands.")
            continue
        message = Message(
            user_id=args.user,
            email=args.user,
            text=line,
            department=department,
            history=tuple(history[-CHAT_HISTORY_TURNS:]),
        )
        try:
            answer = _ask(wired, message)
        except DeptbotError as exc:
            _say(exc.user_message)
            continue
        _out(render_text(answer))
        _out()
        history += answer_turns(line, answer)
