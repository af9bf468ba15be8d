"""The third-party SCIM compliance checker, scim2-tester, against the running server.

It discovers the server (ServiceProviderConfig, ResourceTypes, Schemas), then creates,
reads, lists, filters, replaces, patches (add/replace/remove on every mutable attribute)
and deletes Users and Groups with random values, and probes a random URL for a SCIM 404.
Checks of features the server does not announce are skipped by the checker itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from bot.core.pipeline import Assistant
from tests.directory.test_scim_server import TOKEN, ScimServer

NOT_CLEAN = {Status.ERROR, Status.CRITICAL, Status.DEVIATION}


def run_checker(server: ScimServer) -> list[CheckResult]:
    async def main() -> list[CheckResult]:
        async with server:
            with httpx2.Client(
                base_url=f"{server.url}/scim/v2", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as http:
                client = SyncSCIMClient(http)
                return await asyncio.to_thread(check_server, client)

    return asyncio.run(main())


def test_scim2_tester_finds_no_failure(assistant: Assistant, tmp_path: Path) -> None:
    results = run_checker(ScimServer(assistant, tmp_path / "state"))
    problems = [
        f"{r.status.name} {r.resource_type or '-'} {r.title}: {r.reason}"
        for r in results
        if r.status in NOT_CLEAN
    ]
    assert problems == []
    assert Counter(r.status for r in results)[Status.SUCCESS] >= 100  # it really exercised the server
    ran = {(r.resource_type, r.title) for r in results if r.status == Status.SUCCESS}
    for kind in ("User", "Group"):
        for check in (
            "object_creation",
            "object_query",
            "object_query_without_id",
            "object_replacement",
            "object_deletion",
            "check_add_attribute",
            "check_remove_attribute",
            "check_replace_attribute",
        ):
            assert (kind, check) in ran, (kind, check)
    assert (None, "random_url") in ran and (None, "service_provider_config_endpoint") in ran
