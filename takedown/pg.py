"""PostgreSQL storage of the takedown context: the only module here that touches asyncpg.

Every change runs in one transaction that also appends its audit entry, and, for a decision that
calls for a platform action, its outbox row and statement of reasons: either all of it is on
record or none of it is. Functions that change things open a transaction (a savepoint when the
caller already holds one, as the scan path does to keep match evidence and ticket together).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.auditlog import append_audit
from kernel.db import Queries
from takedown import reasons, transparency, webhooks
from takedown.config import TakedownConfig
from takedown.errors import (
    AppealWindowClosed,
    InvalidTransition,
    NotLeaseHolder,
    SameReviewer,
    StatementNotFound,
    TicketNotFound,
    UnknownKey,
)
from takedown.tickets import SYSTEM, Actor, Decision, DecisionInput, Evidence, Notice, Ticket
from takedown.workflow import (
    APPEALABLE,
    HUMAN_DECISIONS,
    NEEDS_REVIEW,
    PRIORITY,
    RESTRICTIONS,
    Action,
    Source,
    State,
    due_at,
    transition,
)

Q = Queries("takedown")

# Which restriction wins when several auto_action policies match one upload.
_SEVERITY = (Action.REMOVE, Action.BLOCK, Action.RESTRICT)


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketDetail:
    ticket: Ticket
    evidence: list[Evidence]
    notices: list[dict[str, Any]]
    decisions: list[Decision]
    deliveries: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchTicket:
    """The ticket a match opened or joined, and what happened to it in the same transaction."""

    ticket_id: uuid.UUID
    opened: bool
    auto_action: Action | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    hashset: str
    tool: str
    auto_action: bool
    action: Action


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """An outbox row claimed for sending."""

    id: int
    ticket_id: uuid.UUID
    idempotency_key: uuid.UUID
    action: Action
    body: str
    attempts: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxCounts:
    pending: int
    failed: int
    delivered: int
    oldest_pending: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketFilter:
    states: Sequence[State] | None = None
    sources: Sequence[Source] | None = None
    priority: int | None = None
    content_id: str | None = None
    overdue: bool | None = None
    limit: int = 50
    offset: int = 0


def _ticket(row: asyncpg.Record) -> Ticket:
    data = dict(row)
    data["source"] = Source(data["source"])
    data["state"] = State(data["state"])
    data["action"] = Action(data["action"]) if data["action"] else None
    return Ticket(**data)


def _subject(ticket_id: uuid.UUID) -> str:
    return f"ticket:{ticket_id}"


async def _now(conn: asyncpg.Connection) -> datetime:
    value: datetime = await conn.fetchval(Q.now)
    return value


# ---------------------------------------------------------------- tickets: reading


async def get_ticket(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> Ticket:
    row = await conn.fetchrow(Q.get_ticket, ticket_id)
    if row is None:
        raise TicketNotFound(f"no ticket has the id {ticket_id}")
    return _ticket(row)


async def _locked(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> Ticket:
    row = await conn.fetchrow(Q.get_ticket_for_update, ticket_id)
    if row is None:
        raise TicketNotFound(f"no ticket has the id {ticket_id}")
    return _ticket(row)


async def list_tickets(conn: asyncpg.Connection, f: TicketFilter) -> list[Ticket]:
    rows = await conn.fetch(
        Q.list_tickets,
        [s.value for s in f.states] if f.states else None,
        [s.value for s in f.sources] if f.sources else None,
        f.priority,
        f.content_id,
        f.overdue,
        f.limit,
        f.offset,
    )
    return [_ticket(r) for r in rows]


def _evidence(row: asyncpg.Record) -> Evidence:
    return Evidence(**dict(row))


def _decision(row: asyncpg.Record) -> Decision:
    data = dict(row)
    data["from_state"] = State(data["from_state"])
    data["to_state"] = State(data["to_state"])
    data["action"] = Action(data["action"]) if data["action"] else None
    return Decision(**data)


async def ticket_detail(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> TicketDetail:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ticket = await get_ticket(conn, ticket_id)
        evidence = [_evidence(r) for r in await conn.fetch(Q.ticket_evidence, ticket_id)]
        notices = [dict(r) for r in await conn.fetch(Q.ticket_notices, ticket_id)]
        decision_rows = await conn.fetch(Q.ticket_decisions, ticket_id)
        deliveries = [dict(r) for r in await conn.fetch(Q.ticket_deliveries, ticket_id)]
    decisions = [_decision(r) for r in decision_rows]
    return TicketDetail(ticket=ticket, evidence=evidence, notices=notices, decisions=decisions, deliveries=deliveries)


async def latest_statement(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> dict[str, Any]:
    await get_ticket(conn, ticket_id)
    body = await conn.fetchval(Q.latest_statement, ticket_id)
    if body is None:
        raise StatementNotFound()
    result: dict[str, Any] = json.loads(body)
    return result


# ---------------------------------------------------------------- tickets: opening and attaching


async def _live_ticket(
    conn: asyncpg.Connection,
    *,
    content_id: str,
    content_url: str | None,
    source: Source,
    priority: int,
    due: datetime,
    automated_detection: bool,
) -> tuple[uuid.UUID, bool]:
    """The live ticket for ``content_id``, opened if there is none; and whether it was opened now.

    The partial unique index makes concurrent uploads of one item agree on one ticket: the loser
    of the race waits for the winner's commit, inserts nothing, and attaches to the winner's ticket.
    """
    for _ in range(5):
        opened = await conn.fetchval(
            Q.insert_ticket, uuid.uuid4(), content_id, content_url, source.value, priority, due, automated_detection
        )
        if opened is not None:
            return opened, True
        existing = await conn.fetchval(Q.live_ticket_for_update, content_id)
        if existing is not None:
            return existing, False
    raise RuntimeError(f"could not open or find a live ticket for content {content_id!r}")  # pragma: no cover


async def record_match(
    conn: asyncpg.Connection,
    *,
    content_id: str,
    content_url: str | None,
    evidence: Sequence[Evidence],
    api_key_id: int | None,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
) -> MatchTicket:
    """Open (or attach to) the content's ticket for a scan or lookup match; return the ticket id.

    Runs in the caller's transaction, the one that records the scan's match evidence. A list with
    an ``auto_action`` policy gets its restriction decided here, automatically, in the same commit.
    """
    async with conn.transaction():
        now = await _now(conn)
        source = Source.HASH_MATCH
        due = due_at(now, config.due_hours[source])
        ticket_id, opened = await _live_ticket(
            conn,
            content_id=content_id,
            content_url=content_url,
            source=source,
            priority=PRIORITY[source],
            due=due,
            automated_detection=True,
        )
        before = None if opened else (await get_ticket(conn, ticket_id)).audit_view()
        await conn.execute(
            Q.insert_evidence,
            ticket_id,
            evidence[0].scan_id,
            api_key_id,
            [e.hashset for e in evidence],
            [e.hashset_version for e in evidence],
            [e.entry_id for e in evidence],
            [e.tool for e in evidence],
            [e.tool_version for e in evidence],
            [e.distance for e in evidence],
            [e.approval_id for e in evidence],
            [e.approval_reason for e in evidence],
        )
        await conn.execute(Q.attach_sighting, ticket_id, PRIORITY[source], due)
        ticket = await get_ticket(conn, ticket_id)
        matched = [
            {"hashset": e.hashset, "hashset_version": e.hashset_version, "entry_id": e.entry_id, "tool": e.tool} for e in evidence
        ]
        await append_audit(
            conn,
            actor=SYSTEM.name,
            action="ticket.opened" if opened else "ticket.match_attached",
            subject=_subject(ticket_id),
            before=before,
            after={**ticket.audit_view(), "source": source.value, "matches": matched},
        )
        action = await _auto_action(conn, evidence) if ticket.state is State.OPEN else None
        if action is not None:
            await _apply(
                conn,
                ticket,
                DecisionInput(
                    to=State.ACTIONED,
                    action=action,
                    ground="illegal_content",
                    explanation="Matched a vetted list of known material whose policy allows automated action.",
                ),
                SYSTEM,
                config,
                automated_decision=True,
                on_decision=on_decision,
            )
    return MatchTicket(ticket_id=ticket_id, opened=opened, auto_action=action)


async def _auto_action(conn: asyncpg.Connection, evidence: Sequence[Evidence]) -> Action | None:
    if any(e.quarantined for e in evidence):
        # An entry matching far more often than usual may be a false positive: a person decides.
        return None
    rows = await conn.fetch(Q.policies_for, sorted({e.hashset for e in evidence}), sorted({e.tool for e in evidence}))
    actions = {
        Action(r["action"]) for r in rows if any(e.hashset == r["hashset"] and r["tool"] in ("*", e.tool) for e in evidence)
    }
    return next((a for a in _SEVERITY if a in actions), None)


async def file_notice(conn: asyncpg.Connection, notice: Notice, actor: Actor, config: TakedownConfig) -> tuple[Ticket, int, bool]:
    """Record a notice and open or attach to the content's live ticket: (ticket, notice id, opened)."""
    async with conn.transaction():
        now = await _now(conn)
        priority = PRIORITY[notice.source]
        due = due_at(now, config.due_hours[notice.source], notice.legal_deadline)
        ticket_id, opened = await _live_ticket(
            conn,
            content_id=notice.content_id,
            content_url=notice.content_url,
            source=notice.source,
            priority=priority,
            due=due,
            automated_detection=False,
        )
        notice_id: int = await conn.fetchval(
            Q.insert_notice,
            ticket_id,
            notice.source.value,
            notice.content_url,
            notice.explanation,
            notice.content_type,
            notice.notifier_name,
            notice.notifier_email,
            notice.authority,
            notice.authority_reference,
            notice.legal_deadline,
            notice.bona_fide,
            actor.key_id,
        )
        before = None if opened else (await get_ticket(conn, ticket_id)).audit_view()
        await conn.execute(Q.attach_notice, ticket_id, priority, due)
        ticket = await get_ticket(conn, ticket_id)
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.opened" if opened else "ticket.notice_attached",
            subject=_subject(ticket_id),
            before=before,
            after={**ticket.audit_view(), "source": notice.source.value, "notice_id": notice_id},
        )
    return ticket, notice_id, opened


