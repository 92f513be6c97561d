"""What every ``hashguard`` subcommand shares, whichever context defines it: a database connection
for one command, and who to record as the actor of a change made from the shell."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from kernel.db import open_pool
from kernel.settings import Settings

T = TypeVar("T")


def run_with_connection(work: Callable[[asyncpg.Connection], Awaitable[T]], settings: Settings | None = None) -> T:
    """Open the configured database (migrating it if needed), run ``work`` on one connection, close."""
    settings = Settings.from_env() if settings is None else settings

    async def main() -> T:
        pool = await open_pool(settings.database_url, settings.data_dir, max_size=2)
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        finally:
            await pool.close()

    return asyncio.run(main())


def invoking_user(explicit: str | None = None) -> str:
    """``explicit`` (an ``--actor`` flag) or ``cli:<operating-system user>``: command-line changes are
    attributed to whoever ran them, marked as coming from the shell rather than an API key."""
    if explicit:
        return explicit
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (e.g. a container's arbitrary uid)
        return "cli:unknown"
