"""``deptbot audit tail`` and ``deptbot usage``: what deptbot recorded — audit rows, and
tokens and cost per user and department."""

from __future__ import annotations

import argparse
import json

from bot.cli.output import EXIT_OK, _out, _printable
from bot.errors import UsageError
from bot.settings import Settings


def cmd_audit_tail(args: argparse.Namespace, settings: Settings) -> int:
    from bot.wiring import open_audit_log

    log = open_audit_log(settings)
    rows = log.tail(args.n, user=args.user, department=args.department)
    if args.json:
        _out(json.dumps(rows, indent=2))
        return EXIT_OK
    _out(
        f"{'time':<20} {'request':<13} {'user':<22} {'dept':<12} "
        f"{'decision':<8} {'status':<12} {'ms':>7}  docs"
    )
    for r in rows:
        r = {k: _printable(v) for k, v in r.items()}
        _out(
            f"{r['time'][:19]:<20} {r['request_id']:<13} {r['user'][:22]:<22} {(r['department'] or '-'):<12} "
            f"{r['decision']:<8} {r['status']:<12} {r['latency_ms']:>7.0f}  {', '.join(r['doc_ids'])}"
        )
    return EXIT_OK


def cmd_usage(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from bot.llm.factory import open_usage_store
    from bot.store.usage import format_usage_table, usage_report

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since must be a date like 2026-11-01, not {args.since!r}.") from None
    rows = usage_report(open_usage_store(settings), user=args.user, department=args.department, since=since)
    _out(json.dumps(rows, indent=2, default=str) if args.json else format_usage_table(rows))
    return EXIT_OK
