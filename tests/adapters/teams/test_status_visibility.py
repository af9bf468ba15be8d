"""``kb status`` in Teams shows only departments the person may ask or administers, and
names failed files (which may sit in restricted folders) to that department's admins only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Company, Department
from bot.core.pipeline import Assistant
from bot.core.ports import FailedFile, IndexStatus
from bot.store.notices import MemoryNotices
from tests.adapters.teams.conftest import Harness
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, RecordingGenerator

FAILED = "knowledge/finance/payroll/bonus-pool-draft.pdf"
NOTICE = "finance: 1 file not indexed: payroll/plan.md (duplicate key 'audience')"


class FailingIndexer(FakeIndexer):
    def status(self, department: Department) -> IndexStatus:
        failed = (FailedFile(FAILED, "not a valid PDF"),) if department.name == "finance" else ()
        return IndexStatus(department.name, "v1", documents=3, chunks=9, stale=False, failed=failed)


@pytest.fixture
def assistant(
    company: Company, retriever: FakeRetriever, audit: MemoryAudit, generator: RecordingGenerator
) -> Assistant:
    notices = MemoryNotices()
    notices.notify("finance", "files-skipped", NOTICE)
    return Assistant(
        company=company,
        retriever=retriever,
        indexer=FailingIndexer(),
        generator=generator,
        audit=audit,
        notices=notices,
    )


def test_status_lists_only_what_the_person_may_ask(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        text = (await h.ask(h.activity("kb status")))[-1].body["text"]  # alice: hr + finance
        assert "Human Resources" in text and "Finance" in text
        assert "Engineering" not in text  # alice cannot ask engineering
        assert "bonus-pool-draft" not in text  # not a Finance admin
        assert "Admin notices" not in text and "plan.md" not in text
        one = (await h.ask(h.activity("kb status eng")))[-1].body["text"]
        assert "Engineering" not in one and "documents" not in one
        stranger = (await h.ask(h.activity("kb status", user="mallory")))[-1].body["text"]
        assert "documents" not in stranger

    teams(scenario)


def test_admins_see_failed_file_names(teams: Callable[..., None]) -> None:
    async def scenario(h: Harness) -> None:
        text = (await h.ask(h.activity("kb status finance", user="carol")))[-1].body["text"]
        assert "bonus-pool-draft.pdf" in text
        assert "Admin notices" in text and "payroll/plan.md" in text

    teams(scenario)


def test_admin_details_never_go_to_a_shared_conversation(teams: Callable[..., None]) -> None:
    """In a channel everyone reads the reply (Teams has no ephemeral messages), so an admin's
    ``kb status`` there names no failed files and no notices; in their 1:1 chat it does."""

    async def scenario(h: Harness) -> None:
        text = (await h.ask(h.activity("kb status finance", user="carol", kind="channel")))[-1].body["text"]
        assert "Finance" in text
        assert "bonus-pool-draft" not in text and "plan.md" not in text and "Admin notices" not in text

    teams(scenario)