# ---------------------------------------------------------------- queue: claims and leases


async def claim_next(conn: asyncpg.Connection, actor: Actor, config: TakedownConfig) -> Ticket | None:
    """Lease the most urgent ticket that needs a person to ``actor``, or None if the queue is empty."""
    async with conn.transaction():
        ticket_id = await conn.fetchval(Q.claim_next, actor.key_id)
        if ticket_id is None:
            return None
        before = await get_ticket(conn, ticket_id)
        state = transition(before.state, State.IN_REVIEW) if before.state is State.OPEN else before.state
        await conn.execute(Q.set_lease, ticket_id, state.value, actor.key_id, actor.name, config.lease_s)
        after = await get_ticket(conn, ticket_id)
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.claimed",
            subject=_subject(ticket_id),
            before=before.audit_view(),
            after=after.audit_view(),
        )
        return after


async def release(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, *, override: bool) -> Ticket:
    """Give a claimed ticket back to the queue (its holder, or a lead for anyone's)."""
    async with conn.transaction():
        before = await _locked(conn, ticket_id)
        now = await _now(conn)
        if before.lease_key_id is None or before.state not in (State.IN_REVIEW, State.APPEALED):
            raise InvalidTransition(before.state.value, State.OPEN.value, "the ticket is not claimed")
        if not override and not (actor.key_id is not None and before.leased_to(actor.key_id, now)):
            raise NotLeaseHolder("only the reviewer holding this ticket's lease (or a lead) may release it")
        state = transition(before.state, State.OPEN) if before.state is State.IN_REVIEW else before.state
        await conn.execute(Q.set_lease, ticket_id, state.value, None, None, 0.0)
        after = await get_ticket(conn, ticket_id)
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.released",
            subject=_subject(ticket_id),
            before=before.audit_view(),
            after=after.audit_view(),
        )
        return after


