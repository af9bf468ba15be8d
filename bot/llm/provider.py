"""What the router needs from a chat model, and the pieces every provider shares.

A ``ChatProvider`` sends one ``Prompt`` to one model and returns a ``Completion`` with the
provider's own token counts, or raises a ``ProviderError`` whose ``user_message`` is our
own sentence (never the SDK's text). ``ProviderUnavailable`` means "try elsewhere /
later" (timeout, connection, 429 or 5xx after the SDK's retries, open circuit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.core.ports import DeltaFn
from bot.errors import ProviderError, ProviderUnavailable
from bot.llm.prompts import Prompt


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    usage_reported: bool = True  # False: the server sent no usage; counts are estimates


class ChatProvider(Protocol):
    name: str  # "anthropic" | "openai" | "private"
    trust: str  # "cloud" | "private"

    def complete(
        self, prompt: Prompt, *, model: str, max_tokens: int, timeout: float, on_delta: DeltaFn | None = None
    ) -> Completion: ...


class Failure(ProviderError):
    """A provider error that also names its kind for usage rows ("timeout", "auth", …)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Unavailable(ProviderUnavailable):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def failure_kind(exc: BaseException) -> str:
    return getattr(exc, "kind", type(exc).__name__)


def map_sdk_error(exc: Exception, provider: str) -> ProviderError:
    """Translate an anthropic/openai SDK exception (same class names) into our tree."""
    who = {"anthropic": "Anthropic", "openai": "OpenAI", "private": "The private model"}.get(
        provider, provider
    )
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if name == "APITimeoutError":
        return Unavailable("timeout", f"{who} did not answer in time.")
    if name == "APIConnectionError":
        return Unavailable("connection", f"{who} could not be reached.")
    if name == "RateLimitError" or status == 429:
        return Unavailable("rate-limited", f"{who} is rate-limiting requests right now.")
    if name in ("AuthenticationError", "PermissionDeniedError") or status in (401, 403):
        return Failure("auth", f"{who} rejected deptbot's API key; an administrator needs to check it.")
    if name == "NotFoundError" or status == 404:
        return Failure("unknown-model", f"{who} does not know the configured model; check the settings.")
    if isinstance(status, int) and status >= 500:
        return Unavailable("server-error", f"{who} had a server error.")
    if name == "BadRequestError" or status in (400, 413, 422):
        text = str(getattr(exc, "message", "")).lower()
        if "context" in text or "too long" in text or "maximum" in text or status == 413:
            return Failure("too-long", f"The question and its sources are too long for {who}'s model.")
        return Failure("bad-request", f"{who} refused the request.")
    if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):
        return Unavailable("connection", f"{who} dropped the connection.")
    if name == "APIResponseValidationError" or isinstance(exc, ValueError | KeyError | TypeError):
        return Failure("malformed", f"{who} sent a response deptbot could not read.")
    return Failure("error", f"{who} failed.")


class CircuitBreaker:
    """Per-provider breaker: open after ``failures`` in a row, one trial after ``cooldown``."""

    def __init__(
        self, *, failures: int = 3, cooldown: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self._failures = failures
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}
        self._opened: dict[str, float] = {}
        self._trial: dict[str, bool] = {}

    def allow(self, provider: str) -> bool:
        with self._lock:
            opened = self._opened.get(provider)
            if opened is None:
                return True
            if self._clock() - opened < self._cooldown or self._trial.get(provider):
                return False
            self._trial[provider] = True  # half-open: exactly one request tries
            return True

    def success(self, provider: str) -> None:
        with self._lock:
            self._count[provider] = 0
            self._opened.pop(provider, None)
            self._trial.pop(provider, None)

    def failure(self, provider: str) -> None:
        with self._lock:
            n = self._count.get(provider, 0) + 1
            self._count[provider] = n
            if n >= self._failures or self._trial.get(provider):
                self._opened[provider] = self._clock()
            self._trial.pop(provider, None)

    def state(self, provider: str) -> str:
        with self._lock:
            return "open" if provider in self._opened else "closed"
