"""The console's storage: the queue as reviewers see it, previews and every exposure to them,
leads' overrides of the exposure limit, escalations, and a claim of one chosen ticket.

Everything that changes a ticket's workflow goes through the takedown stores and rules
(``queue_store``, ``decision_store``, ``takedown.rules``): the console adds what to show, not how
a ticket may move. Every change here is audited in its own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from kernel.audit import StoredEntry
from kernel.auditlog import append_audit, audit_page
from kernel.db import Queries
from takedown import queue_store, rules
from takedown.config import TakedownConfig
from takedown.console.exposure import Allowance, ExposureRefused, check_reveal
from takedown.errors import InvalidTransition, NotLeaseHolder, SameReviewer
from takedown.ticket_store import audit_subject, audit_ticket_change, db_now, get_ticket, locked_ticket
from takedown.tickets import Actor, Scope, Ticket
from takedown.workflow import NEEDS_REVIEW, Source, State

Q = Queries("takedown.console", "console.sql")
TQ = Queries("takedown")


def _scope(scope: Scope) -> list[int] | None:
    return None if scope is None else sorted(scope)


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueFilter:
    states: Sequence[State] | None = None
    sources: Sequence[Source] | None = None
    hashset: str | None = None
    tenant_id: int | None = None
    overdue: bool = False
    held_by: int | None = None
    escalated: bool = False
    limit: int = 200
    scope: Scope = None


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueRow:
    id: uuid.UUID
    tenant: str
    content_id: str
    source: Source
    state: State
    priority: int
    received_at: datetime
    due_at: datetime
    lease_key_id: int | None
    lease_key_prefix: str | None
    lease_expires_at: datetime | None
    sightings: int
    notices: int
    automated_detection: bool
    decided_key_id: int | None
    hashsets: tuple[str, ...]
    exact: bool
    escalated: bool
    now: datetime

    @property
    def held(self) -> bool:
        return self.lease_expires_at is not None and self.lease_expires_at > self.now

    @property
    def overdue(self) -> bool:
        return self.state in NEEDS_REVIEW and self.due_at < self.now


async def queue(conn: asyncpg.Connection, f: QueueFilter) -> list[QueueRow]:
    rows = await conn.fetch(
        Q.queue,
        [s.value for s in f.states] if f.states else None,
        [s.value for s in f.sources] if f.sources else None,
        f.hashset,
        _scope(f.scope),
        f.tenant_id,
        f.overdue,
        f.held_by,
        f.limit,
        f.escalated,
    )
    out = []
    for r in rows:
        data = dict(r)
        del data["tenant_id"]
        data["source"], data["state"], data["hashsets"] = Source(r["source"]), State(r["state"]), tuple(r["hashsets"])
        out.append(QueueRow(**data))
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    by_state: dict[str, int]
    overdue: int
    held: int

    @property
    def awaiting(self) -> int:
        return sum(self.by_state.get(s.value, 0) for s in NEEDS_REVIEW)


async def queue_counts(conn: asyncpg.Connection, scope: Scope) -> Counts:
    rows = await conn.fetch(Q.queue_counts, _scope(scope))
    return Counts(
        by_state={r["state"]: int(r["n"]) for r in rows},
        overdue=sum(int(r["overdue"]) for r in rows),
        held=sum(int(r["held"]) for r in rows),
    )


async def queue_hashsets(conn: asyncpg.Connection, scope: Scope) -> list[str]:
    return [r["hashset"] for r in await conn.fetch(Q.queue_hashsets, _scope(scope))]


async def entry_sightings(conn: asyncpg.Connection, ticket_id: uuid.UUID, scope: Scope) -> list[dict[str, Any]]:
    """How often, in how many tickets and tenants, each list entry behind this ticket has matched."""
    return [dict(r) for r in await conn.fetch(Q.entry_sightings, ticket_id, _scope(scope))]


async def ticket_history(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[StoredEntry]:
    """The ticket's audit trail, oldest first (call only for a ticket the caller may see)."""
    entries: list[StoredEntry] = []
    after = 0
    while True:
        page = await audit_page(conn, after_seq=after, subject=audit_subject(ticket_id), limit=500)
        entries.extend(page)
        if len(page) < 500:
            return entries
        after = page[-1].seq


# ---------------------------------------------------------------- claiming one ticket


async def claim_ticket(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, config: TakedownConfig) -> Ticket:
    """Lease this ticket to ``actor``, as ``POST /v1/queue/claim`` leases the next one: only a ticket that
    needs a person, not held by someone else, and not an appeal of the actor's own decision."""
    async with conn.transaction():
        before = await locked_ticket(conn, ticket_id, actor.tenants)
        now = await db_now(conn)
        if before.state not in NEEDS_REVIEW:
            raise InvalidTransition(before.state.value, State.IN_REVIEW.value, "the ticket awaits no decision")
        held = before.lease_expires_at is not None and before.lease_expires_at > now
        if held and not rules.holds_lease(before, actor, now):
            raise NotLeaseHolder(f"the ticket is held by {before.lease_key_prefix} until {before.lease_expires_at:%H:%M:%S} UTC")
        if before.state is State.APPEALED and before.decided_key_id == actor.key_id:
            raise SameReviewer("this appeal must be decided by another reviewer than the one who made the decision")
        state = rules.claimed_state(before.state)
        await conn.execute(TQ.set_lease, ticket_id, state.value, actor.key_id, actor.name, config.lease_s)
        after = await get_ticket(conn, ticket_id)
        await audit_ticket_change(conn, actor.name, "ticket.claimed", before, after)
        return after


