"""The ``[llm]``, ``[budgets]`` and ``[cache]`` settings as frozen, validated objects.

Read once from ``Settings`` (the documented ``bot/settings.toml`` plus any override); a
wrong type names the section and key. Secrets and endpoints are not here: they come from
``Settings.env`` (see ``bot/llm/factory.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.settings import DEFAULTS_FILE, Settings
from bot.store.usage import BudgetLimits

TIERS = ("small", "large")
PROVIDERS = ("anthropic", "openai", "private")


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return round((input_tokens * self.input + output_tokens * self.output) / 1_000_000, 6)


@dataclass(frozen=True)
class LLMConfig:
    cloud_order: tuple[str, ...] = ("anthropic", "openai")
    models: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # provider → tier → model
    prices: Mapping[str, Price] = field(default_factory=dict)  # model → price
    max_tokens: int = 800
    timeout_seconds: float = 30.0
    deadline_seconds: float = 60.0
    max_retries: int = 2
    history_tokens: int = 1500
    source_tokens: int = 6000
    breaker_failures: int = 3
    breaker_cooldown_seconds: float = 60.0
    large_question_chars: int = 300
    large_source_docs: int = 4
    estimate_margin: float = 1.15

    def model(self, provider: str, tier: str) -> str:
        return self.models.get(provider, {}).get(tier, "")

    def price(self, model: str) -> Price:
        return self.prices.get(model, Price())


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool = True
    backend: str = "sqlite"  # sqlite | memory
    ttl_seconds: float = 86400.0
    max_entries: int = 10000


def _get(section: Mapping[str, Any], key: str, kind: type, default: Any, name: str, where: Path) -> Any:
    """``section[key]`` checked against ``kind`` (ints accepted for floats)."""
    value = section.get(key, default)
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"must be {kind.__name__}, got {value!r}", file=where, field=f"{name}.{key}")
    if kind in (int, float) and value < 0:
        raise ConfigError("must not be negative", file=where, field=f"{name}.{key}")
    return value


def llm_config(settings: Settings) -> LLMConfig:
    where = settings.settings_file or DEFAULTS_FILE
    s = settings.section("llm")
    d = LLMConfig()
    models: dict[str, dict[str, str]] = {}
    for provider in PROVIDERS:
        table = s.get(provider, {})
        if not isinstance(table, Mapping):
            raise ConfigError("must be a table", file=where, field=f"llm.{provider}")
        models[provider] = {t: str(table[t]) for t in TIERS if table.get(t)}
    prices: dict[str, Price] = {}
    for model, pair in dict(s.get("prices", {})).items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int | float) for x in pair)):
            raise ConfigError(
                "must be [input, output] dollars per million tokens",
                file=where,
                field=f"llm.prices.{model}",
            )
        prices[model] = Price(float(pair[0]), float(pair[1]))
    order = s.get("cloud_order", list(d.cloud_order))
    if not isinstance(order, list) or any(p not in ("anthropic", "openai") for p in order):
        raise ConfigError('must list "anthropic" and/or "openai"', file=where, field="llm.cloud_order")
    return LLMConfig(
        cloud_order=tuple(order),
        models=models,
        prices=prices,
        max_tokens=max(1, _get(s, "max_tokens", int, d.max_tokens, "llm", where)),
        timeout_seconds=_get(s, "timeout_seconds", float, d.timeout_seconds, "llm", where),
        deadline_seconds=_get(s, "deadline_seconds", float, d.deadline_seconds, "llm", where),
        max_retries=_get(s, "max_retries", int, d.max_retries, "llm", where),
        history_tokens=_get(s, "history_tokens", int, d.history_tokens, "llm", where),
        source_tokens=_get(s, "source_tokens", int, d.source_tokens, "llm", where),
        breaker_failures=max(1, _get(s, "breaker_failures", int, d.breaker_failures, "llm", where)),
        breaker_cooldown_seconds=_get(
            s, "breaker_cooldown_seconds", float, d.breaker_cooldown_seconds, "llm", where
        ),
        large_question_chars=_get(s, "large_question_chars", int, d.large_question_chars, "llm", where),
        large_source_docs=_get(s, "large_source_docs", int, d.large_source_docs, "llm", where),
        estimate_margin=max(1.0, _get(s, "estimate_margin", float, d.estimate_margin, "llm", where)),
    )


def budget_limits(settings: Settings) -> BudgetLimits:
    where = settings.settings_file or DEFAULTS_FILE
    s = settings.section("budgets")
    return BudgetLimits(
        user_tokens=_get(s, "user_daily_tokens", int, 0, "budgets", where),
        user_cost=_get(s, "user_daily_cost", float, 0.0, "budgets", where),
        department_tokens=_get(s, "department_daily_tokens", int, 0, "budgets", where),
        department_cost=_get(s, "department_daily_cost", float, 0.0, "budgets", where),
    )


def cache_config(settings: Settings) -> CacheConfig:
    where = settings.settings_file or DEFAULTS_FILE
    s = settings.section("cache")
    backend = s.get("backend", "sqlite")
    if backend not in ("sqlite", "memory"):
        raise ConfigError('must be "sqlite" or "memory"', file=where, field="cache.backend")
    enabled = s.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("must be true or false", file=where, field="cache.enabled")
    return CacheConfig(
        enabled=enabled,
        backend=backend,
        ttl_seconds=_get(s, "ttl_seconds", float, 86400.0, "cache", where),
        max_entries=max(1, _get(s, "max_entries", int, 10000, "cache", where)),
    )
