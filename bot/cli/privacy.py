"""``deptbot privacy export|erase EMAIL``: answer a person's access or erasure request.

Thin: ``bot.governance.privacy`` does the work; this prints the summary or the receipt.
``erase`` asks for the e-mail to be typed again unless ``--yes`` (it cannot be undone).

Exit codes: 0 done; 1 part of an erase failed (a ``FAILED:`` line); 4 (``EXIT_INCOMPLETE``)
done here, but a recorded copy of the state elsewhere was not reached or read (see the
notes), so data is known to remain: ``privacy erase … && close-ticket`` must not close it.
Distinct from 3 (access denied) so a script can tell "go erase it there" from a refusal.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, _err, _out
from bot.settings import Settings

EXIT_INCOMPLETE = 4  # done here, but a copy elsewhere was not reached: see the notes


def cmd_privacy_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance.privacy import Privacy

    privacy = Privacy.for_settings(settings)
    try:
        export = privacy.export(args.email)
    finally:
        privacy.close()
    text = export.to_json()
    if args.out:
        out = Path(args.out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        for line in export.summary():
            _out(line)
        _out(f"Written to {out} (JSON, {len(text.encode('utf-8')):,} bytes).")
    else:
        sys.stdout.write(text + "\n")  # JSON for a pipe: the summary goes to stderr
        for line in export.summary():
            _err(line)
    return EXIT_OK if export.complete else EXIT_INCOMPLETE  # a copy not read: the export has gaps


def cmd_privacy_erase(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance.privacy import Privacy, _email

    email = _email(args.email)
    if not args.yes:
        if not sys.stdin.isatty():
            _err("Erasing cannot be undone: pass --yes to confirm (no terminal to ask on).")
            return EXIT_USAGE
        _err(f"This makes everything stored about {email} unrecoverable. Type the e-mail again to confirm:")
        if input("> ").strip().lower() != email:
            _err("Not confirmed; nothing was erased.")
            return EXIT_USAGE
    privacy = Privacy.for_settings(settings)
    try:
        receipt = privacy.erase(email)
    finally:
        privacy.close()
    for line in receipt.lines():
        _out(line)
    if not receipt.complete:
        return EXIT_ERROR  # a part that failed (a copy) is not erased
    return EXIT_OK if receipt.reached_everything else EXIT_INCOMPLETE
