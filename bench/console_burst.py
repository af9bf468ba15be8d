"""Slack acknowledgements while admins open console reports: ack p50/p99 with and without a burst.

Three processes on loopback, as in ``bench.slack``: the stub Slack Web API, the deptbot
server (real ``build_app``: Slack, the admin console and the runtime share it; extractive
generator over the tests' tiny company) and this load generator. For each way the console
may run its work:

- ``report threads``: as shipped (``runtime.report_threads``);
- ``quick threads (before)``: the console's work put back on the quick threads, as before
  this pool existed (the server process swaps ``Runtime.report`` for ``Runtime.quick``),

signed ``app_mention`` events are sent open-loop at ``--rate``/s, first alone, then while
``--admins`` signed-in admins each keep re-opening the overview page. Each report holds its
thread for ``--report-seconds`` (default 2.3: a cold overview at 1M audit rows) by waiting,
as a report does on PostgreSQL, where the grouping runs on the server; on SQLite part of it
is Python work holding the GIL, which no pool choice removes. Reported per case: acks, p50,
p99 and max in ms, how many took longer than Slack's 3 s, and console pages served.

    python -m bench.console_burst [--events 300] [--rate 50] [--admins 6] [--report-seconds 2.3]

About 1 minute with the defaults. Writes only to a temp folder.

Measured on the 2-core machine (shared, under load), median of 3 runs with the defaults:
ack p50/p99 1.9/7.6 ms with no console; 1.9/10.5 ms while 6 admins open reports on the
report threads; before, on the quick threads, 996/2,307 ms (10 admins: 2,572/4,536 ms, 105
of 300 acks past 3 s). The price: the 2 report threads served about 10 pages in a case
where the 4 shared quick threads served 20, so admins now wait on each other sooner.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.slack import SECRET, bench_app, envelope, free_port, run_stub, wait_ready

HANK = "hank@example.com"  # administers hr in the tests' tiny company


class SlowReports:
    """The console's insights, each overview first waiting ``seconds`` (a cold report)."""

    def __init__(self, real: Any, seconds: float) -> None:
        self.real = real
        self.seconds = seconds

    def overview(self, department: str, days: int) -> Any:
        time.sleep(self.seconds)
        return self.real.overview(department, days)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def run_server(port: int, api_url: str, state: str, report_seconds: float, shared: bool) -> None:
    from aiohttp import web

    from bot.adapters.http import RUNTIME
    from bot.admin.web import CONSOLE

    app = bench_app(api_url, state, host="127.0.0.1")  # the console is mounted for local hosts
    console = app[CONSOLE]
    console.insights = SlowReports(console.insights, report_seconds)  # type: ignore[assignment]
    if shared:  # the console as it ran before: on the quick threads, with the Slack claims
        runtime = app[RUNTIME]
        runtime.report = runtime.quick  # type: ignore[method-assign]
    sid = console.store.open_session(HANK, absolute=3600.0)
    (Path(state) / "sid").write_text(sid)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def acks(session: Any, url: str, first: int, events: int, rate: float) -> list[float]:
    """Open loop at ``rate``/s; each event's ack latency in ms (failed requests count as inf)."""
    from bot.adapters.slack.stub import signed_headers

    latencies: list[float] = []

    async def one(body: str) -> None:
        headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
        t0 = time.perf_counter()
        async with session.post(url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            ok = resp.status == 200
        latencies.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))

    started = time.perf_counter()
    tasks = []
    for i in range(events):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(envelope(first + i)[0])))
    await asyncio.gather(*tasks)
    return sorted(latencies)


async def admins(session: Any, url: str, sid: str, n: int, stop: asyncio.Event) -> int:
    """``n`` admins re-opening the overview until ``stop``; pages served."""
    from bot.admin import auth

    served = 0

    async def admin() -> None:
        nonlocal served
        while not stop.is_set():
            async with session.get(url, cookies={auth.COOKIE: sid}, allow_redirects=False) as resp:
                await resp.read()
                served += resp.status == 200

    await asyncio.gather(*(admin() for _ in range(n)))
    return served


async def replies_at_least(session: Any, summary_url: str, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(summary_url) as resp:
            if (await resp.json())["counts"].get("chat.postMessage", 0) >= n:
                return
        await asyncio.sleep(0.25)


def row(name: str, lat: list[float], pages: int | str) -> str:
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    late = sum(1 for x in lat if x > 3000)
    return (
        f"{name:<44} {len(lat):>5} {statistics.median(lat):>8.1f} {p99:>8.1f} {lat[-1]:>8.1f}"
        f" {late:>6} {pages!s:>6}"
    )


async def one_mode(shared: bool, args: argparse.Namespace) -> list[str]:
    import aiohttp

    stub_port, server_port = free_port(), free_port()
    state = tempfile.mkdtemp(prefix="deptbot-bench-")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=run_stub, args=(stub_port,), daemon=True),
        ctx.Process(
            target=run_server,
            args=(server_port, f"http://127.0.0.1:{stub_port}/api/", state, args.report_seconds, shared),
            daemon=True,
        ),
    ]
    for p in procs:
        p.start()
    base = f"http://127.0.0.1:{server_port}"
    summary_url = f"http://127.0.0.1:{stub_port}/_stub/summary"
    mode = "quick threads (before)" if shared else "report threads"
    out: list[str] = []
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, base + "/healthz")
            await wait_ready(session, summary_url)
            sid = (Path(state) / "sid").read_text()
            warm = await acks(session, base + "/slack/events", 9_000_000, 20, 20.0)
            await replies_at_least(session, summary_url, len(warm))
            alone = await acks(session, base + "/slack/events", 0, args.events, args.rate)
            await replies_at_least(session, summary_url, len(warm) + args.events)
            out.append(row(f"{mode}: no console", alone, "-"))
            stop = asyncio.Event()
            burst = asyncio.create_task(admins(session, base + "/admin/d/hr", sid, args.admins, stop))
            await asyncio.sleep(args.report_seconds / 2)  # the admins' first reports are running
            busy = await acks(session, base + "/slack/events", 1_000_000, args.events, args.rate)
            stop.set()
            pages = await burst
            out.append(row(f"{mode}: {args.admins} admins on reports", busy, pages))
            await replies_at_least(session, summary_url, len(warm) + 2 * args.events)
    finally:
        for p in procs:
            p.terminate()
            p.join(5)
    return out


async def bench(args: argparse.Namespace) -> None:
    rows = [*await one_mode(False, args), *await one_mode(True, args)]
    print(
        f"\nSlack acks while admins open console reports — {args.events} events at {args.rate:.0f}/s "
        f"per case, {args.admins} admins, {args.report_seconds} s per report, {mp.cpu_count()} CPUs"
    )
    head = f"{'console work on':<44} {'acks':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    head += f" {'> 3 s':>6} {'pages':>6}"
    print(head)
    print("-" * len(head))
    for line in rows:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300, help="Slack events per case")
    parser.add_argument("--rate", type=float, default=50.0, help="Slack events per second")
    parser.add_argument("--admins", type=int, default=6, help="admins re-opening reports in the burst")
    parser.add_argument(
        "--report-seconds", type=float, default=2.3, help="how long one report holds its thread"
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
