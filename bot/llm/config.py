"""The ``[llm]``, ``[budgets]`` and ``[cache]`` settings as frozen, validated objects.

Read once from ``Settings`` (the documented ``bot/settings.toml`` plus any override and
environment variables), already checked by ``bot/settings_schema.py``. Secrets and
endpoints are not here: they come from ``Settings.env`` (see ``bot/llm/factory.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.settings import Settings
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


def llm_config(settings: Settings) -> LLMConfig:
    s = settings.values.llm
    tiers = {"anthropic": s.anthropic, "openai": s.openai, "private": s.private}
    return LLMConfig(
        cloud_order=tuple(s.cloud_order),
        models={p: {t: name for t, name in m.model_dump().items() if name} for p, m in tiers.items()},
        prices={model: Price(pair[0], pair[1]) for model, pair in s.prices.items()},
        max_tokens=s.max_tokens,
        timeout_seconds=s.timeout_seconds,
        deadline_seconds=s.deadline_seconds,
        max_retries=s.max_retries,
        history_tokens=s.history_tokens,
        source_tokens=s.source_tokens,
        breaker_failures=s.breaker_failures,
        breaker_cooldown_seconds=s.breaker_cooldown_seconds,
        large_question_chars=s.large_question_chars,
        large_source_docs=s.large_source_docs,
        estimate_margin=s.estimate_margin,
    )


def budget_limits(settings: Settings) -> BudgetLimits:
    s = settings.values.budgets
    return BudgetLimits(
        user_tokens=s.user_daily_tokens,
        user_cost=s.user_daily_cost,
        department_tokens=s.department_daily_tokens,
        department_cost=s.department_daily_cost,
    )


def cache_config(settings: Settings) -> CacheConfig:
    s = settings.values.cache
    return CacheConfig(
        enabled=s.enabled, backend=s.backend, ttl_seconds=s.ttl_seconds, max_entries=s.max_entries
    )
