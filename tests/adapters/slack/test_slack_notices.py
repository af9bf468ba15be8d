"""Admins hear about what deptbot narrowed (skipped files, refused reloads) in ``/kb status``;
nobody else does, because notices name files and fields."""

from __future__ import annotations

import json

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.llm.extractive import ExtractiveGenerator
from bot.store.notices import MemoryNotices
from tests.adapters.slack.conftest import SlackHarness
from tests.adapters.slack.test_slack_server import run
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder

NOTICE = "hr: 1 file not indexed: secret-link.md (symbolic link, not followed)"


@pytest.fixture
def notices() -> MemoryNotices:
    box = MemoryNotices()
    box.notify("hr", "files-skipped", NOTICE)
    box.notify("finance", "files-skipped", "finance: 1 file not indexed: payroll/x.md (invalid front matter)")
    return box


@pytest.fixture
def assistant(company: Company, notices: MemoryNotices) -> Assistant:
    return Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=MemoryAudit(),
        notices=notices,
    )


def test_kb_status_shows_notices_to_the_departments_admins_only(harness: SlackHarness) -> None:
    async def scenario(h: SlackHarness) -> None:
        await h.command("/kb", "status", user="UHANK", name="hank")  # hr-admins
        await h.command("/kb", "status", user="UALICE", name="alice")  # asks HR, no admin
        replies = {a["_name"]: json.dumps(a) for a in await h.stub.wait_for("response_url", 2)}
        assert "Admin notices" in replies["hank"] and "secret-link.md" in replies["hank"]
        assert "payroll/x.md" not in replies["hank"]  # another department's notice
        assert "Admin notices" not in replies["alice"] and "secret-link.md" not in replies["alice"]

    run(harness, scenario)
