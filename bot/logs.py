"""What may reach a log: never question text, answer text, document text or personal data.

deptbot's own log lines name ids, counts, detector names and exception *types*. Two
things outside those lines used to carry text, at any level an operator can turn on:

* **Libraries that log request and response bodies.** At DEBUG, the anthropic SDK logs
  every request's options (system prompt with the documents, the question, the thread);
  slack_sdk — through slack_bolt's framework logger — logs every Web API request and
  response (answers, thread history from ``conversations.replies``) and every
  ``response_url`` body; LlamaIndex's node parser logs the start of every chunk; httpcore
  logs response headers (cookies). slack_bolt copies the *root* level into its loggers
  when the app is built, so pinning a parent logger is not enough on its own.
* **Exception messages in tracebacks.** ``log.exception`` prints ``str(exc)``, and an
  exception may quote its input (a pydantic ``input_value=``, a ``KeyError`` of a key
  taken from a message, a provider bug echoing the prompt).

:func:`install` (called by the CLI's logging set-up, which every command and ``deptbot
serve`` go through) therefore pins the :data:`LIBRARY_LOGGERS` to WARNING, and wraps the
log-record factory — the one hook every record passes through, whatever logger, level or
handler (ours, a host's, pytest's) — so that a library record below WARNING that is
created anyway (a library that set its own level, ``ANTHROPIC_LOG=debug``) has its
message and arguments replaced, and a record's exception is rendered as types and stack
frames without messages. A withheld record still says which logger tried, so an operator
sees that something was dropped.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from bot.observability import REQUEST_ID

LIBRARY_LOGGERS: tuple[str, ...] = (
    "anthropic",
    "openai",
    "slack_bolt",
    "slack_sdk",
    "botbuilder",
    "botframework",
    "msrest",
    "msal",
    "azure",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "urllib3",
    "requests_oauthlib",
    "llama_index",
)
"""Libraries whose DEBUG/INFO output can hold message bodies, headers or document text."""

WITHHELD = "(%s below WARNING withheld: this library may log message text)"
MESSAGE_WITHHELD = "(message withheld)"

_lock = threading.Lock()
_previous: Callable[..., logging.LogRecord] | None = None


def is_library(name: str) -> bool:
    return any(name == p or name.startswith((p + ".", p + ":")) for p in LIBRARY_LOGGERS)


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def exception_text(exc_info: ExcInfo) -> str:
    """A traceback with every exception's type and frames, and none of their messages."""
    chain: list[BaseException] = []
    exc: BaseException | None = exc_info[1]
    while exc is not None and all(exc is not e for e in chain):
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    parts: list[str] = []
    for i, e in enumerate(reversed(chain)):
        if i:
            parts.append("\nwhich led to:\n\n")
        if e.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_list(traceback.extract_tb(e.__traceback__)))
        kind = type(e)
        name = (
            kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        )
        parts.append(f"{name}: {MESSAGE_WITHHELD}\n")
    return "".join(parts).rstrip("\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``logging.format = "json"``, ``deptbot serve --log-format
    json``): ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id``
    while a request is being answered, and ``exception`` as types and frames only.

    The stdlib is enough (python-json-logger would add a dependency for the same dozen
    lines); ASCII-only output keeps a line one line for every collector (U+2028 too). What
    the message may contain is the rule above: ids, counts and types, never text.
    """

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "") or REQUEST_ID.get()
        if request_id:
            event["request_id"] = request_id
        if record.exc_info and record.exc_info[1] is not None:
            event["exception"] = record.exc_text or exception_text(record.exc_info)
        return json.dumps(event, ensure_ascii=True)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _previous is not None
    record = _previous(*args, **kwargs)
    record.request_id = REQUEST_ID.get()  # where it was logged: a queued handler formats later
    if record.levelno < logging.WARNING and is_library(record.name):
        record.msg, record.args = WITHHELD, (record.name,)
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = exception_text(record.exc_info)  # formatters use this, not str(exc)
    return record


def install() -> None:
    """Pin the library loggers and wrap the record factory (idempotent)."""
    global _previous
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    with _lock:
        if _previous is None:
            _previous = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_factory)


def uninstall() -> None:
    """Undo :func:`install`'s record factory (tests); logger levels are left as they are."""
    global _previous
    with _lock:
        if _previous is not None and logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_previous)
            _previous = None
