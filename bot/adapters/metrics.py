"""``/metrics``: the server's counters in the Prometheus text format (prometheus-client).

One ``Metrics`` per server, with its own ``CollectorRegistry`` (never the process-global
default), so two servers in one process — tests — count separately. It is an observer of
the assistant (``bot.observability``): the core tells it about every answer, vote and
refresh, and nothing in the adapters counts anything.

Labels come only from closed sets — configured department names (anything else reads
``other``), the ``Status`` values, the platform and route names, configured model names —
never user ids, e-mails, channel ids, question text or document titles: a label value
lives in the time-series database forever and every new one is a new series.

Index sizes and ages are read at scrape time from each department's ``CURRENT`` pointer
and ``meta.json`` (one ``stat`` per department per scrape; the two small files are read
again only when the pointer changes) — never a walk of the knowledge folders.

Who may read it (``[metrics]`` settings, README "Metrics and logs"): nobody when
``metrics.enabled`` is false (404); with ``metrics.token`` set, a request with
``Authorization: Bearer <token>`` (else 401); without a token, only a server bound to a
loopback address serves it, any other bind answers 404 and ``deptbot check`` says how to
turn it on. Fail closed: a server that does not know its bind address counts as public.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.adapters.runtime import Runtime
from bot.core.types import Answer, Message, Status
from bot.errors import ConfigError
from bot.settings_schema import MetricsSettings

log = logging.getLogger(__name__)

PLATFORMS = frozenset({"cli", "slack", "teams", "http", "console", "admin"})
ROUTES = frozenset({"local", "cloud", "private", "none"})
STATUSES = frozenset(s.value for s in Status)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
REFRESH_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
MIN_TOKEN = 16
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,79}$")


class Metrics:
    """The counters of one server and the observer hooks that move them."""

    def __init__(self, *, departments: Callable[[], Iterable[str]], state_dir: Path) -> None:
        self._departments = departments
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "deptbot_requests",
            "Questions answered, by department, status, platform and generation route.",
            ["department", "status", "platform", "route"],
            registry=r,
        )
        self.latency = Histogram(
            "deptbot_request_duration_seconds",
            "Time to answer (stage total), to retrieve, and to generate.",
            ["department", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "deptbot_tokens",
            "Model tokens, by department, route, model and direction (input/output).",
            ["department", "route", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "deptbot_cost_dollars",
            "Model cost in US dollars ([llm.prices]), by department, route and model.",
            ["department", "route", "model"],
            registry=r,
        )
        self.cache_hits = Counter(
            "deptbot_cache_hits", "Answers served from the answer cache.", ["department"], registry=r
        )
        self.refresh_seconds = Histogram(
            "deptbot_refresh_duration_seconds",
            "Knowledge refreshes (failed ones too), by department.",
            ["department"],
            buckets=REFRESH_BUCKETS,
            registry=r,
        )
        self.refresh_failures = Counter(
            "deptbot_refresh_failures", "Knowledge refreshes that failed.", ["department"], registry=r
        )
        self.feedback_votes = Counter("deptbot_feedback", "Feedback votes.", ["value"], registry=r)
        r.register(IndexCollector(departments, state_dir))

    # ── label values from closed sets ────────────────────────────────────────────────

    def _department(self, name: str | None) -> str:
        if not name:
            return "none"
        return name if name in set(self._departments()) else "other"

    @staticmethod
    def _model(name: str) -> str:
        return name if _MODEL_RE.match(name) else ("none" if not name else "other")

    # ── the observer (bot.observability.Observer) ────────────────────────────────────

    def answered(self, message: Message, answer: Answer | None) -> None:
        platform = message.platform if message.platform in PLATFORMS else "other"
        if answer is None:  # ``ask`` raised (an empty or too long question, an unknown name)
            self.requests.labels("none", Status.ERROR.value, platform, "none").inc()
            return
        dept = self._department(answer.department)
        route = answer.route if answer.route in ROUTES else ("none" if not answer.route else "other")
        status = answer.status.value if answer.status.value in STATUSES else "other"
        self.requests.labels(dept, status, platform, route).inc()
        t = answer.timings
        self.latency.labels(dept, "total").observe(t.total_ms / 1000)
        if t.retrieve_ms:
            self.latency.labels(dept, "retrieve").observe(t.retrieve_ms / 1000)
        if t.generate_ms:
            self.latency.labels(dept, "generate").observe(t.generate_ms / 1000)
        if answer.cache_hit:
            self.cache_hits.labels(dept).inc()
            return  # the tokens were counted when the answer was first generated
        model = self._model(answer.model)
        u = answer.usage
        if u.input_tokens:
            self.tokens.labels(dept, route, model, "input").inc(u.input_tokens)
        if u.output_tokens:
            self.tokens.labels(dept, route, model, "output").inc(u.output_tokens)
        if u.cost > 0:
            self.cost.labels(dept, route, model).inc(u.cost)

    def feedback(self, value: str) -> None:
        self.feedback_votes.labels(value if value in ("up", "down") else "other").inc()

    def refreshed(self, department: str, seconds: float, ok: bool) -> None:
        dept = self._department(department)
        self.refresh_seconds.labels(dept).observe(seconds)
        if not ok:
            self.refresh_failures.labels(dept).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class IndexCollector(Collector):
    """Index sizes and ages per configured department, read at scrape (module text)."""

    def __init__(
        self,
        departments: Callable[[], Iterable[str]],
        state_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._departments = departments
        self._state_dir = Path(state_dir)
        self._clock = clock
        self._seen: dict[str, tuple[tuple[int, int, int], tuple[int, int, float]]] = {}

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        labels = ["department"]
        chunks = GaugeMetricFamily("deptbot_index_chunks", "Chunks in the serving index.", labels=labels)
        docs = GaugeMetricFamily("deptbot_index_documents", "Documents in the serving index.", labels=labels)
        age = GaugeMetricFamily(
            "deptbot_index_age_seconds", "Seconds since the serving index was built.", labels=labels
        )
        now = self._clock()
        for name in sorted(set(self._departments())):
            meta = self._meta(name)
            if meta is None:
                continue  # no index yet: /readyz says so
            n_docs, n_chunks, built = meta
            docs.add_metric([name], n_docs)
            chunks.add_metric([name], n_chunks)
            age.add_metric([name], max(0.0, now - built))
        yield chunks
        yield docs
        yield age

    def _meta(self, name: str) -> tuple[int, int, float] | None:
        from bot.knowledge.versions import current_version, dept_dir, read_meta

        root = dept_dir(self._state_dir, name)
        try:
            st = os.stat(root / "CURRENT")
        except OSError:
            self._seen.pop(name, None)
            return None
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        seen = self._seen.get(name)
        if seen is not None and seen[0] == key:
            return seen[1]
        try:
            version = current_version(root)
            if version is None:
                return None
            meta = read_meta(root / "versions" / version)
            found = (
                int(meta["documents"]),
                int(meta["chunks"]),
                datetime.fromisoformat(meta["built_at"]).timestamp(),
            )
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("index metadata of a department could not be read", exc_info=True)
            return None
        self._seen[name] = (key, found)
        return found


# ── the endpoint ─────────────────────────────────────────────────────────────────────

METRICS = web.AppKey("deptbot.metrics", Metrics)


def is_loopback(host: str | None) -> bool:
    """Whether a bind address reaches only this machine ("localhost", 127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure(settings: MetricsSettings, host: str | None) -> str:
    """ "off", "token" or "loopback": how ``/metrics`` is served (module text)."""
    if not settings.enabled:
        return "off"
    if settings.token:
        return "token"
    return "loopback" if is_loopback(host) else "off"


def how_to_enable(settings: MetricsSettings) -> str:
    """The ``deptbot check`` line about ``/metrics``."""
    if not settings.enabled:
        return "metrics: off (metrics.enabled = false)"
    if settings.token:
        return "metrics: /metrics needs 'Authorization: Bearer <metrics.token>'"
    return (
        "metrics: /metrics is served only when deptbot serve binds to 127.0.0.1; to scrape it "
        "from elsewhere set DEPTBOT_METRICS__TOKEN (16+ characters) and send it as a Bearer token"
    )


def mount_metrics(
    app: web.Application,
    *,
    metrics: Metrics,
    settings: MetricsSettings,
    host: str | None,
    runtime: Runtime,
) -> str:
    """Register ``/metrics`` on ``app`` as ``[metrics]`` allows; the exposure chosen.
    Raises ConfigError for a token shorter than ``MIN_TOKEN`` (never echoing it)."""
    if settings.token and len(settings.token) < MIN_TOKEN:
        raise ConfigError(f"must be at least {MIN_TOKEN} characters", field="metrics.token")
    mode = exposure(settings, host)
    app[METRICS] = metrics
    if mode == "off":
        if settings.enabled:
            log.info("/metrics not served: no metrics.token and the server is not bound to loopback")
        return mode
    expected = f"Bearer {settings.token}".encode() if mode == "token" else None

    async def handle(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Bearer"})
        body = await runtime.quick(metrics.render)  # the index collector stats files
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", handle)
    return mode
