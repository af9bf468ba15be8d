"""Two real ``deptbot serve`` processes on one PostgreSQL, as two replicas behind a load
balancer (issue 12 item 4). Each has its own port on 127.0.0.1 and its own state folder;
they share the session's pgserver database (``DEPTBOT_DATABASE_URL``), one stub Slack Web
API and one OpenAI-compatible stub model, both on loopback in this process. Events are
signed with the signing secret, as Slack signs them.

One test, in steps, because the steps share two processes that take seconds to start
(and step b kills one of them):

a. an event delivered to both replicas and redelivered 3 times gets exactly one reply;
c. 50 concurrent questions split across the replicas never overspend the department's
   daily token budget, and exactly the questions that did not fit are refused;
b. a replica SIGKILLed while answering: Slack's redelivery to the other replica is
   answered once its claim's lease expired (before leases, a claim was forever and the
   question never got a reply);
d. a scheduled job (the alert check, its interval shortened for the test) runs once per
   slot across both replicas, though both fire it;
e. ``deptbot audit verify`` passes on the shared chain afterwards.

The model is held back where a step needs it: step b's first request for its question
until the replica is killed, step c's requests until every question has either reserved
its tokens or been refused (so no settled reservation frees budget mid-burst, and the
expected refusals are exact).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from bot.adapters.slack.stub import SlackStub, signed_headers
from tests.adapters.slack.conftest import SCOPES, SECRET, TOKEN, USERS, default_channels
from tests.fakes import make_company
from tests.llm.stubs import StubLLM

REPO = Path(__file__).resolve().parents[2]
AUDIT_KEY = "ab" * 32
MASTER_KEY = base64.urlsafe_b64encode(b"m" * 32).decode()
LEASE = 4.0  # [runtime] claim_lease_seconds for this test (default: 2 x llm.deadline_seconds)
ALERT_SECONDS = 2.0  # the alert check's interval (and slot) in the replicas; 15 minutes in production
BURST = 50
QUESTIONS = {
    "a": "How many vacation days do I get?",
    "b": "How many sick days do I get?",
    "c": "Can unused vacation days be carried over?",
}

# ``deptbot serve`` itself, with the alert check's interval shortened and each firing and
# each run printed (the job's body runs only for the replica whose claim_slot won).
LAUNCH = """
import sys
import time
import bot.ops.runner as runner
from bot.ops.alerts import Alerts
from bot.cli.app import main

runner.ALERT_CHECK_MINUTES = float(sys.argv[1]) / 60.0
fire, run = runner.Operations.check_alerts, Alerts.check_and_send

def check_alerts(self):
    print(f"ops:alerts fired {time.time():.3f}", flush=True)
    return fire(self)

def check_and_send(self, dept):
    print(f"ops:alerts ran {dept.name} {time.time():.3f}", flush=True)
    return run(self, dept)

