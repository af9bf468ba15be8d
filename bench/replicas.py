"""Answers per second and latency with 1 and 2 ``deptbot serve`` replicas on PostgreSQL,
against one replica on the embedded SQLite default, in the same run.

    nice -n 10 python -m bench.replicas [--seconds 5] [--rounds 5] [--concurrency 16]
                                        [--configs sqlite:1,postgresql:1,postgresql:2]
                                        [--url postgresql://…]

Processes on loopback, as in production but on one machine:

- this process: a stub Slack Web API (``bot.adapters.slack.stub``) and the load
  generator, which signs ``app_mention`` events with the signing secret and posts them to
  the replicas round-robin (a load balancer); an answer's latency is the time from the
  event's POST to the reply's ``chat.postMessage`` reaching the stub;
- each replica: a real ``deptbot serve`` (``python -m bot serve``) with its own state
  folder, as on its own machine, over the tests' tiny company, answering with the offline
  extractive answerer (no model: what is measured is deptbot and its stores);
- PostgreSQL: a ``pgserver`` (the wheel's PostgreSQL 16) in a temp folder, durable
  commits on (its defaults), one fresh database per configuration, migrated with
  ``deptbot db migrate`` as ``compose.yaml`` does. ``--url`` uses an existing server
  instead (it must let this user ``create database``).

Load is closed-loop: ``--concurrency`` askers each post an event and wait for its reply
before the next. Every question is unique (a number is appended), so the answer cache
never answers: each answer takes the whole path — event claim, access check, retrieval,
audit append with its chain, cache write, reply. Each configuration gets a warm-up, then
``--rounds`` rounds of ``--seconds``; the table shows the median round. ``ack p95`` is
the time until the replica's 200 to Slack (Slack retries after 3 s): the event loop's
responsiveness, which a blocking store call on it would show. ``lost`` counts
events without a reply within 30 s, ``dup`` events answered twice (both must be 0).

Writes only to temp folders (and, with ``--url``, to the databases it creates, which it
drops). The bench lowers its own priority to nice 10 (replicas inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.slack import QUESTIONS, SECRET, USERS, free_port  # the same signed traffic as bench.slack
from bot.adapters.slack.stub import BOT_USER_ID, SlackStub, StubChannel, signed_headers
from bot.store.backend import ENV_VAR

CHANNEL = "C0HRHELP"
REPLY_TIMEOUT = 30.0
WARMUP_SECONDS = 2.0
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class RepliesStub(SlackStub):
    """The stub Slack, which also tells the load generator when a reply arrives: the
    answer to a mention is posted in its thread, so ``thread_ts`` is the event's ``ts``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.replies: Counter[str] = Counter()

    def _record(self, method: str, args: dict[str, Any], path: str) -> None:
        at = time.perf_counter()
        if method == "chat.postMessage" and args.get("thread_ts"):
            ts = str(args["thread_ts"])
            self.replies[ts] += 1
            fut = self.waiting.pop(ts, None)
            if fut is not None and not fut.done():
                fut.set_result(at)
        # the per-answer calls are counted above, not kept: a long run must not grow without bound
        if method not in ("chat.postMessage", "reactions.add", "reactions.remove"):
            super()._record(method, args, path)


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Round:
    answered: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    acks_ms: list[float] = field(default_factory=list)  # POST until Slack's 200 (the ack)
    lost: int = 0
    cpu_replicas: float = 0.0  # CPU seconds the replicas used in the round
    cpu_postgres: float = float("nan")  # and PostgreSQL's processes (pgserver only)

    @property
    def per_s(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def pct(self, q: float, *, acks: bool = False) -> float:
        xs = sorted(self.acks_ms if acks else self.latencies_ms)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(len(xs) * q))]


@dataclass
class Result:
    backend: str
    replicas: int
    rounds: list[Round]
    dup: int
    rss_mb: list[float]
    audit: str  # what `deptbot audit verify` said afterwards (its last line)

    def median(self, what: str) -> float:
        values = {
            "per_s": [r.per_s for r in self.rounds],
            "p50": [r.pct(0.50) for r in self.rounds],
            "p95": [r.pct(0.95) for r in self.rounds],
            "ack_p95": [r.pct(0.95, acks=True) for r in self.rounds],
            "cpu": [1000 * r.cpu_replicas / max(1, r.answered) for r in self.rounds],
            "pg_cpu": [1000 * r.cpu_postgres / max(1, r.answered) for r in self.rounds],
        }[what]
        return statistics.median(values)


