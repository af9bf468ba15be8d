"""Build the LLM side from ``Settings``: providers from the environment snapshot, the
router over them, the usage store and the answer cache. Called by ``bot/wiring.py``.

A provider is configured when its key (cloud) or URL (private) is in ``Settings.env``;
nothing here reads ``os.environ``, and keys are never echoed (``provider_status`` shows
the endpoint host only).

Proxies: the cloud SDKs follow ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` (a corporate
egress proxy is legitimate for them, and ``check`` names it); the private endpoint never
does (``OpenAIProvider(direct=True)``), and ``check`` says so when such a variable is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlparse

from bot.core.ports import AnswerCache, Generator
from bot.llm.config import cache_config, llm_config
from bot.llm.provider import ChatProvider
from bot.llm.router import Router
from bot.settings import Settings
from bot.store.cache import MemoryAnswerCache, open_answer_cache
from bot.store.usage import UsageLedger, UsageStore

MAX_RETRY_WAIT = 10.0  # seconds: cap on a server's retry-after within one call


def _host(url: str | None, default: str) -> str:
    return urlparse(url).netloc or url if url else default


PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def env_proxy(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy (``host:port``, never credentials) the SDKs' httpx would use for ``url``
    under ``env``, or None. Lower-case names win, as in ``urllib.request``."""
    found: dict[str, str] = {}
    for name, value in env.items():
        low = name.lower()
        if value and (low in PROXY_VARS or low == "no_proxy") and (name == low or low not in found):
            found[low] = value
    parsed = urlparse(url)
    proxy = found.get(f"{parsed.scheme or 'https'}_proxy") or found.get("all_proxy")
    if not proxy:
        return None
    if _bypassed(parsed.hostname or "", found.get("no_proxy", "")):
        return None
    where = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    if not where.hostname:
        return "?"
    return where.hostname + (f":{where.port}" if where.port else "")


def _bypassed(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` as curl and httpx read it: ``*``, a host, or a domain suffix."""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        name = entry.split("://")[-1].split(":")[0].lstrip(".")
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


def _via(url: str, env: Mapping[str, str]) -> str:
    proxy = env_proxy(url, env)
    return f"; via proxy {proxy} (from the environment)" if proxy else ""


def build_providers(settings: Settings) -> list[ChatProvider]:
    """Every configured provider (cloud ones in ``cloud_order``, then private).

    SDKs are imported only for configured providers: ``anthropic`` alone costs ~1.4 s of
    start-up, which an offline ``deptbot ask`` should not pay.
    """
    cfg = llm_config(settings)
    env = settings.env
    retries, timeout, wait = cfg.max_retries, cfg.timeout_seconds, MAX_RETRY_WAIT
    out: list[ChatProvider] = []
    for name in cfg.cloud_order:
        if name == "anthropic" and env.get("ANTHROPIC_API_KEY"):
            from bot.llm.anthropic import AnthropicProvider

            out.append(
                AnthropicProvider(
                    api_key=env["ANTHROPIC_API_KEY"],
                    base_url=env.get("ANTHROPIC_BASE_URL") or None,
                    max_retries=retries,
                    timeout=timeout,
                    max_retry_wait=wait,
                )
            )
        if name == "openai" and env.get("OPENAI_API_KEY"):
            from bot.llm.openai import OpenAIProvider

            out.append(
                OpenAIProvider(
                    api_key=env["OPENAI_API_KEY"],
                    base_url=env.get("OPENAI_BASE_URL") or None,
                    max_retries=retries,
                    timeout=timeout,
                    max_retry_wait=wait,
                )
            )
    if env.get("DEPTBOT_PRIVATE_LLM_URL"):
        from bot.llm.openai import OpenAIProvider

        out.append(
            OpenAIProvider(
                name="private",
                trust="private",
                api_key=env.get("DEPTBOT_PRIVATE_LLM_KEY") or "not-needed",
                base_url=env["DEPTBOT_PRIVATE_LLM_URL"],
                max_retries=retries,
                timeout=timeout,
                max_retry_wait=wait,
                direct=True,  # confidential prompts never go through an environment proxy
            )
        )
    return out


def open_usage_store(settings: Settings) -> UsageLedger:
    """Usage and budgets: PostgreSQL when ``DEPTBOT_DATABASE_URL`` is set (budgets hold
    across replicas), else ``usage.db`` in the state folder."""
    from bot.store.backend import database_for

    db = database_for(settings)
    if db is None:
        return UsageStore(path=settings.state_dir / "usage.db")
    from bot.store.pg_usage import PgUsageStore

    return PgUsageStore(db)


def build_generator(
    settings: Settings, *, usage_store: UsageLedger | None, fallback: Generator | None = None
) -> Generator:
    """The router over the configured providers; extractive when none is configured."""
    from bot.llm.config import budget_limits

    if fallback is None:
        from bot.llm.extractive import ExtractiveGenerator

        fallback = ExtractiveGenerator()
    return Router(
        config=llm_config(settings),
        providers=build_providers(settings),
        fallback=fallback,
        usage=usage_store,
        limits=budget_limits(settings),
    )


def build_cache(settings: Settings) -> AnswerCache | None:
    """The answer cache from ``[cache]``; None when disabled."""
    cfg = cache_config(settings)
    if not cfg.enabled:
        return None
    if cfg.backend == "memory":
        return MemoryAnswerCache(ttl_seconds=cfg.ttl_seconds, max_entries=cfg.max_entries)
    # cache.db, or PostgreSQL with DEPTBOT_DATABASE_URL (one cache for every replica)
    return open_answer_cache(settings, ttl_seconds=cfg.ttl_seconds, max_entries=cfg.max_entries)


def provider_status(settings: Settings) -> list[tuple[str, bool, str]]:
    """(provider, configured, detail) for ``deptbot check``; never shows a key."""
    cfg = llm_config(settings)
    env = settings.env

    def models(p: str) -> str:
        return f"small={cfg.model(p, 'small') or '-'}, large={cfg.model(p, 'large') or '-'}"

    out: list[tuple[str, bool, str]] = []
    if env.get("ANTHROPIC_API_KEY"):
        url = env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        host = _host(env.get("ANTHROPIC_BASE_URL"), "api.anthropic.com")
        out.append(("anthropic", True, f"{host}; {models('anthropic')}{_via(url, env)}"))
    else:
        out.append(("anthropic", False, "set ANTHROPIC_API_KEY to enable"))
    if env.get("OPENAI_API_KEY"):
        url = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        host = _host(env.get("OPENAI_BASE_URL"), "api.openai.com")
        out.append(("openai", True, f"{host}; {models('openai')}{_via(url, env)}"))
    else:
        out.append(("openai", False, "set OPENAI_API_KEY to enable"))
    if env.get("DEPTBOT_PRIVATE_LLM_URL"):
        key = "with key" if env.get("DEPTBOT_PRIVATE_LLM_KEY") else "no key"
        ignored = [n for n in env if n.lower() in PROXY_VARS and env[n]]
        direct = f"; direct, ignoring {', '.join(sorted(ignored))}" if ignored else ""
        out.append(
            (
                "private",
                True,
                f"{_host(env['DEPTBOT_PRIVATE_LLM_URL'], '')} ({key}); {models('private')}{direct}",
            )
        )
    else:
        out.append(("private", False, "set DEPTBOT_PRIVATE_LLM_URL to enable (confidential data needs it)"))
    any_llm = any(ok for _, ok, _ in out)
    out.append(
        (
            "extractive",
            True,
            "offline fallback" if any_llm else "offline default (no LLM provider configured)",
        )
    )
    return out
