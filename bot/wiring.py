"""The only place that picks implementations for the core's ports.

``build(settings)`` is what the CLI and the server call; tests build an ``Assistant``
themselves with fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import SOURCE_KINDS, Company, knowledge_roots, load_company
from bot.core.pipeline import Assistant
from bot.core.ports import AdminNotices, AnswerCache
from bot.directory.source import GroupSource
from bot.directory.sync import DirectorySync, UnavailableSource
from bot.governance.privacy import Privacy, SelfService
from bot.governance.privacy import register as register_privacy
from bot.governance.vault import vault_for
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.ingest import Limits
from bot.knowledge.pg_dense import dense_source
from bot.llm.factory import build_cache, build_generator, open_usage_store
from bot.sensitivity import PatternClassifier
from bot.settings import Settings
from bot.store.audit import ChainedAudit, SqliteAuditLog
from bot.store.cache import MemoryAnswerCache, require_shared_cache
from bot.store.notices import Notices, open_notices
from bot.store.state import ensure_private_dir
from bot.store.usage import UsageLedger


@dataclass
class Wired:
    """The assistant plus the concrete parts the CLI needs directly (eval, audit tail)."""

    assistant: Assistant
    company: Company  # as loaded at start; the config watcher swaps ``assistant.company``
    knowledge: KnowledgeBase
    audit: ChainedAudit  # SqliteAuditLog, or PgAuditLog with DEPTBOT_DATABASE_URL
    usage: UsageLedger
    settings: Settings
    notices: Notices  # notices.sqlite3, or PostgreSQL with DEPTBOT_DATABASE_URL
    directory: DirectorySync | None = None  # reads the sourced groups of groups.yaml
    cache: AnswerCache | None = None  # the assistant's answer cache (retention purges it)


def build_knowledge(settings: Settings, *, notices: AdminNotices | None = None) -> KnowledgeBase:
    """The knowledge base with the ``[knowledge]`` caps and link rule; files it does not index
    are told to admins through ``notices`` (default: ``<state>/notices.sqlite3``)."""
    r = settings.values.retrieval
    knowledge = KnowledgeBase(
        state_dir=settings.state_dir,
        embedder=r.embedder,
        fusion=r.fusion,
        all_terms_first=r.all_terms_first,
        limits=Limits.from_settings(settings.section("knowledge")),
        notices=notices if notices is not None else open_notices(settings),
        build_memory_mb=settings.values.knowledge.build_memory_mb,
        ann_threshold=settings.values.knowledge.ann_threshold,
        **_shared_index(settings, notices),
    )
    knowledge.reader.use_dense(dense_source(settings))  # [knowledge] dense = "pgvector"
    return knowledge


def _shared_index(settings: Settings, notices: AdminNotices | None) -> dict[str, Any]:
    """With ``DEPTBOT_DATABASE_URL``: the refresh lease in PostgreSQL (one indexer across
    replicas) and the hook that publishes versions there and syncs them from there
    (``bot.knowledge.pg_sync``). Without it: nothing (each folder is its own index)."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return {}
    from bot.knowledge.pg_sync import PgIndexHook
    from bot.ops.locks import open_leases

    return {
        "leases": lambda: open_leases(settings),
        "hook": PgIndexHook(db, settings.state_dir, notices=notices or open_notices(settings)),
    }


def build(settings: Settings, *, company: Company | None = None, watched: bool = False) -> Wired:
    """Wire everything. ``watched``: a knowledge watcher owns staleness (``deptbot serve``),
    so requests only build missing indexes; otherwise the first request per department
    checks staleness once (the one-shot commands)."""
    company = company or load_company(settings.departments_dir, allowed_roots=knowledge_roots(settings))
    ensure_private_dir(settings.state_dir)
    # Personal text is sealed by one vault per state folder (master key from the settings);
    # opened first so every store below, even one given only a folder, shares it.
    vault_for(settings)
    notices = open_notices(settings)
    knowledge = build_knowledge(settings, notices=notices)
    audit = open_audit_log(settings)
    if not isinstance(audit, SqliteAuditLog):  # a shared chain: refuse to start without its key
        audit.require_shared_key()
    usage = open_usage_store(settings)
    require_shared_cache(settings)  # a per-process cache is out of an erase's reach on PostgreSQL
    directory = build_directory(settings, notices=notices)
    assistant = Assistant(
        company=company,
        retriever=knowledge,
        indexer=knowledge,
        generator=build_generator(settings, usage_store=usage),
        audit=audit,
        classifier=PatternClassifier(),
        cache=(cache := build_cache(settings)),
        notices=notices,
        top_k=settings.values.retrieval.top_k,
        check_staleness=not watched,
        knowledge_limits=knowledge.indexer.limits,  # template skeletons: read as the indexer reads
    )
    # refreshes report audience groups missing from the configuration served now
    knowledge.indexer.groups = lambda: assistant.company.groups
    # "/kb my-data" and "kb forget-me" in chat reach the privacy requests through the assistant
    register_privacy(
        assistant,
        SelfService(
            lambda: Privacy.for_settings(settings, audit=audit),
            after_erase=cache.clear if isinstance(cache, MemoryAnswerCache) else None,
        ),
    )
    return Wired(
        assistant=assistant,
        company=company,
        knowledge=knowledge,
        audit=audit,
        usage=usage,
        settings=settings,
        notices=notices,
        directory=directory,
        cache=cache,
    )


