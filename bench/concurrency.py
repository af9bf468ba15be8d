"""Many slow answers at once: 50 simultaneous Slack questions with a 2 s model.

Processes on loopback: the stub Slack Web API (``bench.slack``), an OpenAI-compatible stub
model that takes ``--model-seconds`` per completion (``tests.llm.stubs.StubLLM``, serving as
both the cloud and the private model), and one deptbot server per configuration (real
``build_app``, real ``Assistant``, the tests' tiny company with ``FakeRetriever``):

- before: ``runtime.answer_threads = 6`` and ``runtime.max_in_flight = 8``, what the server
  had before the runtime (``asyncio.to_thread`` on the default executor of min(32, CPUs + 4)
  threads on this machine's CPU count, and a hard-coded ``max_active = 8``);
- after: the packaged ``[runtime]`` defaults.

Each run sends ``--questions`` signed ``app_mention`` events at once, and while they are
answered keeps sending signed ``url_verification`` requests every 20 ms (acks "meanwhile").
Reported per configuration (medians over ``--runs``): time until every question had its
answer, ack latency p50/p99 (the questions' acks and the ones sent meanwhile), answers lost
or duplicated, and how many people were told their question was queued.

    python -m bench.concurrency [--questions 50] [--model-seconds 2] [--runs 3]

Target (issue 10): all 50 answered within 3 s with a 2 s model; p99 ack < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.slack import SECRET, USERS, free_port, run_stub, wait_ready

CHANNEL = "C0HRHELP"
CONFIGS = {
    "before (6 threads, 8 in flight)": {
        "DEPTBOT_RUNTIME__ANSWER_THREADS": "6",
        "DEPTBOT_RUNTIME__MAX_IN_FLIGHT": "8",
    },
    "after (packaged [runtime])": {},
}


def run_model(seconds: float, ports: Any) -> None:
    from tests.llm.stubs import StubLLM

    stub = StubLLM(kind="openai", default="slow", slow_seconds=seconds)
    ports.put(stub.server.server_address[1])
    while True:
        time.sleep(3600)


def run_server(port: int, api_url: str, llm_url: str, state: str, overrides: dict[str, str]) -> None:
    import logging

    from aiohttp import web

    from bot.adapters.http import build_app
    from bot.core.pipeline import Assistant
    from bot.llm.factory import build_generator
    from bot.settings import Settings
    from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder, make_company

    logging.basicConfig(level=logging.WARNING)
    company = make_company(Path(state) / "company")
    env = {
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": llm_url,
        "DEPTBOT_PRIVATE_LLM_URL": llm_url,
        **overrides,
    }
    settings = Settings.load(departments=Path(state), state=Path(state) / "state", env=env)
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=build_generator(settings, usage_store=None),
        audit=MemoryAudit(),
    )
    app = build_app(assistant=assistant, settings=settings)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def envelope(run: int, i: int) -> tuple[str, str]:
    ts = f"{1800000000 + run * 1000 + i}.000100"
    event = {
        "type": "app_mention",
        "user": f"U{i % len(USERS):04d}",
        "channel": CHANNEL,
        "ts": ts,
        "text": f"<@UBOT> How many vacation days do I get? ({run}.{i})",
    }
    body = {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": f"EvConc{run:03d}{i:05d}",
        "event_time": int(time.time()),
        "event": event,
    }
    return json.dumps(body), ts


async def post(session: Any, url: str, body: str) -> float:
    from bot.adapters.slack.stub import signed_headers

    headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
    t0 = time.perf_counter()
    async with session.post(url, data=body.encode(), headers=headers) as resp:
        await resp.read()
        if resp.status != 200:
            raise SystemExit(f"{url} answered {resp.status}")
    return (time.perf_counter() - t0) * 1000


def _busy(call: dict[str, Any]) -> bool:
    return str(call["args"].get("text", "")).startswith("I'm busy")


async def one_run(session: Any, url: str, calls_url: str, run: int, questions: int) -> dict[str, Any]:
    sent = [envelope(run, i) for i in range(questions)]
    expected = {ts for _, ts in sent}
    verify = json.dumps({"type": "url_verification", "challenge": "x", "token": "t"})
    done = asyncio.Event()
    meanwhile: list[float] = []

    async def pings() -> None:
        while not done.is_set():
            meanwhile.append(await post(session, url, verify))
            await asyncio.sleep(0.02)

    started = time.monotonic()
    pinger = asyncio.create_task(pings())
    acks = await asyncio.gather(*(post(session, url, body) for body, _ in sent))
    deadline = started + 300
    while True:
        async with session.get(calls_url) as resp:
            calls = [c for c in await resp.json() if c["args"].get("thread_ts") in expected]
        answers = [
            c
            for c in calls
            if c["method"] == "chat.postMessage" or (c["method"] == "chat.postEphemeral" and not _busy(c))
        ]
        if len({c["args"]["thread_ts"] for c in answers}) >= questions or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    done.set()
    await pinger
    await asyncio.sleep(0.5)  # late duplicates would show up here
    async with session.get(calls_url) as resp:
        calls = [c for c in await resp.json() if c["args"].get("thread_ts") in expected]
    answers = [
        c
        for c in calls
        if c["method"] == "chat.postMessage" or (c["method"] == "chat.postEphemeral" and not _busy(c))
    ]
    per_thread = Counter(c["args"]["thread_ts"] for c in answers)
    latencies = sorted(acks + meanwhile)
    return {
        "all_answered_s": max(c["at"] for c in answers) - started if answers else float("nan"),
        "ack_p50": statistics.median(latencies),
        "ack_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "acks": len(latencies),
        "lost": len(expected - set(per_thread)),
        "duplicated": sum(n - 1 for n in per_thread.values() if n > 1),
        "queued": sum(1 for c in calls if c["method"] == "chat.postEphemeral" and _busy(c)),
    }


async def bench(questions: int, model_seconds: float, runs: int) -> None:
    import aiohttp

    ctx = mp.get_context("spawn")
    ports: Any = ctx.Queue()
    stub_port = free_port()
    procs = [
        ctx.Process(target=run_stub, args=(stub_port,), daemon=True),
        ctx.Process(target=run_model, args=(model_seconds, ports), daemon=True),
    ]
    for p in procs:
        p.start()
    llm_url = f"http://127.0.0.1:{ports.get(timeout=60)}/v1"
    api_url = f"http://127.0.0.1:{stub_port}/api/"
    calls_url = f"http://127.0.0.1:{stub_port}/_stub/calls"
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await wait_ready(session, f"http://127.0.0.1:{stub_port}/_stub/summary")
            for c, (name, overrides) in enumerate(CONFIGS.items()):
                port = free_port()
                state = tempfile.mkdtemp(prefix="deptbot-conc-")
                server = ctx.Process(
                    target=run_server, args=(port, api_url, llm_url, state, overrides), daemon=True
                )
                server.start()
                procs.append(server)
                base = f"http://127.0.0.1:{port}"
                await wait_ready(session, base + "/livez")
                await one_run(session, base + "/slack/events", calls_url, 900 + c, 4)  # warm up
                results[name] = [
                    await one_run(session, base + "/slack/events", calls_url, c * 100 + r, questions)
                    for r in range(runs)
                ]
                server.terminate()
                server.join(5)
    finally:
        for p in procs:
            p.terminate()
            p.join(5)

    print(
        f"\nConcurrency bench — {questions} simultaneous Slack questions, {model_seconds:g} s model, "
        f"{os.cpu_count()} CPUs, medians of {runs} runs"
    )
    head = f"{'configuration':<34} {'all answered s':>14} {'ack p50 ms':>10} {'ack p99 ms':>10}"
    head += f" {'queued':>7} {'lost/dup':>9}"
    print(head)
    print("-" * len(head))
    for name, rows in results.items():

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        lostdup = f"{sum(r['lost'] for r in rows)} / {sum(r['duplicated'] for r in rows)}"
        print(
            f"{name:<34} {med('all_answered_s'):>14.2f} {med('ack_p50'):>10.1f} {med('ack_p99'):>10.1f}"
            f" {med('queued'):>7.0f} {lostdup:>9}"
        )
    after = results["after (packaged [runtime])"]
    ok = (
        statistics.median(r["all_answered_s"] for r in after) <= 3.0
        and statistics.median(r["ack_p99"] for r in after) < 100
        and all(r["lost"] == 0 and r["duplicated"] == 0 for rows in results.values() for r in rows)
    )
    print(
        f"target (all {questions} answered ≤ 3 s with a 2 s model, ack p99 < 100 ms, 0 lost/dup):",
        "met" if ok else "NOT met",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--model-seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(bench(args.questions, args.model_seconds, args.runs))


if __name__ == "__main__":
    main()