# ── the replicas ─────────────────────────────────────────────────────────────────────


def _env(base: dict[str, str], state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV}
    env.update(base)
    env["DEPTBOT_STATE"] = str(state)
    return env


def _deptbot(*argv: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "bot", *argv], env=env, stdout=out, stderr=out)


async def _wait_ready(session: aiohttp.ClientSession, replica: Replica, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise SystemExit(f"a replica exited at start-up; its log: {replica.log}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(replica.url + "/readyz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.25)
    raise SystemExit(f"a replica did not become ready in {timeout:.0f} s; its log: {replica.log}")


def _stop(replicas: list[Replica]) -> None:
    for r in replicas:
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGTERM)
    for r in replicas:
        try:
            r.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (Linux ``/proc``; NaN elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(parent: int) -> list[int]:
    """``parent`` and its child processes (PostgreSQL's postmaster and its backends)."""
    found = [parent]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


# ── the load ─────────────────────────────────────────────────────────────────────────


class Load:
    """Closed-loop askers posting signed mentions to the replicas round-robin."""

    def __init__(
        self, stub: RepliesStub, session: aiohttp.ClientSession, urls: list[str], tag: str, *, offset: int
    ) -> None:
        self.stub, self.session, self.urls, self.tag = stub, session, urls, tag
        self.n = 0
        self.offset = offset  # keeps event timestamps unique across configurations (one stub)
        self.sent: list[str] = []

    def _event(self) -> tuple[str, str, str]:
        self.n += 1
        i = self.n
        ts = f"{1700000000 + self.offset + i}.000100"
        self.sent.append(ts)
        user = f"U{i % len(USERS):04d}"
        event = {
            "type": "app_mention",
            "user": user,
            "channel": CHANNEL,
            "ts": ts,
            "text": f"<@{BOT_USER_ID}> {QUESTIONS[i % len(QUESTIONS)]} #{i}",
        }
        body = {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"Ev{self.tag}{i:08d}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": "T1", "user_id": BOT_USER_ID, "is_bot": True}],
        }
        return json.dumps(body), ts, self.urls[i % len(self.urls)]

    async def _ask(self, acks: list[float]) -> float | None:
        body, ts, url = self._event()
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.stub.waiting[ts] = fut
        headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
        started = time.perf_counter()
        try:
            async with self.session.post(url + "/slack/events", data=body.encode(), headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    self.stub.waiting.pop(ts, None)
                    return None
            acks.append((time.perf_counter() - started) * 1000)
            done = await asyncio.wait_for(fut, REPLY_TIMEOUT)
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.stub.waiting.pop(ts, None)
            return None
        return (done - started) * 1000

    async def run(self, seconds: float, concurrency: int) -> Round:
        result = Round(answered=0, seconds=0.0)
        until = time.perf_counter() + seconds
        started = time.perf_counter()

        async def asker() -> None:
            while time.perf_counter() < until:
                ms = await self._ask(result.acks_ms)
                if ms is None:
                    result.lost += 1
                else:
                    result.answered += 1
                    result.latencies_ms.append(ms)

        await asyncio.gather(*(asker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
        return result


# ── the configurations ───────────────────────────────────────────────────────────────


@dataclass
class Config:
    """One backend with its replicas, all started before the first round."""

    backend: str
    count: int
    folder: Path
    env: dict[str, str]
    db_name: str = ""
    replicas: list[Replica] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)


def _start(config: Config) -> None:
    config.folder.mkdir()
    if config.db_name:  # as compose.yaml: migrate, then serve
        log = config.folder / "migrate.log"
        migrated = _deptbot("db", "migrate", env=_env(config.env, config.folder / "state-0"), log=log)
        if migrated.wait(timeout=120) != 0:
            raise SystemExit(f"deptbot db migrate failed: {log}")
    for k in range(config.count):
        port = free_port()
        log = config.folder / f"replica-{k}.log"
        proc = _deptbot(
            "serve", "--port", str(port), env=_env(config.env, config.folder / f"state-{k}"), log=log
        )
        config.replicas.append(Replica(f"http://127.0.0.1:{port}", proc, log))


def _verify(config: Config) -> str:
    """`deptbot audit verify` on the chain the run wrote (every replica's rows, one chain)."""
    log = config.folder / "verify.log"
    env = _env(config.env, config.folder / "state-0")
    code = _deptbot("audit", "verify", env=env, log=log).wait(timeout=300)
    lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    last = lines[-1] if lines else ""
    seq = re.search(r"seq=(\d+)", last)
    if code == 0:
        return f"verified ({int(seq.group(1)) + 1 if seq else '?'} rows)"
    return f"FAILED (exit {code}, see {log})"


async def _measure(
    configs: list[Config], stub: RepliesStub, args: argparse.Namespace, postmaster: int | None
) -> list[Result]:
    """Rounds interleaved across the configurations (the order rotating each round), so
    whatever else the machine does at the time weighs on all of them alike. CPU seconds
    are counted per round for the replicas and (pgserver) PostgreSQL's processes: unlike
    answers per second they do not depend on what else the machine is doing."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REPLY_TIMEOUT)) as session:
        for config in configs:
            for r in config.replicas:
                await _wait_ready(session, r)
        loads = [
            Load(stub, session, [r.url for r in c.replicas], f"{c.backend[:2]}{c.count}", offset=n * 10**7)
            for n, c in enumerate(configs)
        ]
        for load in loads:
            await load.run(WARMUP_SECONDS, args.concurrency)
        for k in range(args.rounds):
            order = list(range(len(configs)))
            order = order[k % len(order) :] + order[: k % len(order)]
            for n in order:
                pids = [r.process.pid for r in configs[n].replicas]
                pg = _children(postmaster) if postmaster else []
                cpu, pg_cpu = _cpu_seconds(pids), _cpu_seconds(pg)
                measured = await loads[n].run(args.seconds, args.concurrency)
                measured.cpu_replicas = _cpu_seconds(pids) - cpu
                if pg and configs[n].backend == "postgresql":
                    measured.cpu_postgres = _cpu_seconds(pg) - pg_cpu
                configs[n].rounds.append(measured)
        await asyncio.sleep(1.0)  # a late duplicate reply would arrive now
    results = []
    for config, load in zip(configs, loads, strict=True):
        dup = sum(1 for ts in load.sent if stub.replies[ts] > 1)
        rss = [_rss_mb(r.process.pid) for r in config.replicas]
        results.append(Result(config.backend, config.count, config.rounds, dup, rss, ""))
    return results


def _postmaster(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pg(args: argparse.Namespace, root: Path) -> tuple[str, Any]:
    """The PostgreSQL base URL and the pgserver handle (None with ``--url``)."""
    if args.url:
        return str(args.url), None
    import pgserver  # dev extra

    t = time.perf_counter()
    server = pgserver.get_server(root / "pg", cleanup_mode="stop")
    print(f"pgserver (PostgreSQL 16) started in {time.perf_counter() - t:.1f} s", flush=True)
    return str(server.get_uri()), server


def _database(base: str, name: str) -> str:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)".encode())
        conn.execute(f"create database {name}".encode())
    head, _, query = base.partition("?")
    prefix = head.rsplit("/", 1)[0]
    return f"{prefix}/{name}" + (f"?{query}" if query else "")


def _drop(base: str, name: str) -> None:
    import psycopg

    with contextlib.suppress(Exception), psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)".encode())


def _parse_configs(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        backend, _, count = item.strip().partition(":")
        if backend not in ("sqlite", "postgresql") or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--configs: {item!r} is not sqlite:N or postgresql:N")
        out.append((backend, int(count)))
    return out


def _print(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"closed loop, {args.concurrency} askers, {args.rounds} rounds of {args.seconds:g} s each, "
        f"interleaved; median round; {os.cpu_count()} CPUs shared by PostgreSQL, the replicas, "
        "this generator (and whatever else runs here)"
    )
    head = f"{'backend':<11} {'replicas':>8} {'answers/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'ack p95':>7}"
    print(head + f" {'CPU ms/answer':>13} {'+ PostgreSQL':>12} {'lost':>5} {'dup':>4}  RSS/replica")
    for r in results:
        lost = sum(x.lost for x in r.rounds)
        rss = ", ".join(f"{m:.0f} MB" for m in r.rss_mb)
        pg = r.median("pg_cpu")
        print(
            f"{r.backend:<11} {r.replicas:>8} {r.median('per_s'):>10.1f} {r.median('p50'):>7.0f} "
            f"{r.median('p95'):>7.0f} {r.median('ack_p95'):>7.1f} {r.median('cpu'):>13.1f} "
            f"{'-' if pg != pg else f'{pg:.1f}':>12} {lost:>5} {r.dup:>4}  {rss}"
        )
    print("audit chain afterwards: " + "; ".join(f"{r.backend}×{r.replicas} {r.audit}" for r in results))
    print(
        "\nOn this machine the replicas, PostgreSQL and the load generator share the same cores, so a "
        "second replica adds no CPU: the 2-replica row shows that two replicas sharing one database "
        "answer every event exactly once, and what the sharing costs, not how throughput scales. "
        "On separate machines each replica brings its own cores and throughput adds up until the "
        "shared database saturates: CPU ms/answer (+ PostgreSQL's) says how many cores that takes, "
        "and the audit chain's one-writer order caps appends near one per durable commit across all "
        "replicas (python -m bench.pg_stores)."
    )


async def _main(args: argparse.Namespace) -> list[Result]:
    from tests.fakes import make_company  # the tests' tiny company (no corpus text)

    root = Path(tempfile.mkdtemp(prefix="deptbot-bench-replicas-"))
    server = None
    configs: list[Config] = []
    results: list[Result] = []
    base = ""
    stub = RepliesStub(users=USERS, channels={CHANNEL: StubChannel(members=[*USERS, BOT_USER_ID])})
    await stub.start()
    try:
        make_company(root / "company")
        base_env = {
            "DEPTBOT_DEPARTMENTS": str(root / "company" / "departments"),
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": stub.api_url,
            # every replica must share these on PostgreSQL (README "Running several replicas")
            "DEPTBOT_AUDIT_KEY": secrets.token_hex(32),
            "DEPTBOT_MASTER_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        wanted = _parse_configs(args.configs)
        if any(b == "postgresql" for b, _ in wanted):
            base, server = _pg(args, root)
        t = time.perf_counter()
        for n, (backend, count) in enumerate(wanted):
            config = Config(backend, count, root / f"{n}-{backend}-{count}", dict(base_env))
            if backend == "postgresql":
                config.db_name = f"bench_replicas_{n}"
                config.env[ENV_VAR] = _database(base, config.db_name)
            configs.append(config)
            _start(config)
        results = await _measure(configs, stub, args, _postmaster(root / "pg") if server else None)
        print(f"measured in {time.perf_counter() - t:.0f} s, start-up included", flush=True)
    finally:
        for config in configs:
            _stop(config.replicas)
        await stub.stop()
    try:
        for config, result in zip(configs, results, strict=True):
            result.audit = _verify(config)
        if stub.violations:
            print(f"note: payloads Slack would refuse: {stub.violations[:3]}", file=sys.stderr)
    finally:
        for config in configs:
            if config.db_name:
                _drop(base, config.db_name)
        if server is not None:
            server.cleanup()
        if args.keep:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of a measured round (default 5)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds per configuration (default 5)")
    ap.add_argument(
        "--concurrency", type=int, default=16, help="askers waiting on a reply at once (default 16)"
    )
    ap.add_argument(
        "--configs",
        default="sqlite:1,postgresql:1,postgresql:2",
        help="backend:replicas, comma-separated (default sqlite:1,postgresql:1,postgresql:2)",
    )
    ap.add_argument("--url", help="an existing PostgreSQL server to create the bench databases on")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (replica logs)")
    args = ap.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(max(0, 10 - os.nice(0)))  # be kind to the shared machine; the replicas inherit it
    _print(asyncio.run(_main(args)), args)


if __name__ == "__main__":
    main()