def open_audit_log(settings: Settings) -> ChainedAudit:
    """The audit log with its chain key from ``DEPTBOT_AUDIT_KEY`` or ``audit.key_file``:
    in PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set, else ``audit.db`` in the state folder."""
    from pathlib import Path

    from bot.store.backend import database_for

    key_file = settings.values.audit.key_file.strip()
    db = database_for(settings)
    if db is not None:
        from bot.store.pg_audit import PgAuditLog

        return PgAuditLog(
            db,
            home=settings.state_dir,
            key_file=Path(key_file).expanduser() if key_file else None,
            env=settings.env,
            vault=vault_for(settings),
        )
    return SqliteAuditLog(
        path=settings.state_dir / "audit.db",
        key_file=Path(key_file).expanduser() if key_file else None,
        env=settings.env,
        vault=vault_for(settings),
    )


def retention_stores(
    settings: Settings, *, audit: ChainedAudit, usage: UsageLedger, cache: AnswerCache | None
) -> list[object]:
    """Every store holding data under a ``[retention]`` policy that can purge it: the
    audit log, usage, the answer cache and the Teams conversation state (in PostgreSQL, or
    its file when that exists; opening it here would create it)."""
    found: list[object] = [audit, usage, cache]
    from bot.store.teams_state import open_teams_state

    found.append(open_teams_state(settings, only_existing=True))  # PostgreSQL, or the file if any
    return [s for s in found if s is not None and callable(getattr(s, "purge_older_than", None))]


def old_copy_watch(settings: Settings) -> Callable[[], object] | None:
    """The daily look at the copies ``deptbot db copy`` moved aside (purged by nobody, so
    the admins are told: ``bot.store.pg_copy.OldCopyWatch``), with ``DEPTBOT_DATABASE_URL``
    and some retention setting; None otherwise. Its own daily job, not a retention store."""
    from bot.governance.retention import policy_from
    from bot.store.backend import database_for

    policy = policy_from(settings.values.retention)
    db = database_for(settings)
    if db is None or not any(policy.values()):
        return None
    from bot.store.pg_copy import OldCopyWatch

    return OldCopyWatch(db, open_notices(settings), policy).run


# ── directory group sources ──────────────────────────────────────────────────────────

log = logging.getLogger(__name__)

DEADLINE_FACTOR = 3  # one refresh waits at most this many directory.timeout_seconds per source


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str]:
    """(value, name) of the first variable set among ``names``; ("", names[0]) if none."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return "", names[0]


def _graph_credentials(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Entra app credentials and the variables missing. The client id and secret are taken
    as a pair (deptbot's own app, else the Teams bot's), never one from each."""
    tenant, tenant_var = _first(env, "DEPTBOT_GRAPH_TENANT_ID", "MicrosoftAppTenantId")
    own = any(env.get(v, "").strip() for v in ("DEPTBOT_GRAPH_CLIENT_ID", "DEPTBOT_GRAPH_CLIENT_SECRET"))
    id_var, secret_var = (
        ("DEPTBOT_GRAPH_CLIENT_ID", "DEPTBOT_GRAPH_CLIENT_SECRET")
        if own
        else ("MicrosoftAppId", "MicrosoftAppPassword")
    )
    found = {
        "tenant_id": tenant,
        "client_id": env.get(id_var, "").strip(),
        "client_secret": env.get(secret_var, ""),
    }
    missing = [
        var
        for var, value in (
            (tenant_var, tenant),
            (id_var, found["client_id"]),
            (secret_var, found["client_secret"]),
        )
        if not value.strip()
    ]
    return found, missing


