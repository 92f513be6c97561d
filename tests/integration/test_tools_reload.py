"""The reloader keeps the tool registry's 5 s promise even when its LISTEN connection drops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable

import asyncpg

from detector.approvals import pg as approvals_pg
from detector.matcher import MatchSnapshot
from detector.reload import Reloader
from detector.tools.policy import NewApproval
from tests.waiting import eventually


async def test_a_dropped_listener_reconnects_and_catches_the_change(pool: asyncpg.Pool, migrated_database_url: str) -> None:
    reloaded = asyncio.Event()

    async def fingerprint() -> Hashable:
        async with pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM tool_approvals"))

    async def load() -> tuple[Hashable, MatchSnapshot]:
        count = await fingerprint()
        return count, MatchSnapshot(versions=())

    reloader = Reloader(
        url=migrated_database_url,
        fingerprint=fingerprint,
        load=load,
        install=lambda snapshot, seconds: reloaded.set(),
        interval_s=600,  # the periodic check must not be what saves us here
    )
    await reloader.load_now()
    reloaded.clear()
    task = asyncio.create_task(reloader.run())
    try:
        async with pool.acquire() as conn:
            # Wait until the reloader is listening, then cut its connection from the server side.
            async def listener_pid() -> int | None:
                pid: int | None = await conn.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
                return pid

            async def listening() -> bool:
                return await listener_pid() is not None

            await eventually(listening, 10, what="the reloader listening")
            pid = await listener_pid()
            assert pid is not None
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
            await approvals_pg.create_approval(
                conn, NewApproval.checked(tool="pdq", authority="A", jurisdiction="GB", instrument="i"), actor="t"
            )
        await asyncio.wait_for(reloaded.wait(), 5)
        assert reloader.current == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
