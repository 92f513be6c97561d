"""Reads the case records the transparency report (DSA Art 15 and 24) is computed from."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import Queries
from takedown import transparency

Q = Queries("takedown")
F = Queries("takedown", "figures_queries.sql")

ListsInForce = Callable[[asyncpg.Connection], Awaitable[Sequence[Mapping[str, Any]]]]
"""The list versions in force now (name, tool, version, entries, status), from the lists' context:
the composition root passes it in (takedown reads no list tables)."""


async def transparency_report(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    tenants: Collection[int] | None = None,
    *,
    context: transparency.Context | None = None,
    lists_in_force: ListsInForce | None = None,
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
        rows = transparency.FigureRows(
            notices=[dict(r) for r in await conn.fetch(F.figures_notices, start, end, scope)],
            time_to_action=[dict(r) for r in await conn.fetch(F.figures_time_to_action, start, end, scope)],
            overdue={r["source"]: int(r["n"]) for r in await conn.fetch(F.figures_overdue, scope)},
            precision=[dict(r) for r in await conn.fetch(F.figures_precision, start, end, scope)],
            reports=await report_rows(conn, start, end, scope),
            lists_matched=[dict(r) for r in await conn.fetch(F.figures_lists_matched, start, end, scope)],
            appeals={r["state"]: int(r["n"]) for r in await conn.fetch(F.figures_appeals, start, end, scope)},
        )
        in_force = None if lists_in_force is None else await lists_in_force(conn)
    body = transparency.report(
        start=start, end=end, notices=notices, decisions=decisions, median_to_action_s=medians, appeals=appeals
    )
    ctx = dataclasses.replace(context or transparency.Context(), lists_in_force=in_force)
    return {**body, **transparency.figures(rows=rows, decisions=decisions, context=ctx)}


async def report_rows(
    conn: asyncpg.Connection, start: datetime, end: datetime, scope: Sequence[int] | None
) -> list[dict[str, Any]]:
    """Reports filed per hotline in [start, end) and the median seconds from match to report: the
    one place the report figures are read (today from each ticket's 'reported' decision)."""
    return [dict(r) for r in await conn.fetch(F.figures_reports, start, end, scope)]