# ---------------------------------------------------------------- escalations


async def escalate(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, reason: str, *, override: bool) -> Ticket:
    """Hand a ticket to the leads: recorded with the reason, flagged in the queue, and given back
    (the reviewer's lease released) so a lead can take or assign it."""
    async with conn.transaction():
        before = await locked_ticket(conn, ticket_id, actor.tenants)
        if before.state not in NEEDS_REVIEW:
            raise InvalidTransition(
                before.state.value, before.state.value, "only a ticket that awaits a decision can be escalated"
            )
        at = await conn.fetchval(Q.insert_escalation, ticket_id, reason, actor.name)
        now = await db_now(conn)
        if rules.holds_lease(before, actor, now) or (override and before.lease_key_id is not None):
            after = await queue_store.release(conn, ticket_id, actor, override=override)
        else:
            after = before
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.escalated",
            subject=audit_subject(ticket_id),
            before=before.audit_view(),
            after={**after.audit_view(), "reason": reason, "at": at},
        )
        return after


async def escalations(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(Q.ticket_escalations, ticket_id)]


# ---------------------------------------------------------------- previews and exposure


@dataclass(frozen=True, kw_only=True, slots=True)
class Preview:
    id: int
    url: str
    supplied_at: datetime
    shown: int  # the highest step the person asking has been shown (0: none)


async def add_preview(conn: asyncpg.Connection, ticket_id: uuid.UUID, url: str, actor: Actor) -> tuple[int, datetime]:
    """A platform offers a preview of its ticket's content (a URL on its own service)."""
    async with conn.transaction():
        await locked_ticket(conn, ticket_id, actor.tenants)
        row = await conn.fetchrow(Q.insert_preview, ticket_id, url, actor.key_id)
        # The URL itself is evidence (it is purged with it): the audit log records only that one came.
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.preview_supplied",
            subject=audit_subject(ticket_id),
            after={"preview": row["id"]},
        )
        return int(row["id"]), row["supplied_at"]


async def previews(conn: asyncpg.Connection, ticket_id: uuid.UUID, key_id: int) -> list[Preview]:
    return [Preview(**dict(r)) for r in await conn.fetch(Q.ticket_previews, ticket_id, key_id)]


async def allowance(conn: asyncpg.Connection, key_id: int, limit: int) -> Allowance:
    used = int(await conn.fetchval(Q.reveals_today, key_id))
    granted = int(await conn.fetchval(Q.granted_today, key_id))
    return Allowance(limit=limit, granted=granted, used=used)


async def reveal(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    preview_id: int,
    actor: Actor,
    step: int,
    *,
    limit: int,
    previews_off: bool,
) -> tuple[str, Allowance]:
    """Show ``actor`` step ``step`` of a preview: checked against the rules and the day's limit,
    recorded (who, when, which item, which step) and audited. Returns the URL and what is left."""
    assert actor.key_id is not None
    async with conn.transaction():
        await get_ticket(conn, ticket_id, actor.tenants)
        found = await conn.fetchrow(Q.preview, preview_id, ticket_id)
        if found is None:
            raise ExposureRefused("this ticket has no such preview")
        await conn.execute(Q.lock_person_exposure, actor.key_id)
        before = await allowance(conn, actor.key_id, limit)
        shown = int(await conn.fetchval(Q.shown_step, preview_id, actor.key_id))
        if step <= shown:  # already seen at this step: showing it again is no new exposure
            return found["url"], before
        check_reveal(step=step, shown_before=shown, allowance=before, previews_off=previews_off)
        at = await conn.fetchval(Q.insert_reveal, ticket_id, preview_id, actor.key_id, step)
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.preview_revealed",
            subject=audit_subject(ticket_id),
            after={"preview": preview_id, "step": step, "at": at},
        )
        return found["url"], await allowance(conn, actor.key_id, limit)


async def was_revealed(conn: asyncpg.Connection, ticket_id: uuid.UUID, preview_id: int | None = None) -> bool:
    """Whether any person was shown any step of this ticket's preview (``preview_id``: that item only).

    What a hotline report's "file viewed by the reporting provider" (NCMEC ``fileViewedByEsp``) is read from.
    """
    return bool(await conn.fetchval(Q.was_revealed, ticket_id, preview_id))


async def ticket_reveals(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(Q.ticket_reveals, ticket_id)]


async def grant_exposure(conn: asyncpg.Connection, key_id: int, person: str, extra: int, reason: str, actor: Actor) -> date:
    """A lead lets one person reveal ``extra`` more previews today (recorded and audited)."""
    async with conn.transaction():
        day: date = await conn.fetchval(Q.insert_override, key_id, extra, reason, actor.name)
        await append_audit(
            conn,
            actor=actor.name,
            action="exposure.limit_raised",
            subject=f"user:{person}",
            after={"extra": extra, "day": day, "reason": reason},
        )
        return day


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffKey:
    id: int
    prefix: str
    role: str
    label: str
    tenants: frozenset[int] | None

    def sees(self, tenant_id: int) -> bool:
        return self.tenants is None or tenant_id in self.tenants


async def staff_keys(conn: asyncpg.Connection) -> list[StaffKey]:
    return [
        StaffKey(id=r["id"], prefix=r["key_prefix"], role=r["role"], label=r["label"], tenants=frozenset(r["tenants"]) or None)
        for r in await conn.fetch(Q.staff_keys)
    ]
