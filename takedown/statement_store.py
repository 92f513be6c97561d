"""Storage of statements of reasons (DSA Art 17): issued with each restriction, served to the platform.

The statement's text is ``takedown.reasons``'; this module gathers what it is built from and keeps it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import Queries
from takedown import dsa_db, dsa_store, reasons
from takedown.config import TakedownConfig
from takedown.errors import StatementNotFound
from takedown.ticket_store import get_ticket, ticket_content_type, ticket_evidence, ticket_sources
from takedown.tickets import Actor, Decision, DecisionInput, Scope, Ticket
from takedown.workflow import State

Q = Queries("takedown")


async def issue_statement(
    conn: asyncpg.Connection,
    ticket: Ticket,
    decision: DecisionInput,
    actor: Actor,
    decided_at: datetime,
    automated_decision: bool,
    config: TakedownConfig,
) -> None:
    """Write the statement of reasons for a restriction just decided, in the decision's transaction."""
    record = Decision(
        from_state=State.IN_REVIEW,
        to_state=State.ACTIONED,
        action=decision.action,
        ground=decision.ground,
        legal_ground=decision.legal_ground,
        explanation=decision.explanation,
        automated_detection=ticket.automated_detection,
        automated_decision=automated_decision,
        actor=actor.name,
        decided_at=decided_at,
    )
    body = reasons.statement(
        reasons.StatementContext(
            ticket=ticket,
            decision=record,
            evidence=await ticket_evidence(conn, ticket.id),
            sources=await ticket_sources(conn, ticket.id),
            content_type=await ticket_content_type(conn, ticket.id),
            appeal_until=reasons.appeal_deadline(decided_at, config.appeal_window_days),
        )
    )
    statement_id = await conn.fetchval(Q.insert_statement, ticket.id, json.dumps(body))
    # Every statement is also bound for the DSA Transparency Database (Art 24(5)), queued in the
    # same transaction; it is sent when HASHGUARD_DSA_DB_URL is set (takedown.dsa_jobs).
    await dsa_store.enqueue(conn, statement_id, ticket.id, dsa_db.to_wire(body, territorial_scope=config.dsa_territorial_scope))


async def latest_statement(conn: asyncpg.Connection, ticket_id: uuid.UUID, scope: Scope = None) -> dict[str, Any]:
    """The ticket's statement of reasons, if the ticket is in ``scope`` (another tenant's: not found)."""
    await get_ticket(conn, ticket_id, scope)
    body = await conn.fetchval(Q.latest_statement, ticket_id)
    if body is None:
        raise StatementNotFound()
    result: dict[str, Any] = json.loads(body)
    return result
