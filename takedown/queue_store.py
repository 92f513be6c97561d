"""Storage of the review queue: claims, releases, assignments and leases, and the queue's gauges.

Who holds a lease, who may release or be assigned a ticket, and the states that go with a claim
are ``takedown.rules``'; this module locks the ticket, asks the rule, stores the lease and audits it.
"""

from __future__ import annotations

import uuid

import asyncpg

from kernel import keystore
from kernel.db import Queries
from takedown import rules
from takedown.config import TakedownConfig
from takedown.errors import UnknownKey
from takedown.ticket_store import audit_ticket_change, db_now, get_ticket, locked_ticket
from takedown.tickets import SYSTEM, Actor, Ticket

Q = Queries("takedown")


async def claim_next(conn: asyncpg.Connection, actor: Actor, config: TakedownConfig) -> Ticket | None:
    """Lease the most urgent ticket that needs a person to ``actor``, or None if the queue is empty."""
    async with conn.transaction():
        ticket_id = await conn.fetchval(Q.claim_next, actor.key_id, None if actor.tenants is None else sorted(actor.tenants))
        if ticket_id is None:
            return None
        before = await get_ticket(conn, ticket_id)
        state = rules.claimed_state(before.state)
        await conn.execute(Q.set_lease, ticket_id, state.value, actor.key_id, actor.name, config.lease_s)
        after = await get_ticket(conn, ticket_id)
        await audit_ticket_change(conn, actor.name, "ticket.claimed", before, after)
        return after


async def release(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, *, override: bool) -> Ticket:
    """Give a claimed ticket back to the queue (its holder, or a lead for anyone's)."""
    async with conn.transaction():
        before = await locked_ticket(conn, ticket_id, actor.tenants)
        now = await db_now(conn)
        state = rules.release(before, actor, now, override=override)
        await conn.execute(Q.set_lease, ticket_id, state.value, None, None, 0.0)
        after = await get_ticket(conn, ticket_id)
        await audit_ticket_change(conn, actor.name, "ticket.released", before, after)
        return after


async def expire_leases(conn: asyncpg.Connection, batch: int = 500) -> int:
    """Put tickets whose lease ran out back in the queue (in_review -> open), so listings tell the truth.

    Claims already treat an expired lease as free; this sweep makes it visible and audited.
    """
    async with conn.transaction():
        ids = [r["id"] for r in await conn.fetch(Q.expired_leases, batch)]
        for ticket_id in ids:
            before = await get_ticket(conn, ticket_id)
            state = rules.released_state(before.state)
            await conn.execute(Q.set_lease, ticket_id, state.value, None, None, 0.0)
            after = await get_ticket(conn, ticket_id)
            await audit_ticket_change(conn, SYSTEM.name, "ticket.lease_expired", before, after)
    return len(ids)


async def assign(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, key_prefix: str, config: TakedownConfig) -> Ticket:
    """A lead hands a ticket that awaits a decision to a named reviewer (lease and all).

    The key is looked up through the kernel's key store (``api_keys`` is the kernel's table).
    """
    async with conn.transaction():
        before = await locked_ticket(conn, ticket_id, actor.tenants)
        target = await keystore.find_active_key_by_prefix(conn, key_prefix)
        # A key limited to other tenants cannot see this ticket, so it cannot be handed it either.
        if target is None or not rules.may_be_assigned(target.role) or not target.sees(before.tenant_id):
            raise UnknownKey(f"no active reviewer or lead key has the prefix {key_prefix!r}")
        state = rules.assign(before, target.key_id)
        await conn.execute(Q.set_lease, ticket_id, state.value, target.key_id, target.prefix, config.lease_s)
        after = await get_ticket(conn, ticket_id)
        await audit_ticket_change(conn, actor.name, "ticket.assigned", before, after)
        return after


async def queue_gauges(conn: asyncpg.Connection) -> tuple[dict[str, int], int]:
    """Tickets per state, and how many are overdue."""
    rows = await conn.fetch(Q.queue_gauges)
    return {r["state"]: int(r["n"]) for r in rows}, sum(int(r["overdue"]) for r in rows)