async def expire_leases(conn: asyncpg.Connection, batch: int = 500) -> int:
    """Put tickets whose lease ran out back in the queue (in_review -> open), so listings tell the truth.

    Claims already treat an expired lease as free; this sweep makes it visible and audited.
    """
    async with conn.transaction():
        ids = [r["id"] for r in await conn.fetch(Q.expired_leases, batch)]
        for ticket_id in ids:
            before = await get_ticket(conn, ticket_id)
            state = transition(before.state, State.OPEN) if before.state is State.IN_REVIEW else before.state
            await conn.execute(Q.set_lease, ticket_id, state.value, None, None, 0.0)
            after = await get_ticket(conn, ticket_id)
            await append_audit(
                conn,
                actor=SYSTEM.name,
                action="ticket.lease_expired",
                subject=_subject(ticket_id),
                before=before.audit_view(),
                after=after.audit_view(),
            )
    return len(ids)


async def assign(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, key_prefix: str, config: TakedownConfig) -> Ticket:
    """A lead hands a ticket that awaits a decision to a named reviewer (lease and all)."""
    async with conn.transaction():
        target = await conn.fetchrow(Q.find_staff_key, key_prefix)
        if target is None:
            raise UnknownKey(f"no active reviewer or lead key has the prefix {key_prefix!r}")
        before = await _locked(conn, ticket_id)
        if before.state not in NEEDS_REVIEW:
            raise InvalidTransition(
                before.state.value, State.IN_REVIEW.value, "only a ticket that awaits a decision can be assigned"
            )
        if before.state is State.APPEALED and before.decided_key_id == target["id"]:
            raise SameReviewer("this appeal cannot go to the reviewer who made the decision under appeal")
        state = transition(before.state, State.IN_REVIEW) if before.state is State.OPEN else before.state
        await conn.execute(Q.set_lease, ticket_id, state.value, target["id"], target["key_prefix"], config.lease_s)
        after = await get_ticket(conn, ticket_id)
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.assigned",
            subject=_subject(ticket_id),
            before=before.audit_view(),
            after=after.audit_view(),
        )
        return after


