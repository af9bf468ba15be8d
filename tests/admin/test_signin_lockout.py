"""Anonymous bad-link requests must not lock a genuine admin out (reviewer R2, finding 7).

Behind the recommended reverse proxy every browser arrives from the proxy's address (and,
with several replicas, shares one failure table in PostgreSQL). Failures now count per
presented link (its token's hash) and, far more generously, per address; a valid link
still opens the console however many bad ones came from the same address."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.admin.web import ADDRESS_FACTOR
from tests.admin.conftest import HANK, running, small_world
from tests.pg_fixtures import DbBackend


def test_a_flood_of_bad_links_from_the_proxy_address_leaves_a_genuine_link_working(
    tmp_path: Path, db_backend: DbBackend
) -> None:
    """On SQLite and on PostgreSQL (where every replica shares the failure counts)."""
    assistant, settings = small_world(tmp_path, **db_backend.env)  # max_failed_signins = 10 (default)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            good = c.link(HANK)  # mailed to hank before the flood starts
            for i in range(10 * ADDRESS_FACTOR + 5):  # anonymous, all from 127.0.0.1 (the "proxy")
                assert (await c.get(f"/admin/signin?token=junk{i}")).status in (403, 429)
            assert (await c.get("/admin/signin?token=junk-more")).status == 429  # the flood waits
            async with running(assistant, settings) as hank:  # hank's own browser, same address
                assert (await hank.get(good)).status == 200
                done = await hank.open_link(good)
                assert done.status == 303 and done.headers["Location"] == "/admin/"
                assert (await hank.get("/admin/d/hr/refresh")).status == 200

    asyncio.run(scenario())


def test_ten_bad_tries_from_one_address_no_longer_lock_the_console(tmp_path: Path) -> None:
    """The reviewer's repro: the old per-address count locked every link after 10 bad GETs."""
    assistant, settings = small_world(tmp_path)

    async def scenario() -> None:
        async with running(assistant, settings) as c:
            good = c.link(HANK)
            for _ in range(10):
                assert (await c.get("/admin/signin?token=x")).status == 403
            assert (await c.get(good)).status == 200
            assert (await c.get("/admin/signin?token=y")).status == 403  # another bad link: 403, not 429

    asyncio.run(scenario())