runner.Operations.check_alerts = check_alerts
Alerts.check_and_send = check_and_send
raise SystemExit(main(sys.argv[2:]))
"""


class HeldLLM(StubLLM):
    """``StubLLM`` (OpenAI wire format) that can hold requests whose prompt contains a phrase:
    ``hold(phrase, first_only)`` returns the event that releases them."""

    def __post_init__(self) -> None:
        self.holds: list[tuple[str, threading.Event, bool]] = []
        self.seen_first: set[str] = set()
        super().__post_init__()

    def hold(self, phrase: str, *, first_only: bool = False) -> threading.Event:
        gate = threading.Event()
        self.holds.append((phrase, gate, first_only))
        return gate

    def asked(self, phrase: str) -> int:
        return sum(phrase in json.dumps(r.body) for r in list(self.requests))

    def _respond(self, h: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: str) -> None:
        prompt = json.dumps(body)
        for phrase, gate, first_only in list(self.holds):
            if phrase not in prompt:
                continue
            with self._lock:
                held = not first_only or phrase not in self.seen_first
                self.seen_first.add(phrase)
            if held:
                gate.wait(60)
        super()._respond(h, body, behaviour)


class SlackThread:
    """The stub Slack Web API on its own event loop, in a thread (the replicas call it while
    this test blocks)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stub = SlackStub(users=USERS, channels=default_channels(), scopes=SCOPES)
        self._run(self.stub.start())

    def _run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(10)

    def replies(self, thread: str) -> list[dict[str, Any]]:
        """What the bot posted in ``thread``: channel messages and ephemeral lines alike."""
        return [
            c.args
            for c in list(self.stub.calls)
            if c.method in ("chat.postMessage", "chat.postEphemeral") and c.args.get("thread_ts") == thread
        ]

    def close(self) -> None:
        self._run(self.stub.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Replica:
    """One ``deptbot serve`` process; its output goes to files (read after it stopped)."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.state = root / f"machine-{name}"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = root / f"{name}.out"
        self.err = root / f"{name}.err"
        serve = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, str(ALERT_SECONDS), *_global_args(root, self.state), *serve],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=err,
            )

    def wait_ready(self, deadline: float) -> None:
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"replica {self.name} exited: {self.err.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"replica {self.name} not ready in time: {self.err.read_text()[-3000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.out.read_text().splitlines() if line.startswith(prefix)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _global_args(root: Path, state: Path) -> list[str]:
    return [
        "--departments",
        str(root / "departments"),
        "--state",
        str(state),
        "--settings",
        str(root / "settings.toml"),
    ]


def _settings(budget: int) -> str:
    return f"""
[llm]
max_retries = 0
timeout_seconds = 30
deadline_seconds = 40
max_tokens = 300
[budgets]
user_daily_tokens = 0
user_daily_cost = 0
department_daily_tokens = {budget}
department_daily_cost = 0
[cache]
enabled = false
[runtime]
claim_lease_seconds = {LEASE}
[ops]
digest_enabled = false
[knowledge]
watch = "poll"
watch_poll_seconds = 60
[admin]
enabled = false
"""


def _env(pg_url: str, slack: SlackStub, llm: StubLLM) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEPTBOT_", "SLACK_", "OPENAI_", "ANTHROPIC_"))
    }
    return keep | {
        "PYTHONPATH": str(REPO),
        "DEPTBOT_DATABASE_URL": pg_url,
        "DEPTBOT_AUDIT_KEY": AUDIT_KEY,
        "DEPTBOT_MASTER_KEY": MASTER_KEY,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": llm.url,
        "DEPTBOT_PRIVATE_LLM_URL": llm.url,
        "DEPTBOT_PRIVATE_LLM_KEY": "private-key",
    }


def _mention(text: str, ts: str) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "UALICE",
        "channel": "C0HRHELP",
        "ts": ts,
        "text": f"<@UBOT> {text}",
    }


async def _deliver(
    session: aiohttp.ClientSession, replica: Replica, event: dict[str, Any], event_id: str, retry: int = 0
) -> int:
    """POST the event as Slack does (signed; ``X-Slack-Retry-Num`` on a redelivery)."""
    body = json.dumps(
        {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
        }
    )
    headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with session.post(replica.url + "/slack/events", data=body.encode(), headers=headers) as resp:
        return resp.status


def deliver_all(jobs: list[tuple[Replica, dict[str, Any], str, int]]) -> list[int]:
    async def main() -> list[int]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(_deliver(session, *job) for job in jobs)))

    return asyncio.run(main())


def wait_until(what: str, ok: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sql(pg_url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return list(conn.execute(statement, params).fetchall())


def hr_tokens_today(pg_url: str, state: str = "") -> list[int]:
    """Tokens of each of today's hr reservations (``state``: "reserved" or "settled"; "" = both)."""
    day = datetime.now(UTC).date().isoformat()
    rows = sql(
        pg_url,
        "select tokens, state from reservations where day = %s and department = 'hr'",
        (day,),
    )
    return [int(t) for t, s in rows if not state or s == state]


def budget_refusals(pg_url: str) -> int:
    return int(
        sql(pg_url, "select count(*) from attempts where outcome = 'budget' and department = 'hr'")[0][0]
    )


@pytest.fixture
def world(tmp_path: Path, pg_url: str) -> Iterator[tuple[SlackThread, HeldLLM, Path]]:
    make_company(tmp_path)
    slack = SlackThread()
    llm = HeldLLM("openai")
    try:
        yield slack, llm, tmp_path
    finally:
        for _phrase, gate, _first in llm.holds:
            gate.set()
        llm.close()
        slack.close()


def step_a_one_reply_for_five_deliveries(slack: SlackThread, a: Replica, b: Replica) -> None:
    thread = "1700000100.000100"
    event = _mention(QUESTIONS["a"], thread)
    deliveries = [(a, 0), (b, 0), (b, 1), (a, 2), (b, 3)]  # to both, then redelivered 3 times
    assert deliver_all([(r, event, "EvA", retry) for r, retry in deliveries]) == [200] * 5
    wait_until("the reply to a", lambda: bool(slack.replies(thread)), 20)
    time.sleep(0.5)  # time for a second (wrong) reply to arrive
    assert len(slack.replies(thread)) == 1, "step a: not exactly one reply"


def step_c_budget_holds_under_a_burst(
    slack: SlackThread, llm: HeldLLM, pg_url: str, a: Replica, b: Replica, budget: int
) -> tuple[int, int]:
    """50 questions at once, alternating replicas; returns (answered, refused)."""
    before = sum(hr_tokens_today(pg_url))  # step a's answer counts against the same day
    gate = llm.hold(QUESTIONS["c"])
    threads = [f"17000002{n:02d}.000100" for n in range(BURST)]
    burst = [
        (a if n % 2 else b, _mention(QUESTIONS["c"], t), f"EvC{n:02d}", 0) for n, t in enumerate(threads)
    ]
    assert deliver_all(burst) == [200] * BURST
    wait_until(
        "every question to reserve its tokens or be refused",
        lambda: llm.asked(QUESTIONS["c"]) + budget_refusals(pg_url) >= BURST,
        30,
    )
    answered, refused = llm.asked(QUESTIONS["c"]), budget_refusals(pg_url)
    held = hr_tokens_today(pg_url, "reserved")
    assert len(held) == answered and len(set(held)) == 1, f"step c: reservations {held}"
    assert before + sum(held) <= budget, "step c: reserved beyond the budget"
    assert answered == (budget - before) // held[0], "step c: not every question that fits was answered"
    assert refused == BURST - answered
    gate.set()
    wait_until("a reply to each of the 50", lambda: all(slack.replies(t) for t in threads), 30)
    time.sleep(0.5)
    assert [len(slack.replies(t)) for t in threads] == [1] * BURST, "step c: not one reply per question"
    told = sum("budget" in json.dumps(slack.replies(t)).lower() for t in threads)
    assert told == refused, "step c: the refused were not told about the budget"
    assert sum(hr_tokens_today(pg_url)) <= budget, "step c: the day's usage is over the budget"
    return answered, refused


def step_b_redelivery_after_a_kill(
    slack: SlackThread, llm: HeldLLM, pg_url: str, a: Replica, b: Replica
) -> None:
    thread = "1700000300.000100"
    event = _mention(QUESTIONS["b"], thread)
    llm.hold(QUESTIONS["b"], first_only=True)  # a's request never returns
    assert deliver_all([(a, event, "EvB", 0)]) == [200]
    wait_until("replica a to ask the model", lambda: llm.asked(QUESTIONS["b"]) >= 1, 20)
    a.kill()
    (claimed_at,) = sql(pg_url, "select seen from seen_events where key = 'slack:EvB'")[0]
    assert deliver_all([(b, event, "EvB", 1)]) == [200]  # within the lease: the dead replica holds it
    time.sleep(0.5)
    assert time.time() < claimed_at + LEASE, "step b: too slow to redeliver within the lease"
    assert slack.replies(thread) == [], "step b: answered while the dead replica's lease held"
    time.sleep(max(0.0, claimed_at + LEASE + 0.2 - time.time()))
    assert deliver_all([(b, event, "EvB", 2)]) == [200]  # lapsed undone: b takes the event over
    with contextlib.suppress(AssertionError):  # no reply at all is reported below
        wait_until("b to answer the redelivery", lambda: bool(slack.replies(thread)), 15)
    assert deliver_all([(b, event, "EvB", 3)]) == [200]  # done now: dropped
    time.sleep(0.5)
    assert len(slack.replies(thread)) == 1, "step b: the question killed mid-answer did not get one reply"


def test_two_serve_replicas_share_one_postgres(world: tuple[SlackThread, HeldLLM, Path], pg_url: str) -> None:
    slack, llm, root = world
    started = time.monotonic()
    budget = 12_000
    (root / "settings.toml").write_text(_settings(budget))
    env = _env(pg_url, slack.stub, llm)
    a, b = Replica("a", root, env), Replica("b", root, env)
    try:
        for r in (a, b):
            r.wait_ready(time.monotonic() + 60)
        ready = time.monotonic() - started
        step_a_one_reply_for_five_deliveries(slack, a, b)
        answered, refused = step_c_budget_holds_under_a_burst(slack, llm, pg_url, a, b, budget)
        # step d is checked below; first let the alert check fire a few slots in both replicas
        wait_until(
            "both replicas to fire the alert check 3 times",
            lambda: min(len(r.lines("ops:alerts fired")) for r in (a, b)) >= 3,
            20,
        )
        step_b_redelivery_after_a_kill(slack, llm, pg_url, a, b)
    finally:
        a.stop()
        b.stop()

    # d. the alert check fired in both replicas, and its body ran once per slot
    fired = {r.name: len(r.lines("ops:alerts fired")) for r in (a, b)}
    ran = sum(len(r.lines("ops:alerts ran hr")) for r in (a, b))
    slots = sql(pg_url, "select count(*) from job_runs where job = 'ops:alerts'")[0][0]
    assert min(fired.values()) >= 3, f"step d: the job did not fire in both replicas ({fired})"
    assert ran == slots and 0 < ran < sum(fired.values()), f"step d: {ran} runs, {slots} slots, {fired}"

    # e. the shared audit chain verifies
    done = subprocess.run(
        [sys.executable, "-m", "bot", *_global_args(root, root / "machine-b"), "audit", "verify"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert slack.stub.violations == []
    print(
        f"replicas ready in {ready:.1f} s, steps done in {time.monotonic() - started:.1f} s; "
        f"burst: {answered} answered, {refused} refused; alert check fired {fired}, ran {ran}; "
        f"audit: {done.stdout.strip()}"
    )
