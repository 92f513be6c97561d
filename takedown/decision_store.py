"""Storage of decisions: a person's decision, a hotline report, an appeal, a close, and what each writes.

Every decision runs in one transaction that also appends its audit entry and, for a decision that
calls for a platform action, its outbox row and statement of reasons: either all of it is on
record or none of it is. Whether a decision is allowed, and what it sets in motion, is
``takedown.rules``'; this module locks the ticket, asks the rule and stores the answer.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from kernel.auditlog import append_audit
from kernel.db import Queries
from takedown import outbox_store, rules, statement_store, webhooks
from takedown.config import TakedownConfig
from takedown.console import store as console_store
from takedown.reports import evidence_store
from takedown.reports.case import Review
from takedown.ticket_store import audit_subject, db_now, get_ticket, locked_ticket
from takedown.tickets import Actor, DecisionInput, Ticket
from takedown.workflow import RESTRICTIONS, State, due_at

Q = Queries("takedown")

DecisionHook = Callable[[asyncpg.Connection, Ticket, Ticket, Actor], Awaitable[None]]
"""How another context reacts to a decision (e.g. wrong-match feedback for a list's issuer).

The composition root passes them in (``on_decision``) rather than registering them in a module-level
list, so the flow is visible where the service is built. Each runs inside the decision's transaction:
both commit or roll back together."""


async def decide(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    decision: DecisionInput,
    config: TakedownConfig,
    *,
    override: bool,
    on_decision: Sequence[DecisionHook] = (),
    review: Review | None = None,
) -> Ticket:
    """A person's decision on a claimed ticket (or, with ``override``, a lead's on any ticket awaiting one).

    ``review``: what the hotline report is to say of the review (what a person viewed, escalation,
    viral/meme marks, priorities), recorded on the decision row."""
    async with conn.transaction():
        ticket = await locked_ticket(conn, ticket_id, actor.tenants)
        rules.check_decision(ticket, decision.to, actor, await db_now(conn), override=override)
        after = await apply_decision(
            conn, ticket, decision, actor, config, automated_decision=False, override=override, on_decision=on_decision
        )
        # A preview a person was shown in the console is a viewed file whatever the caller sent: the
        # hotline report's fileViewedByEsp must never say no one looked when someone did.
        if (review is None or not review.file_viewed) and await console_store.was_revealed(conn, ticket_id):
            review = dataclasses.replace(review or Review(), file_viewed=True)
        if review is not None:
            await evidence_store.record_review(conn, ticket_id, review)
        return after


async def report(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    hotline: str,
    reference: str | None,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
    *,
    override: bool = False,
) -> Ticket:
    """Record that the restricted content was reported to a hotline or authority (e.g. NCMEC).

    By the reviewer holding the ticket's lease (the one who actioned it holds it next), or a lead."""
    async with conn.transaction():
        ticket = await locked_ticket(conn, ticket_id, actor.tenants)
        rules.check_report(ticket, actor, await db_now(conn), override=override)
        return await apply_decision(
            conn,
            ticket,
            DecisionInput(to=State.REPORTED, explanation=f"reported to {hotline}"),
            actor,
            config,
            automated_decision=False,
            override=override,
            reported=(hotline, reference),
            on_decision=on_decision,
        )


async def close(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    explanation: str | None,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
    *,
    override: bool = False,
) -> Ticket:
    """Close a decided ticket, by the reviewer holding its lease (or a lead), once no appeal can come."""
    async with conn.transaction():
        ticket = await locked_ticket(conn, ticket_id, actor.tenants)
        rules.check_close(ticket, actor, await db_now(conn), config.appeal_window_days, override=override)
        return await apply_decision(
            conn,
            ticket,
            DecisionInput(to=State.CLOSED, explanation=explanation),
            actor,
            config,
            automated_decision=False,
            override=override,
            on_decision=on_decision,
        )


async def appeal(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    explanation: str | None,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
) -> Ticket:
    """The uploader's internal complaint (DSA Art 20), filed through the platform within the window."""
    async with conn.transaction():
        ticket = await locked_ticket(conn, ticket_id, actor.tenants)
        now = await db_now(conn)
        rules.check_appeal(ticket, now, config.appeal_window_days)
        return await apply_decision(
            conn,
            ticket,
            DecisionInput(to=State.APPEALED, explanation=explanation),
            actor,
            config,
            automated_decision=False,
            new_due=due_at(now, config.due_hours[ticket.source]),
            on_decision=on_decision,
        )


async def apply_decision(
    conn: asyncpg.Connection,
    ticket: Ticket,
    decision: DecisionInput,
    actor: Actor,
    config: TakedownConfig,
    *,
    automated_decision: bool,
    override: bool = False,
    new_due: datetime | None = None,
    reported: tuple[str, str | None] | None = None,
    on_decision: Sequence[DecisionHook] = (),
) -> Ticket:
    """Move a locked ticket and write everything that goes with the move, in the caller's transaction."""
    effects = rules.effects(ticket, decision, config.retention_days)
    to, platform_action = effects.to, effects.platform_action
    await conn.execute(
        Q.apply_decision,
        ticket.id,
        to.value,
        effects.in_force.value if effects.in_force else None,
        effects.primary,
        actor.key_id,
        new_due,
        effects.preserve_days,
        actor.key_id if rules.lease_after(to, actor) else None,
        actor.name,
        config.lease_s,
    )
    decided_at: datetime = await conn.fetchval(
        Q.insert_decision,
        ticket.id,
        ticket.state.value,
        to.value,
        platform_action.value if platform_action else None,
        decision.ground or ("illegal_content" if to is State.ACTIONED else None),
        decision.legal_ground,
        decision.explanation,
        reported[0] if reported else None,
        reported[1] if reported else None,
        ticket.automated_detection,
        automated_decision,
        actor.key_id,
        actor.name,
    )
    if platform_action is not None:
        await outbox_store.enqueue(
            conn,
            webhooks.ActionRequest(
                idempotency_key=uuid.uuid4(),
                ticket_id=ticket.id,
                content_id=ticket.content_id,
                content_url=ticket.content_url,
                action=platform_action,
                decided_at=decided_at,
                automated_decision=automated_decision,
                statement_url=f"/v1/tickets/{ticket.id}/statement" if platform_action in RESTRICTIONS else None,
            ),
        )
    after = await get_ticket(conn, ticket.id)
    if to is State.ACTIONED:
        await statement_store.issue_statement(conn, after, decision, actor, decided_at, automated_decision, config)
    for hook in on_decision:
        await hook(conn, ticket, after, actor)
    await append_audit(
        conn,
        actor=actor.name,
        action=f"ticket.{to.value}",
        subject=audit_subject(ticket.id),
        before=ticket.audit_view(),
        after={
            **after.audit_view(),
            "automated_decision": automated_decision,
            "override": override,
            **({"reported_to": reported[0]} if reported else {}),
        },
    )
    return after
