"""``deptbot admin link --user EMAIL``: a one-time admin console sign-in link from the shell.

For the operator who runs the server (and for admins without Slack or Teams): the same
link ``/kb admin`` gives, with the same rule (only someone who administers a department
gets one), written to the shared state folder the server reads. The link goes to stdout
alone, so it can be piped; the explanation goes to stderr.
"""

from __future__ import annotations

import argparse

from bot.cli.output import EXIT_OK, _err, _out
from bot.errors import AccessDenied
from bot.settings import Settings


def cmd_admin_link(args: argparse.Namespace, settings: Settings) -> int:
    from bot.admin.auth import AdminLinks, link_message
    from bot.admin.web import console_store
    from bot.cli.assistant import _build

    wired = _build(settings)
    store = console_store(settings)
    try:
        links = AdminLinks.for_assistant(wired.assistant, lambda: store, settings.values.admin)
        issued = links.issue(args.user, via="cli")
    finally:
        store.close()
    if not issued.url:
        raise AccessDenied(f"No link for {args.user}: {issued.reason}")
    _out(issued.url)
    _err(link_message(issued))
    return EXIT_OK
