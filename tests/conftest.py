"""Shared fixtures: a tiny company on disk and an Assistant wired with fakes.

Sockets beyond loopback are blocked for every test by pytest-socket (see pyproject).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.llm.extractive import ExtractiveGenerator
from tests.fakes import (
    FakeIndexer,
    FakeRetriever,
    MemoryAudit,
    RecordingGenerator,
    chunks_from_folder,
    make_company,
)

# A real PostgreSQL (pgserver) for any test: pg_server, pg_url, pg_db and db_backend.
pytest_plugins = ["tests.pg_fixtures"]


@pytest.fixture
def company(tmp_path: Path) -> Company:
    return make_company(tmp_path)


@pytest.fixture
def retriever(company: Company) -> FakeRetriever:
    return FakeRetriever([c for d in company for c in chunks_from_folder(d)])


@pytest.fixture
def audit() -> MemoryAudit:
    return MemoryAudit()


@pytest.fixture
def generator() -> RecordingGenerator:
    return RecordingGenerator(ExtractiveGenerator())


@pytest.fixture
def assistant(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit, generator: RecordingGenerator
) -> Assistant:
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=generator,
        audit=audit,
    )


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``deptbot`` in-process on a fresh copy of the test company, with a clean environment
    and its own state folder: ``run(*argv)`` → (exit code, stdout, stderr); ``run.root``."""
    import os

    from bot.cli import main

    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    _run.root = tmp_path  # type: ignore[attr-defined]
    return _run
