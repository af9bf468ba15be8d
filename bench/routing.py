"""Routing, classification and prompt-building overhead; cache-hit answers end to end.

    python -m bench.routing [--n 2000]

Targets: routing + classification + prompt building p50 <= 5 ms per request; a cache-hit
answer p50 <= 10 ms end to end (``Assistant.ask``). Baselines in the same run: the
extractive generator called directly (no routing), and the same question uncached.
Providers are an in-process stub (no network), so the numbers are deptbot's own cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.core.pipeline import Assistant
from bot.core.ports import DeltaFn
from bot.core.types import Classification, GenerationRequest, Message, SourceChunk
from bot.llm.config import LLMConfig, Price
from bot.llm.extractive import ExtractiveGenerator
from bot.llm.prompts import Prompt, build_prompt, encoder_name
from bot.llm.provider import Completion
from bot.llm.router import Router
from bot.sensitivity import PatternClassifier
from bot.store.cache import MemoryAnswerCache, SqliteAnswerCache
from bot.store.usage import BudgetLimits, UsageStore
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder, make_company

PARAGRAPH = (
    "Full-time employees receive 25 days of paid vacation per year. Unused vacation days can be "
    "carried over until March 31 of the next year. Requests go through the HR portal at least two "
    "weeks ahead; managers approve within three working days. Part-time staff accrue pro rata. "
)


class InstantProvider:
    """A provider that answers at once: measures deptbot's overhead, not the network."""

    def __init__(self, name: str, trust: str) -> None:
        self.name, self.trust = name, trust

    def complete(
        self, prompt: Prompt, *, model: str, max_tokens: int, timeout: float, on_delta: DeltaFn | None = None
    ) -> Completion:
        return Completion(
            "Employees receive 25 days of paid vacation per year [1].", model, prompt.input_tokens, 14
        )


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def request(label: Classification = Classification.INTERNAL) -> GenerationRequest:
    sources = tuple(
        SourceChunk(
            chunk_id=f"hr/doc{i}.md#0",
            doc_id=f"hr/doc{i}.md",
            department="hr",
            title=f"Policy {i}",
            path=f"knowledge/hr/doc{i}.md",
            text=PARAGRAPH * 3,  # ~900 chars, a typical chunk
            score=0.8 - i * 0.05,
        )
        for i in range(6)
    )
    return GenerationRequest(
        question="How many vacation days do I get, and can I carry unused days over to next year?",
        department="hr",
        department_title="Human Resources",
        sources=sources,
        classification=label,
        user="alice@example.com",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    rows: list[tuple[str, list[float], str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="deptbot-bench-"))

    company = make_company(tmp)
    hr = company.department("hr")
    classifier = PatternClassifier()
    req = request()
    config = LLMConfig(
        models={
            "anthropic": {"small": "claude-haiku-4-5", "large": "claude-sonnet-4-5"},
            "private": {"small": "llama3.1:8b", "large": "llama3.3:70b"},
        },
        prices={"claude-haiku-4-5": Price(1.0, 5.0)},
    )
    providers = [InstantProvider("anthropic", "cloud"), InstantProvider("private", "private")]
    extractive = ExtractiveGenerator()
    bare = Router(config=config, providers=providers, fallback=extractive)
    usage = UsageStore(path=tmp / "usage.db")
    metered = Router(
        config=config,
        providers=providers,
        fallback=extractive,
        usage=usage,
        limits=BudgetLimits(user_tokens=10**12),
    )
    offline = Router(config=config, providers=[], fallback=extractive)

    def overhead() -> None:
        label, _ = classifier.classify(req.question, hr)
        r = GenerationRequest(**{**req.__dict__, "classification": max(label, hr.classification)})
        bare.plan(r)
        build_prompt(r)

    rows.append(("classify question", timed(lambda: classifier.classify(req.question, hr), n), ""))
    rows.append(("router.plan", timed(lambda: bare.plan(req), n), ""))
    rows.append(("build_prompt (6 sources, ~5.4k chars)", timed(lambda: build_prompt(req), n), ""))
    rows.append(("classify + plan + prompt", timed(overhead, n), "target <= 5 ms"))
    rows.append(("router.generate, instant provider", timed(lambda: bare.generate(req), n), "no usage store"))
    rows.append(
        (
            "router.generate + budgets + usage rows",
            timed(lambda: metered.generate(req), n // 4),
            "3 SQLite txns",
        )
    )
    rows.append(
        ("baseline: extractive.generate direct", timed(lambda: extractive.generate(req), n), "no routing")
    )
    rows.append(
        ("router.generate offline (→ extractive)", timed(lambda: offline.generate(req), n), "vs baseline")
    )

    # end to end through the Assistant (fake retriever, extractive generation)
    retriever = FakeRetriever([c for d in company for c in chunks_from_folder(d)])
    msg = Message(
        user_id="alice", email="alice@example.com", text="How many vacation days do I get?", department="hr"
    )

    def assistant(cache: object | None) -> Assistant:
        return Assistant(
            company=company,
            retriever=retriever,
            indexer=FakeIndexer(),
            generator=offline,
            audit=MemoryAudit(),
            classifier=classifier,
            cache=cache,  # type: ignore[arg-type]
        )

    uncached = assistant(None)
    rows.append(
        ("baseline: ask, no cache", timed(lambda: uncached.ask(msg), n // 4), "retrieve + extractive")
    )
    for name, cache in (
        ("memory", MemoryAnswerCache()),
        ("sqlite", SqliteAnswerCache(path=tmp / "cache.db")),
    ):
        a = assistant(cache)
        first = a.ask(msg)
        assert not first.cache_hit and a.ask(msg).cache_hit
        rows.append((f"ask, cache hit ({name})", timed(lambda a=a: a.ask(msg), n // 4), "target <= 10 ms"))  # type: ignore[misc]

    print(
        f"deptbot routing bench · {platform.machine()} {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()}"
    )
    print(f"token estimator: {encoder_name()} · n={n} (SQLite/assistant rows n={n // 4})\n")
    print(f"{'measurement':44} {'p50 ms':>8} {'p95 ms':>8}  note")
    print("─" * 80)
    for name, samples, note in rows:
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{name:44} {statistics.median(samples):8.3f} {p95:8.3f}  {note}")


if __name__ == "__main__":
    main()
