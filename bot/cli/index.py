"""``deptbot index`` builds or refreshes department indexes; ``deptbot eval`` scores
retrieval on a BEIR-format folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.cli.output import EXIT_ERROR, EXIT_OK, _err, _out, _progress
from bot.errors import ConfigError, RefreshBusy, UsageError
from bot.settings import Settings


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import report_table
    from bot.wiring import build

    wired = build(settings)
    names = args.names or list(wired.company.departments)
    reports = []
    busy: list[str] = []
    for name in names:
        dept = wired.company.department(name)
        try:
            with _progress(f"Indexing {dept.title}") as progress:
                reports.append(wired.knowledge.refresh(dept, progress=progress))
        except RefreshBusy as exc:  # a server (or another shell) is refreshing it right now
            _err(exc.user_message)
            busy.append(name)
    if reports:
        _out(report_table(reports))
    return EXIT_ERROR if busy else EXIT_OK


def _eval_embedder(args: argparse.Namespace, settings: Settings) -> str:
    """The embedder to evaluate, checked before any work: a wrong ``--embedder`` is a usage
    error, a wrong ``retrieval.embedder`` a configuration error naming the file (exit 2)."""
    from bot.knowledge.embedders import embedder_names
    from bot.settings import DEFAULTS_FILE

    valid = embedder_names()
    if args.embedder is not None:
        if args.embedder.strip().lower() not in valid:
            raise UsageError(
                f"Unknown embedder {args.embedder!r} (--embedder). Valid embedders: {', '.join(valid)}."
            )
        return str(args.embedder)
    embedder = settings.retrieval.get("embedder", "wordllama")
    if not isinstance(embedder, str) or embedder.strip().lower() not in valid:
        raise ConfigError(
            f"unknown embedder {embedder!r}; valid embedders: {', '.join(valid)}",
            file=settings.settings_file or DEFAULTS_FILE,
            field="retrieval.embedder",
        )
    return embedder


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge.evaluate import evaluate_beir

    embedder = _eval_embedder(args, settings)
    result = evaluate_beir(Path(args.beir_dir), embedder=embedder, mode=args.mode)
    if args.json:
        _out(json.dumps(result.as_dict(), indent=2))
    else:
        _out(result.table())
    return EXIT_OK