# ---------------------------------------------------------------- decisions


async def decide(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    decision: DecisionInput,
    config: TakedownConfig,
    *,
    override: bool,
    on_decision: Sequence[DecisionHook] = (),
) -> Ticket:
    """A person's decision on a claimed ticket (or, with ``override``, a lead's on any ticket awaiting one)."""
    async with conn.transaction():
        ticket = await _locked(conn, ticket_id)
        now = await _now(conn)
        allowed = HUMAN_DECISIONS.get(ticket.state, frozenset())
        if decision.to not in allowed:
            why = (
                f"a ticket in state {ticket.state.value!r} takes one of: {', '.join(sorted(allowed))}"
                if allowed
                else f"a ticket in state {ticket.state.value!r} awaits no decision"
                + (": claim it first (POST /v1/queue/claim)" if ticket.state is State.OPEN else "")
            )
            raise InvalidTransition(ticket.state.value, decision.to.value, why)
        if ticket.state is State.APPEALED and actor.key_id == ticket.decided_key_id:
            raise SameReviewer()
        if not override and not (actor.key_id is not None and ticket.leased_to(actor.key_id, now)):
            raise NotLeaseHolder()
        return await _apply(
            conn, ticket, decision, actor, config, automated_decision=False, override=override, on_decision=on_decision
        )


