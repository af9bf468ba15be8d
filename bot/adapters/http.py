"""One aiohttp server for every platform: ``/slack/events``, probes, and mounts (Teams).

Probes (``probes``): ``/livez`` (and its alias ``/healthz``) says the process answers;
``/readyz`` says whether it can answer (indexes, databases, configuration). One
``runtime.Runtime`` per server runs the core's calls for Slack and Teams alike and caps the
answers in flight (``[runtime]`` settings).

``/admin`` is the department admin console (``bot.admin.web``; ``[admin]`` settings).

``build_app`` assembles it (tests start it on 127.0.0.1); ``serve`` runs it until
interrupted. Slack is mounted when ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are set
(a half-set pair is a start-up ConfigError naming the missing variable); with
``socket_mode=True`` Slack connects out over a WebSocket instead (``SLACK_APP_TOKEN``) and
the HTTP server keeps the probes and any mounts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.adapters.metrics import Metrics, mount_metrics
from bot.adapters.probes import READY, ReadyChecks, livez, readyz
from bot.adapters.runtime import Runtime
from bot.adapters.slack.app import SlackAdapter, SlackConfig
from bot.adapters.slack.members import MembersConfig
from bot.core.pipeline import Assistant
from bot.errors import ConfigError
from bot.settings import Settings
from bot.store.dedup import Dedup, open_dedup_store

log = logging.getLogger(__name__)

Mount = Callable[[web.Application], None]
ASSISTANT = web.AppKey("deptbot.assistant", Assistant)
SLACK = web.AppKey("deptbot.slack", SlackAdapter)
SLACK_MODE = web.AppKey("deptbot.slack_mode", str)
RUNTIME = web.AppKey("deptbot.runtime", Runtime)
_SOCKET = web.AppKey("deptbot.slack_socket", AsyncSocketModeHandler)
MAX_BODY = 1024 * 1024  # Slack payloads are far smaller; larger bodies get 413


def build_app(
    *,
    assistant: Assistant,
    settings: Settings,
    mounts: Sequence[Mount] = (),
    socket_mode: bool = False,
    state: Dedup | None = None,
    runtime: Runtime | None = None,
    host: str | None = None,
) -> web.Application:
    """The web application; raises ConfigError for inconsistent Slack settings (or a short
    ``DEPTBOT_SCIM_TOKEN``; when set, ``/scim/v2/`` serves SCIM provisioning).

    ``host`` is the address the server binds to: without ``metrics.token``, ``/metrics`` is
    served only on a loopback address, and an unknown ``host`` (None) counts as public.

    ``state`` defaults to ``open_dedup_store`` (``DedupStore`` in ``settings.state_dir``, or
    PostgreSQL with ``DEPTBOT_DATABASE_URL`` so replicas share claims; event de-duplication and
    answered threads, persisted across restarts). ``runtime`` defaults to one built from the
    ``[runtime]`` settings (and shut down with the app).
    """
    app = web.Application(client_max_size=MAX_BODY)
    app[ASSISTANT] = assistant
    if runtime is None:
        runtime = Runtime.from_section(settings.section("runtime"))
        # queued privacy requests run or are answered "not done" while clients still work
        app.on_shutdown.append(lambda _app: runtime.drain_reports())
        app.on_cleanup.append(lambda _app: _shutdown(runtime))
    app[RUNTIME] = runtime
    app[READY] = ReadyChecks(assistant=assistant, settings=settings, runtime=runtime)
    app.router.add_get("/livez", livez)
    app.router.add_get("/healthz", livez)
    app.router.add_get("/readyz", readyz)
    _mount_metrics(app, assistant, settings, host, runtime)
    if settings.values.admin.enabled:  # /admin (README "Admin console"); its import loads jinja2
        from bot.admin.web import mount_admin

        mount_admin(app, assistant=assistant, settings=settings, runtime=runtime)
    config = SlackConfig.from_env(settings.env, socket_mode=socket_mode)
    app[SLACK_MODE] = "off" if config is None else "socket" if socket_mode else "http"
    if config is not None:
        store = state or open_dedup_store(settings)
        adapter = SlackAdapter(
            assistant=assistant,
            config=config,
            state=store,
            socket_mode=socket_mode,
            members=MembersConfig.from_section(settings.section("access")),
            runtime=runtime,
        )
        app[SLACK] = adapter
        if not socket_mode:
            app.router.add_post("/slack/events", adapter.handle)
        app.on_startup.append(_slack_startup)
        app.on_cleanup.append(_slack_cleanup)
        if state is None:
            app.on_cleanup.append(lambda _app: _close_store(store))
    if settings.env.get("DEPTBOT_SCIM_TOKEN", "").strip():  # SCIM provisioning, only when asked for
        from bot.directory.scim import mount_scim, token_from_env  # its libraries cost ~0.5 s to import

        scim_token = token_from_env(settings.env)
        if scim_token is not None:
            mount_scim(app, token=scim_token, settings=settings)  # PostgreSQL with DEPTBOT_DATABASE_URL
    for mount in mounts:
        mount(app)
    _share_with_teams(app, runtime)
    return app


def _mount_metrics(
    app: web.Application, assistant: Assistant, settings: Settings, host: str | None, runtime: Runtime
) -> None:
    """``/metrics`` as ``[metrics]`` allows; this server's counters hear the assistant
    while the app runs (its own registry: ``bot.adapters.metrics``)."""
    metrics = Metrics(departments=lambda: assistant.company.departments, state_dir=settings.state_dir)
    mount_metrics(app, metrics=metrics, settings=settings.values.metrics, host=host, runtime=runtime)
    assistant.observers.append(metrics)

    async def detach(_app: web.Application) -> None:
        if metrics in assistant.observers:
            assistant.observers.remove(metrics)

    app.on_cleanup.append(detach)


def _share_with_teams(app: web.Application, runtime: Runtime) -> None:
    """Teams answers count against the same cap as Slack's. Only a mounted Teams endpoint
    needs it, and then its module is loaded already (no botbuilder import otherwise)."""
    teams = sys.modules.get("bot.adapters.teams.bot")
    endpoint = app.get(teams.ENDPOINT_KEY) if teams is not None else None
    if endpoint is not None:
        endpoint.bot.use_runtime(runtime)


async def _shutdown(runtime: Runtime) -> None:
    runtime.shutdown()


async def _close_store(store: Dedup) -> None:
    store.close()


async def _slack_startup(app: web.Application) -> None:
    adapter = app[SLACK]
    await adapter.start()
    if app[SLACK_MODE] == "socket":
        try:  # preflight: the SDK's connect loop retries bad tokens forever; fail at start-up instead
            await adapter.client.apps_connections_open(app_token=adapter.config.app_token)
        except SlackApiError as exc:  # e.g. invalid_auth, not_allowed_token_type
            error = exc.response.get("error", "error")
            await adapter.close()
            raise ConfigError(
                f"was refused by Slack ({error})", file="environment", field="SLACK_APP_TOKEN"
            ) from None
        handler = AsyncSocketModeHandler(adapter.app, adapter.config.app_token, web_client=adapter.client)
        await handler.connect_async()
        app[_SOCKET] = handler
        log.info("Slack connected over Socket Mode")


async def _slack_cleanup(app: web.Application) -> None:
    handler = app.get(_SOCKET)
    if handler is not None:
        await handler.close_async()
    await app[SLACK].close()


healthz = livez  # the original name


def serve(
    settings: Settings,
    assistant: Assistant,
    *,
    host: str = "127.0.0.1",
    port: int = 3978,
    mounts: Sequence[Mount] = (),
    socket_mode: bool = False,
) -> None:
    """Run the server until interrupted (``deptbot serve``). ConfigError before binding."""
    app = build_app(assistant=assistant, settings=settings, mounts=mounts, socket_mode=socket_mode, host=host)
    slack = app[SLACK_MODE]
    print(f"deptbot listening on http://{host}:{port} (/livez, /readyz; Slack: {slack})", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=10)


def serve_socket_mode(
    settings: Settings,
    assistant: Assistant,
    *,
    host: str = "127.0.0.1",
    port: int = 3978,
    mounts: Sequence[Mount] = (),
) -> None:
    """``deptbot serve --slack-socket-mode``: Slack over a WebSocket (no public URL needed)."""
    serve(settings, assistant, host=host, port=port, mounts=mounts, socket_mode=True)


run = serve  # the name in the original contract
