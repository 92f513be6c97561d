"""Reads the case records the transparency report (DSA Art 15 and 24) is computed from."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import Queries
from takedown import transparency

Q = Queries("takedown")


async def transparency_report(
    conn: asyncpg.Connection, start: datetime, end: datetime, tenants: Collection[int] | None = None
) -> dict[str, Any]:
    """The transparency figures for decisions and notices in [start, end), in one consistent snapshot:
    of the ``tenants`` given, or of every tenant (None)."""
    scope = None if tenants is None else sorted(tenants)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        notices = {r["key"]: int(r["n"]) for r in await conn.fetch(Q.transparency_notices, start, end, scope)}
        decisions = [transparency.DecisionRow(**dict(r)) for r in await conn.fetch(Q.transparency_decisions, start, end, scope)]
        medians = {r["key"]: float(r["median_s"]) for r in await conn.fetch(Q.transparency_time_to_action, start, end, scope)}
        appeals = [
            transparency.AppealRow(outcome=r["outcome"], n=int(r["n"]), median_s=r["median_s"])
            for r in await conn.fetch(Q.transparency_appeal_times, start, end, scope)
        ]
    return transparency.report(
        start=start, end=end, notices=notices, decisions=decisions, median_to_action_s=medians, appeals=appeals
    )
