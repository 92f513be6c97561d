"""Storage of the outbox: the platform actions decisions call for, claimed, sent and marked by ``takedown.jobs``.

A decision's outbox row is written in the decision's transaction (``enqueue``), so an action is
on record exactly when its decision is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.auditlog import append_audit
from kernel.db import Queries
from takedown import webhooks
from takedown.ticket_store import audit_subject, locked_ticket
from takedown.tickets import Actor
from takedown.workflow import Action

Q = Queries("takedown")


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """An outbox row claimed for sending."""

    id: int
    ticket_id: uuid.UUID
    idempotency_key: uuid.UUID
    action: Action
    body: str
    attempts: int
    # The ticket's tenant's own webhook, or None: the global one (HASHGUARD_WEBHOOK_URL; default tenant only).
    webhook: tuple[str, str] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxCounts:
    pending: int
    failed: int
    delivered: int
    oldest_pending: datetime | None


async def enqueue(conn: asyncpg.Connection, request: webhooks.ActionRequest) -> None:
    """Queue a platform action for delivery, in the caller's (the decision's) transaction."""
    await conn.execute(Q.insert_outbox, request.ticket_id, request.idempotency_key, request.action.value, webhooks.body(request))


async def claim_deliveries(
    conn: asyncpg.Connection, limit: int, lease_s: float, *, global_webhook: bool = True
) -> list[Delivery]:
    """Claim due rows that have somewhere to go: their tenant's webhook, or (``global_webhook``) the
    global one for the default tenant's. Rows of a tenant without a webhook wait, unclaimed."""
    async with conn.transaction():
        rows = await conn.fetch(Q.claim_deliveries, limit, lease_s, global_webhook)
    return [
        Delivery(
            id=r["id"],
            ticket_id=r["ticket_id"],
            idempotency_key=r["idempotency_key"],
            action=Action(r["action"]),
            body=r["body"],
            attempts=r["attempts"],
            webhook=None if r["webhook_url"] is None else (r["webhook_url"], r["webhook_secret"]),
        )
        for r in rows
    ]


async def mark_delivered(conn: asyncpg.Connection, delivery_id: int, status: int) -> None:
    await conn.execute(Q.mark_delivered, delivery_id, status)


async def mark_attempt_failed(
    conn: asyncpg.Connection, delivery_id: int, *, status: int | None, error: str, retry_in_s: float, give_up: bool
) -> None:
    await conn.execute(Q.mark_attempt_failed, delivery_id, status, error[:1000], retry_in_s, give_up)


async def retry_failed(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor) -> int:
    """Put a ticket's failed deliveries back in the queue (after the platform fixed its endpoint)."""
    async with conn.transaction():
        await locked_ticket(conn, ticket_id, actor.tenants)
        ids = [r["id"] for r in await conn.fetch(Q.retry_failed, ticket_id)]
        if ids:
            await append_audit(
                conn,
                actor=actor.name,
                action="ticket.deliveries_retried",
                subject=audit_subject(ticket_id),
                after={"outbox_ids": ids},
            )
    return len(ids)


async def set_tenant_webhook(conn: asyncpg.Connection, tenant_id: int, url: str, secret: str, actor: Actor, tenant: str) -> None:
    """Where a tenant's platform actions go, and the secret that signs them; audited (the secret never)."""
    async with conn.transaction():
        await conn.execute(Q.set_tenant_webhook, tenant_id, url, secret)
        await append_audit(conn, actor=actor.name, action="tenant.webhook_set", subject=f"tenant:{tenant}", after={"url": url})


async def clear_tenant_webhook(conn: asyncpg.Connection, tenant_id: int, actor: Actor, tenant: str) -> bool:
    async with conn.transaction():
        gone = await conn.fetchval(Q.clear_tenant_webhook, tenant_id) is not None
        if gone:
            await append_audit(conn, actor=actor.name, action="tenant.webhook_cleared", subject=f"tenant:{tenant}")
        return gone


async def tenant_webhooks(conn: asyncpg.Connection) -> list[tuple[str, str, datetime]]:
    """(tenant name, url, updated at) of every tenant's own webhook; never the secrets."""
    return [(r["name"], r["url"], r["updated_at"]) for r in await conn.fetch(Q.tenant_webhook_urls)]


async def outbox_counts(conn: asyncpg.Connection) -> OutboxCounts:
    rows = {r["state"]: r for r in await conn.fetch(Q.outbox_counts)}

    def n(state: str) -> int:
        return int(rows[state]["n"]) if state in rows else 0

    return OutboxCounts(
        pending=n("pending"),
        failed=n("failed"),
        delivered=n("delivered"),
        oldest_pending=rows["pending"]["oldest"] if "pending" in rows else None,
    )
