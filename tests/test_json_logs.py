"""Structured logs (``logging.format = "json"``, ``deptbot serve --log-format json``): one
JSON object per line, the request id on every line logged while a request is answered,
and never the question text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.app import HANDLER_NAME, _use_log_format, main
from bot.cli.parser import build_parser
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Message, Status
from bot.logs import JsonFormatter, install, uninstall
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder

CANARY = "CANARYQ-json-5e77"


class _ChattyGenerator:
    """Logs while generating (as a provider does), then fails with the question in the error
    message on the second call, the way a careless provider bug would echo it."""

    name = "chatty"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, request, *, on_delta=None):  # type: ignore[no-untyped-def]
        from bot.llm.extractive import ExtractiveGenerator

        self.calls += 1
        logging.getLogger("bot.llm.test").info("generating from %d sources", len(request.sources))
        logging.getLogger("bot.llm.test").info("multi\nline\u2028message")
        if self.calls > 1:
            raise RuntimeError(f"provider echoed {request.question}")
        return ExtractiveGenerator().generate(request)


@pytest.fixture
def lines(company: Company) -> Iterator[tuple[Assistant, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    bot_logger = logging.getLogger("bot")
    old_level = bot_logger.level
    bot_logger.addHandler(handler)
    bot_logger.setLevel(logging.DEBUG)
    install()
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=_ChattyGenerator(),
        audit=MemoryAudit(),
    )
    try:
        yield assistant, stream
    finally:
        bot_logger.removeHandler(handler)
        bot_logger.setLevel(old_level)
        uninstall()


def test_every_line_is_json_with_the_request_id_and_no_question_text(
    lines: tuple[Assistant, io.StringIO],
) -> None:
    assistant, stream = lines
    logging.getLogger("bot.test").warning("before any request")
    question = f"How many vacation days do I get? {CANARY}"
    ok = assistant.ask(Message(user_id="alice@example.com", email="alice@example.com", text=question))
    failed = assistant.ask(Message(user_id="alice@example.com", email="alice@example.com", text=question))
    assert ok.status is Status.ANSWERED and failed.status is Status.ERROR
    text = stream.getvalue()
    assert CANARY not in text and "vacation" not in text
    events = [json.loads(line) for line in text.splitlines()]  # raises on a line that is not JSON
    assert len(events) >= 6 and all({"time", "level", "logger", "message"} <= e.keys() for e in events)
    assert "request_id" not in events[0]  # outside a request there is none
    during = events[1:]
    assert {e.get("request_id") for e in during} == {ok.request_id, failed.request_id}
    crash = [e for e in during if "exception" in e]
    assert crash and crash[0]["request_id"] == failed.request_id
    assert "RuntimeError: (message withheld)" in crash[0]["exception"]
    assert any(e["message"] == "multi\nline\u2028message" for e in events)  # escaped, one line each


def test_serve_flag_and_setting_choose_the_formatter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["serve", "--log-format", "json"])
    assert args.log_format == "json"
    assert build_parser().parse_args(["serve"]).log_format is None  # the setting decides
    handler = logging.StreamHandler(io.StringIO())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        _use_log_format("json")
        assert isinstance(handler.formatter, JsonFormatter)
        _use_log_format("text")
        assert not isinstance(handler.formatter, JsonFormatter)
        monkeypatch.setenv("DEPTBOT_LOGGING__FORMAT", "json")
        from tests.fakes import make_company

        make_company(tmp_path)
        main(["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state"), "check"])
        capsys.readouterr()
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)
