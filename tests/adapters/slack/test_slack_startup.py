"""Starting Slack is quiet and wires one configured Web API client (issue 14)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

from bot.adapters.http import SLACK, build_app
from bot.core.pipeline import Assistant
from bot.settings import Settings


@pytest.mark.parametrize("socket_mode", [False, True])
def test_starting_slack_logs_no_token_warning(
    socket_mode: bool,
    assistant: Assistant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bolt reads SLACK_BOT_TOKEN itself and warns "As you gave `client` as well, `token`
    will be unused." when it also gets a client; deptbot gives it only the token."""
    env = {
        "SLACK_BOT_TOKEN": "xoxb-start",
        "SLACK_SIGNING_SECRET": "s",
        "SLACK_APP_TOKEN": "xapp-start",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # as in production: the process environment has them
    caplog.set_level(logging.DEBUG)
    app = build_app(
        assistant=assistant, settings=Settings(tmp_path, tmp_path, env=env), socket_mode=socket_mode
    )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in warnings if "token" in r.getMessage()], [r.getMessage() for r in warnings]
    client = app[SLACK].client
    assert client is app[SLACK].app.client  # the one client bolt copies per request
    assert client.token == "xoxb-start" and client.base_url == "http://127.0.0.1:9/api/"
    assert client.timeout == 15
    assert any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in client.retry_handlers)
