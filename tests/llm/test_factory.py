"""Providers come only from the settings' environment snapshot; check never shows keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.llm.factory import build_cache, build_providers, provider_status
from bot.llm.router import Router
from bot.store.cache import MemoryAnswerCache, SqliteAnswerCache
from tests.llm.conftest import make_settings


def test_no_keys_means_offline_extractive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-os-environ")  # ignored: only Settings.env counts
    settings = make_settings(tmp_path, {})
    assert build_providers(settings) == []
    status = provider_status(settings)
    assert [(n, ok) for n, ok, _ in status] == [
        ("anthropic", False),
        ("openai", False),
        ("private", False),
        ("extractive", True),
    ]
    assert "offline default" in status[-1][2]


def test_status_shows_hosts_and_models_never_keys(tmp_path: Path) -> None:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-SECRET",
        "OPENAI_API_KEY": "sk-SECRET",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "DEPTBOT_PRIVATE_LLM_URL": "http://gpu-box.internal:8000/v1",
    }
    settings = make_settings(tmp_path, env)
    status = provider_status(settings)
    text = repr(status)
    assert "SECRET" not in text
    assert status[2][:2] == ("private", True) and "gpu-box.internal:8000" in status[2][2]
    assert "api.anthropic.com" in status[0][2] and "claude-haiku-4-5" in status[0][2]
    names = [(p.name, p.trust) for p in build_providers(settings)]
    assert names == [("anthropic", "cloud"), ("openai", "cloud"), ("private", "private")]


def test_cache_backend_from_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {})
    assert isinstance(build_cache(settings), SqliteAnswerCache)
    (tmp_path / "s2.toml").write_text('[cache]\nbackend = "memory"\nttl_seconds = 5\n')
    from bot.settings import Settings

    s2 = Settings.load(state=tmp_path / "st", settings_file=tmp_path / "s2.toml", env={})
    assert isinstance(build_cache(s2), MemoryAnswerCache)
    (tmp_path / "s3.toml").write_text("[cache]\nenabled = false\n")
    assert (
        build_cache(Settings.load(state=tmp_path / "st", settings_file=tmp_path / "s3.toml", env={})) is None
    )


def test_router_name(tmp_path: Path) -> None:
    from bot.llm.factory import build_generator

    assert isinstance(build_generator(make_settings(tmp_path, {}), usage_store=None), Router)
    assert build_generator(make_settings(tmp_path, {}), usage_store=None).name == "router"