def missing_directory_settings(env: Mapping[str, str]) -> dict[str, str]:
    """Kind → what must be set before groups of that kind can be read (kinds not listed
    are usable). Reads only the environment: nothing is contacted."""
    out: dict[str, str] = {}
    if not env.get("SLACK_BOT_TOKEN", "").strip():
        out["slack"] = (
            "set SLACK_BOT_TOKEN (a bot token with the usergroups:read and users:read.email scopes)"
        )
    _, missing = _graph_credentials(env)
    if len(missing) == 3:
        out["entra"] = (
            "set DEPTBOT_GRAPH_TENANT_ID, DEPTBOT_GRAPH_CLIENT_ID and DEPTBOT_GRAPH_CLIENT_SECRET (or "
            "the Teams bot's MicrosoftAppTenantId, MicrosoftAppId and MicrosoftAppPassword): an app "
            "with the Microsoft Graph application permissions GroupMember.Read.All and User.Read.All"
        )
    elif missing:
        out["entra"] = f"set {' and '.join(missing)} too"
    if not env.get("DEPTBOT_SCIM_TOKEN", "").strip():
        out["scim"] = (
            "set DEPTBOT_SCIM_TOKEN so the identity provider can push users and groups to "
            "/scim/v2/ on deptbot serve (without it the pushed groups would never change)"
        )
    return out


class DirectorySources(Mapping[str, GroupSource]):
    """The group sources, built from the environment on first use (so a kind no group
    uses is never imported or set up). A kind that cannot be used is an
    ``UnavailableSource`` whose reads fail with the reason (its groups stay empty)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[str, GroupSource] = {}

    def __getitem__(self, kind: str) -> GroupSource:
        if kind not in SOURCE_KINDS:
            raise KeyError(kind)
        if kind not in self._built:
            self._built[kind] = self._build(kind)
        return self._built[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(SOURCE_KINDS)

    def __len__(self) -> int:
        return len(SOURCE_KINDS)

    def _build(self, kind: str) -> GroupSource:
        env = self._settings.env
        missing = missing_directory_settings(env).get(kind)
        if missing is not None:
            return UnavailableSource(kind, f"not configured: {missing}")
        timeout = self._settings.values.directory.timeout_seconds
        try:
            if kind == "slack":
                from bot.directory.slack import SlackGroupSource

                token, api_url = env["SLACK_BOT_TOKEN"].strip(), env.get("SLACK_API_URL", "").strip()
                if api_url:
                    return SlackGroupSource(token=token, api_url=api_url, timeout=timeout)
                return SlackGroupSource(token=token, timeout=timeout)
            if kind == "entra":
                from bot.directory.entra import EntraGroupSource

                urls = {
                    key: env[var].strip()
                    for key, var in (
                        ("authority_url", "DEPTBOT_GRAPH_AUTHORITY_URL"),
                        ("graph_url", "DEPTBOT_GRAPH_URL"),
                    )
                    if env.get(var, "").strip()
                }
                credentials, _ = _graph_credentials(env)
                return EntraGroupSource(**credentials, **urls, timeout=timeout)
            from bot.directory.scim import ScimGroupSource
            from bot.directory.scim_store import open_scim_store

            return ScimGroupSource(store=open_scim_store(self._settings))  # PostgreSQL, or scim.sqlite3
        except ValueError as exc:  # the source refused a setting: its message names it, no secrets
            return UnavailableSource(kind, f"not configured: {str(exc)[:200]}")
        except Exception as exc:  # a missing library, an unreadable database: fail closed
            log.exception("setting up the %s group source failed", kind)
            return UnavailableSource(kind, f"the {kind} source could not be set up ({type(exc).__name__})")


def directory_problems(settings: Settings, kinds: Collection[str]) -> dict[str, str]:
    """Kind → why groups of that kind (among ``kinds``) cannot be read here, for
    ``deptbot check``: the environment, and the Slack and Entra sources' own checks of
    their settings. Nothing is contacted or written (the SCIM store is not opened)."""
    out = {k: why for k, why in missing_directory_settings(settings.env).items() if k in kinds}
    sources = DirectorySources(settings)
    for kind in sorted(set(kinds) - set(out) - {"scim"}):
        source = sources[kind]
        if isinstance(source, UnavailableSource):
            out[kind] = source.reason.removeprefix("not configured: ")
    return out


def build_directory(settings: Settings, *, notices: AdminNotices) -> DirectorySync:
    """The directory sync with the ``[directory]`` settings; nothing is read until
    ``refresh`` or ``start``."""
    d = settings.values.directory
    return DirectorySync(
        DirectorySources(settings),
        ttl_seconds=d.ttl_seconds,
        grace_seconds=d.grace_seconds,
        deadline_seconds=d.timeout_seconds * DEADLINE_FACTOR,
        notices=notices,
    )


def build_assistant(settings: Settings) -> Assistant:
    return build(settings).assistant
