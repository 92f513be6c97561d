"""Retention: evidence is kept until its preservation deadline (unless on legal hold), then purged,
and match records no ticket holds are kept no longer than the evidence retention period.

Both touch the detector's copy of match evidence (``scan_matches``), which takedown does not read
or write: the composition root passes the detector's own functions in as ``ScanMatches``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from kernel.auditlog import append_audit
from kernel.db import Queries
from takedown.reports import evidence_store as report_store
from takedown.ticket_store import audit_subject
from takedown.tickets import SYSTEM

Q = Queries("takedown")


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanMatches:
    """The detector's match records of each scan (``detector.evidence``), which retention clears with takedown's evidence."""

    # The scans with a match record older than this many days.
    matched_before: Callable[[asyncpg.Connection, int], Awaitable[list[uuid.UUID]]]
    # Delete these scans' match records (only those older than the days given, if not None); return how many.
    forget: Callable[[asyncpg.Connection, Sequence[uuid.UUID], int | None], Awaitable[int]]


async def purge_unticketed_matches(conn: asyncpg.Connection, retention_days: int, scans: ScanMatches) -> int:
    """Delete match records older than ``retention_days`` that no ticket holds (e.g. shadow-list matches).

    Every retention has a limit: matches whose ticket never formed are kept no longer than evidence.
    """
    async with conn.transaction():
        old = await scans.matched_before(conn, retention_days)
        if not old:
            return 0
        held = {r["scan_id"] for r in await conn.fetch(Q.held_scan_ids, old)}
        return await scans.forget(conn, [s for s in old if s not in held], retention_days)


async def purge_expired_evidence(conn: asyncpg.Connection, scans: ScanMatches, batch: int = 100) -> int:
    """Purge evidence whose preservation deadline has passed, unless on legal hold; return tickets purged.

    What goes: match evidence (here and the detector's copy, through ``scans``), notice texts and
    notifier contact, content URLs, delivered webhook bodies. What stays: the ticket's workflow
    fields and decisions (the transparency figures) and the audit log, none of which hold evidence.
    """
    purged = 0
    while True:
        async with conn.transaction():
            ids = [r["id"] for r in await conn.fetch(Q.purge_candidates, batch)]
            for ticket_id in ids:
                scan_ids = [r["scan_id"] for r in await conn.fetch(Q.ticket_scan_ids, ticket_id)]
                if scan_ids:
                    await scans.forget(conn, scan_ids, None)
                await conn.execute(Q.purge_evidence, ticket_id)
                await report_store.purge_case_evidence(conn, ticket_id)
                await conn.execute(Q.purge_notices, ticket_id)
                await conn.execute(Q.purge_outbox, ticket_id)
                await conn.execute(Q.mark_purged, ticket_id)
                await append_audit(conn, actor=SYSTEM.name, action="ticket.evidence_purged", subject=audit_subject(ticket_id))
        purged += len(ids)
        if len(ids) < batch:
            return purged
