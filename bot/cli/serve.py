"""``deptbot serve`` runs the HTTP server for Slack, Teams and /healthz; ``deptbot
manifest`` prints the Slack manifest or builds the Teams app package that points at it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.output import EXIT_OK, _out, _progress
from bot.errors import UsageError
from bot.settings import Settings


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import functools

    from bot.adapters.http import serve
    from bot.adapters.teams.bot import check_teams_settings, mount
    from bot.cli.audit import start_governance_jobs
    from bot.knowledge.refresher import refresh_if_stale
    from bot.knowledge.watcher import KnowledgeWatcher
    from bot.observability import ObservedIndexer
    from bot.ops.service import start_operations
    from bot.reload import start_config_watcher
    from bot.wiring import build

    wired = build(settings, watched=True)  # requests never stat folders: the watcher does
    mounts = []
    if settings.env.get("MicrosoftAppId") or _is_loopback(args.host):
        check_teams_settings(settings, args.host)
        mounts.append(functools.partial(mount, assistant=wired.assistant, settings=settings))
    notices = wired.notices
    k = settings.values.knowledge
    config_watcher = None
    knowledge = KnowledgeWatcher(
        indexer=ObservedIndexer(wired.knowledge, wired.assistant.observers),  # /metrics counts refreshes
        departments=lambda: list(wired.assistant.company),
        notices=notices,
        mode=k.watch,
        poll_seconds=k.watch_poll_seconds,
        debounce_seconds=k.watch_debounce_seconds,
        files_per_tick=k.watch_files_per_tick,
        config_root=settings.departments_dir,
        on_config_change=lambda: config_watcher.poll() if config_watcher is not None else None,
        # replicas on PostgreSQL switch to versions another replica published (pg_sync)
        sync=wired.knowledge.sync_published if wired.knowledge.shared else None,
        sync_seconds=k.sync_seconds,
    )
    knowledge.start()  # before the start-up refresh: an edit made during it is not missed
    with _progress("Indexing") as progress:
        for dept in wired.company:  # one department that fails never keeps the others from serving
            refresh_if_stale(wired.knowledge, dept, notices, progress=progress, when="start-up")
    directory = wired.directory
    if directory is not None:  # directory groups: read once now, then every directory.ttl_seconds
        if wired.company.sources:
            wired.assistant.reconfigure(directory.refresh(wired.company))
        directory.start(wired.assistant)
    # scheduled refresh, evals after refreshes, alerts and the weekly digest ([ops], bot.ops)
    operations = start_operations(settings, wired)
    watcher = config_watcher = start_config_watcher(
        wired.assistant,
        settings,
        notices,
        directory=directory,
        on_applied=operations.sync if operations is not None else None,
    )
    daily = start_governance_jobs(settings, wired)  # retention and the audit checkpoint, daily
    try:
        serve(
            settings,
            wired.assistant,
            host=args.host,
            port=args.port,
            mounts=mounts,
            socket_mode=args.slack_socket_mode,
        )
    finally:
        watcher.stop()
        knowledge.stop()
        if operations is not None:
            operations.stop()
        if daily is not None:
            daily.shutdown(wait=False)
        if directory is not None:
            directory.stop()
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace, settings: Settings) -> int:
    if args.platform == "slack":
        from bot.adapters.slack.manifest import render_manifest

        if not args.url and not args.socket_mode:
            raise UsageError("deptbot manifest slack needs --url https://HOST (or --socket-mode).")
        _out(render_manifest(args.url, socket_mode=args.socket_mode))
        return EXIT_OK
    from bot.adapters.teams.manifest import build_manifest_zip

    if not args.app_id or not args.domain:
        raise UsageError("deptbot manifest teams needs --app-id ID and --domain HOST.")
    out = Path(args.out or "deptbot-teams.zip")
    path = build_manifest_zip(
        args.app_id,
        args.domain,
        out,
        website_url=args.website_url,
        privacy_url=args.privacy_url,
        terms_url=args.terms_url,
    )
    _out(f"wrote {path} — upload it in Teams › Apps › Manage your apps › Upload an app")
    return EXIT_OK