async def report(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    hotline: str,
    reference: str | None,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
) -> Ticket:
    """Record that the restricted content was reported to a hotline or authority (e.g. NCMEC)."""
    async with conn.transaction():
        ticket = await _locked(conn, ticket_id)
        return await _apply(
            conn,
            ticket,
            DecisionInput(to=State.REPORTED, explanation=f"reported to {hotline}"),
            actor,
            config,
            automated_decision=False,
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
) -> Ticket:
    async with conn.transaction():
        ticket = await _locked(conn, ticket_id)
        now = await _now(conn)
        if ticket.state in APPEALABLE and ticket.decided_at is not None:
            until = reasons.appeal_deadline(ticket.decided_at, config.appeal_window_days)
            if now <= until:
                raise InvalidTransition(
                    ticket.state.value,
                    State.CLOSED.value,
                    f"the uploader may appeal until {until.isoformat()}; close it after that",
                )
        return await _apply(
            conn,
            ticket,
            DecisionInput(to=State.CLOSED, explanation=explanation),
            actor,
            config,
            automated_decision=False,
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
        ticket = await _locked(conn, ticket_id)
        now = await _now(conn)
        if ticket.state not in APPEALABLE:
            transition(ticket.state, State.APPEALED)  # raises: the state machine says why
        assert ticket.decided_at is not None
        until = reasons.appeal_deadline(ticket.decided_at, config.appeal_window_days)
        if now > until:
            raise AppealWindowClosed(f"the window for appealing this decision closed at {until.isoformat()}")
        return await _apply(
            conn,
            ticket,
            DecisionInput(to=State.APPEALED, explanation=explanation),
            actor,
            config,
            automated_decision=False,
            new_due=due_at(now, config.due_hours[ticket.source]),
            on_decision=on_decision,
        )


async def set_hold(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, hold: bool, reason: str | None) -> Ticket:
    """Place or lift a legal hold: while held, the ticket's evidence is never purged."""
    async with conn.transaction():
        before = await _locked(conn, ticket_id)
        await conn.execute(Q.set_hold, ticket_id, hold, reason if hold else None)
        after = await get_ticket(conn, ticket_id)
        await append_audit(
            conn,
            actor=actor.name,
            action="ticket.legal_hold_set" if hold else "ticket.legal_hold_lifted",
            subject=_subject(ticket_id),
            before=before.audit_view(),
            after=after.audit_view(),
        )
        return after


DecisionHook = Callable[[asyncpg.Connection, Ticket, Ticket, Actor], Awaitable[None]]
"""How another context reacts to a decision (e.g. wrong-match feedback for a list's issuer).

The composition root passes them in (``on_decision``) rather than registering them in a module-level
list, so the flow is visible where the service is built. Each runs inside the decision's transaction:
both commit or roll back together."""


async def evidence_entry_rows(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[tuple[int, uuid.UUID]]:
    """(hash entry row, scan id) of every list entry matched in a ticket's evidence."""
    return [(r["hash_entry_id"], r["scan_id"]) for r in await conn.fetch(Q.evidence_entry_rows, ticket_id)]


async def _apply(
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
    to = transition(ticket.state, decision.to)
    if to is State.ACTIONED:
        in_force: Action | None = decision.action
    elif to is State.REINSTATED:
        in_force = None
    else:
        in_force = ticket.action
    # The actioned/dismissed decision is the one an appeal is checked against (another reviewer).
    primary = to in (State.ACTIONED, State.DISMISSED)
    # Each decision restarts the preservation clock (365 days after a report, by default).
    preserve_days = None if to is State.APPEALED else config.retention_days
    platform_action: Action | None = None
    if to is State.ACTIONED:
        platform_action = decision.action
    elif to is State.REINSTATED and ticket.action in RESTRICTIONS:
        platform_action = Action.REINSTATE
    await conn.execute(
        Q.apply_decision,
        ticket.id,
        to.value,
        in_force.value if in_force else None,
        primary,
        actor.key_id,
        new_due,
        preserve_days,
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
        request = webhooks.ActionRequest(
            idempotency_key=uuid.uuid4(),
            ticket_id=ticket.id,
            content_id=ticket.content_id,
            content_url=ticket.content_url,
            action=platform_action,
            decided_at=decided_at,
            automated_decision=automated_decision,
            statement_url=f"/v1/tickets/{ticket.id}/statement" if platform_action in RESTRICTIONS else None,
        )
        await conn.execute(Q.insert_outbox, ticket.id, request.idempotency_key, platform_action.value, webhooks.body(request))
    after = await get_ticket(conn, ticket.id)
    if to is State.ACTIONED:
        await _issue_statement(conn, after, decision, actor, decided_at, automated_decision, config)
    for hook in on_decision:
        await hook(conn, ticket, after, actor)
    await append_audit(
        conn,
        actor=actor.name,
        action=f"ticket.{to.value}",
        subject=_subject(ticket.id),
        before=ticket.audit_view(),
        after={
            **after.audit_view(),
            "automated_decision": automated_decision,
            "override": override,
            **({"reported_to": reported[0]} if reported else {}),
        },
    )
    return after


async def _issue_statement(
    conn: asyncpg.Connection,
    ticket: Ticket,
    decision: DecisionInput,
    actor: Actor,
    decided_at: datetime,
    automated_decision: bool,
    config: TakedownConfig,
) -> None:
    evidence = [_evidence(r) for r in await conn.fetch(Q.ticket_evidence, ticket.id)]
    sources = [Source(r["source"]) for r in await conn.fetch(Q.ticket_sources, ticket.id)]
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
            evidence=evidence,
            sources=sources,
            content_type=await conn.fetchval(Q.ticket_content_type, ticket.id),
            appeal_until=reasons.appeal_deadline(decided_at, config.appeal_window_days),
        )
    )
    await conn.execute(Q.insert_statement, ticket.id, json.dumps(body))


# ---------------------------------------------------------------- policies


async def list_policies(conn: asyncpg.Connection) -> list[Policy]:
    return [
        Policy(hashset=r["hashset"], tool=r["tool"], auto_action=r["auto_action"], action=Action(r["action"]))
        for r in await conn.fetch(Q.list_policies)
    ]


async def set_policy(conn: asyncpg.Connection, actor: Actor, policy: Policy) -> Policy:
    """Mark a list (and tool, or '*') for automated action or back to human review; audited."""
    async with conn.transaction():
        row = await conn.fetchrow(Q.get_policy, policy.hashset, policy.tool)
        await conn.execute(Q.upsert_policy, policy.hashset, policy.tool, policy.auto_action, policy.action.value)
        await append_audit(
            conn,
            actor=actor.name,
            action="policy.changed",
            subject=f"policy:{policy.hashset}/{policy.tool}",
            before=None if row is None else {"auto_action": row["auto_action"], "action": row["action"]},
            after={"auto_action": policy.auto_action, "action": policy.action.value},
        )
    return policy


# ---------------------------------------------------------------- outbox


async def claim_deliveries(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Delivery]:
    async with conn.transaction():
        rows = await conn.fetch(Q.claim_deliveries, limit, lease_s)
    return [
        Delivery(
            id=r["id"],
            ticket_id=r["ticket_id"],
            idempotency_key=r["idempotency_key"],
            action=Action(r["action"]),
            body=r["body"],
            attempts=r["attempts"],
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
        await _locked(conn, ticket_id)
        ids = [r["id"] for r in await conn.fetch(Q.retry_failed, ticket_id)]
        if ids:
            await append_audit(
                conn, actor=actor.name, action="ticket.deliveries_retried", subject=_subject(ticket_id), after={"outbox_ids": ids}
            )
    return len(ids)


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


async def queue_gauges(conn: asyncpg.Connection) -> tuple[dict[str, int], int]:
    """Tickets per state, and how many are overdue."""
    rows = await conn.fetch(Q.queue_gauges)
    return {r["state"]: int(r["n"]) for r in rows}, sum(int(r["overdue"]) for r in rows)


async def transparency_report(conn: asyncpg.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """The transparency figures for decisions and notices in [start, end), in one consistent snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        notices = {r["key"]: int(r["n"]) for r in await conn.fetch(Q.transparency_notices, start, end)}
        decisions = [transparency.DecisionRow(**dict(r)) for r in await conn.fetch(Q.transparency_decisions, start, end)]
        medians = {r["key"]: float(r["median_s"]) for r in await conn.fetch(Q.transparency_time_to_action, start, end)}
        appeals = [
            transparency.AppealRow(outcome=r["outcome"], n=int(r["n"]), median_s=r["median_s"])
            for r in await conn.fetch(Q.transparency_appeal_times, start, end)
        ]
    return transparency.report(
        start=start, end=end, notices=notices, decisions=decisions, median_to_action_s=medians, appeals=appeals
    )


# ---------------------------------------------------------------- retention


async def purge_unticketed_matches(conn: asyncpg.Connection, retention_days: int) -> int:
    """Delete match records older than ``retention_days`` that no ticket holds (e.g. shadow-list matches)."""
    result = await conn.execute(Q.purge_unticketed_matches, retention_days)
    return int(result.split()[-1])


async def purge_expired_evidence(conn: asyncpg.Connection, batch: int = 100) -> int:
    """Purge evidence whose preservation deadline has passed, unless on legal hold; return tickets purged.

    What goes: match evidence (here and the detector's scan_matches copy), notice texts and
    notifier contact, content URLs, delivered webhook bodies. What stays: the ticket's workflow
    fields and decisions (the transparency figures) and the audit log, none of which hold evidence.
    """
    purged = 0
    while True:
        async with conn.transaction():
            ids = [r["id"] for r in await conn.fetch(Q.purge_candidates, batch)]
            for ticket_id in ids:
                await conn.execute(Q.purge_scan_matches, ticket_id)
                await conn.execute(Q.purge_evidence, ticket_id)
                await conn.execute(Q.purge_notices, ticket_id)
                await conn.execute(Q.purge_outbox, ticket_id)
                await conn.execute(Q.mark_purged, ticket_id)
                await append_audit(conn, actor=SYSTEM.name, action="ticket.evidence_purged", subject=_subject(ticket_id))
        purged += len(ids)
        if len(ids) < batch:
            return purged
