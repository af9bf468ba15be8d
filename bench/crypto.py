"""What encryption at rest costs per request: p50/p95 added latency of the vault's work.

    python -m bench.crypto [--requests 3000] [--people 500]

One request's crypto, as the stores do it: seal the question (audit ``request_text``),
seal the answer JSON (~2 KB, answer cache), seal the two history turns (Teams state), and
open the two previous turns and one cached answer (a follow-up served partly from cache).
Each vault call reads the subject's wrapped key row from ``keys.db`` (so a key shredded by
another process is never used), then encrypts with AES-GCM; unwrapped keys are cached.

Baseline in the same run, interleaved: the same calls with a no-op vault (UTF-8 encode and
decode only), so the difference is what encryption adds. Also timed: the first seal for a
new person (creates and wraps their data key: once per person, not per request).
Target: p50 added latency < 1 ms. Writes only to a temp folder.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.governance import keys as mk
from bot.governance.vault import Vault

QUESTION = "How many vacation days can I carry over into next year, and until when do I have to use them?"
ANSWER = json.dumps(
    {
        "text": "Full-time employees receive 25 days of paid vacation per year [1]. " * 12,
        "citations": [
            {"title": f"Policy {i}", "path": f"hr/policy-{i}.md", "snippet": "x" * 200} for i in range(4)
        ],
    }
)


class PlainVault:
    """The baseline: what the stores would do without encryption (text ↔ bytes)."""

    def seal(self, subject: str, plaintext: str, context: str = "") -> bytes:
        return plaintext.encode("utf-8")

    def open(self, subject: str, blob: Any, context: str = "") -> str:
        return bytes(blob).decode("utf-8")


def one_request(vault: Any, person: str, i: int, previous: dict[str, bytes]) -> None:
    q = vault.seal(person, QUESTION, f"request_text:r{i}")
    a = vault.seal("cache:hr", ANSWER, f"cache:k{i}")
    t1 = vault.seal(f"teams:{person}", QUESTION, f"teams_history:{i}:1")
    t2 = vault.seal(f"teams:{person}", ANSWER[:1500], f"teams_history:{i}:2")
    if previous:
        vault.open(f"teams:{person}", previous["t1"], previous["c1"])
        vault.open(f"teams:{person}", previous["t2"], previous["c2"])
        vault.open("cache:hr", previous["a"], previous["ca"])
    previous.update(
        t1=t1, t2=t2, a=a, q=q, c1=f"teams_history:{i}:1", c2=f"teams_history:{i}:2", ca=f"cache:k{i}"
    )


def seal_open(vault: Vault, person: str) -> None:
    vault.open(person, vault.seal(person, QUESTION, "q"), "q")


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def _row(name: str, samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[min(len(s) - 1, int(len(s) * 0.95))]
    return f"{name:<44} {statistics.median(s):>9.3f} {p95:>9.3f} {len(s):>7}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--people", type=int, default=500)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        vault = Vault.in_state_dir(Path(tmp), mk.load({mk.ENV_VAR: mk.generate()}, None))
        plain = PlainVault()
        people = [f"user{i}@example.com" for i in range(args.people)]
        first_use = [_time(lambda p=p: vault.seal(p, QUESTION, "c")) for p in people]  # type: ignore[misc]
        rng = random.Random(7)
        enc: list[float] = []
        base: list[float] = []
        single: list[float] = []
        prev_e: dict[str, dict[str, bytes]] = {}
        prev_b: dict[str, dict[str, bytes]] = {}
        for i in range(args.requests):
            person = rng.choice(people)
            pe, pb = prev_e.setdefault(person, {}), prev_b.setdefault(person, {})
            encrypted = functools.partial(one_request, vault, person, i, pe)
            baseline = functools.partial(one_request, plain, person, i, pb)
            if i % 2:  # interleave, so both see the same caches and the same machine load
                enc.append(_time(encrypted))
                base.append(_time(baseline))
            else:
                base.append(_time(baseline))
                enc.append(_time(encrypted))
            single.append(_time(functools.partial(seal_open, vault, person)))
        vault.close()
    added = statistics.median(enc) - statistics.median(base)
    title = f"ms per request ({args.requests} requests, {args.people} people)"
    print(f"{title:<44} {'p50':>9} {'p95':>9} {'n':>7}")
    print(_row("one request's crypto (4 seals + 3 opens)", enc))
    print(_row("baseline: same calls, no encryption", base))
    print(_row("seal + open of one question", single))
    print(_row("first seal for a new person (key created)", first_use))
    verdict = "OK" if added < 1.0 else "OVER TARGET"
    print(f"\nadded latency per request, p50: {added:.3f} ms (target < 1 ms: {verdict})")
    return 0 if added < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
