"""Storage of tickets and what is attached to them: opening, attaching evidence and notices, holds, reading.

Every change runs in one transaction that also appends its audit entry. Functions that change
things open a transaction (a savepoint when the caller already holds one, as the scan path does
to keep match evidence and ticket together). The rules they apply live in ``takedown.rules``.

Tenants: every ticket belongs to one, and every read or change by id takes the caller's scope
(``takedown.tickets.Scope``) into the query itself, so a ticket of another tenant is not found,
with the very error an unknown id gets: nothing tells a caller that it exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from detector.match import Match
from kernel.audit import StoredEntry
from kernel.auditlog import append_audit, audit_page
from kernel.db import Queries
from kernel.keys import DEFAULT_TENANT_ID
from takedown.config import TakedownConfig
from takedown.errors import TicketNotFound
from takedown.tickets import Actor, Decision, Evidence, Notice, Scope, Ticket
from takedown.workflow import PRIORITY, Action, Source, State, due_at

Q = Queries("takedown")


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketDetail:
    ticket: Ticket
    evidence: list[Evidence]
    notices: list[dict[str, Any]]
    decisions: list[Decision]
    deliveries: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketFilter:
    states: Sequence[State] | None = None
    sources: Sequence[Source] | None = None
    priority: int | None = None
    content_id: str | None = None
    overdue: bool | None = None
    limit: int = 50
    offset: int = 0
    tenants: Scope = None  # the tenants the caller may see (None: every tenant)


def _scope(scope: Scope) -> list[int] | None:
    return None if scope is None else sorted(scope)


def _ticket(row: asyncpg.Record) -> Ticket:
    data = dict(row)
    data["source"] = Source(data["source"])
    data["state"] = State(data["state"])
    data["action"] = Action(data["action"]) if data["action"] else None
    return Ticket(**data)


def _evidence(row: asyncpg.Record) -> Evidence:
    return Evidence(
        scan_id=row["scan_id"],
        match=Match(
            entry_row=row["entry_row"],
            hashset=row["hashset"],
            hashset_version=row["hashset_version"],
            entry_id=row["entry_id"],
            tool=row["tool"],
            tool_version=row["tool_version"],
            distance=row["distance"],
            approval_id=row["approval_id"],
            approval_reason=row["approval_reason"],
            transform=row["transform"],
            query_share=row["query_share"],
            index_share=row["index_share"],
            matched_frames=row["matched_frames"],
        ),
        api_key_id=row["api_key_id"],
        observed_at=row["observed_at"],
    )


def _decision(row: asyncpg.Record) -> Decision:
    data = dict(row)
    data["from_state"] = State(data["from_state"])
    data["to_state"] = State(data["to_state"])
    data["action"] = Action(data["action"]) if data["action"] else None
    return Decision(**data)


def audit_subject(ticket_id: uuid.UUID) -> str:
    """The audit log's subject for everything that happens to a ticket."""
    return f"ticket:{ticket_id}"


def subject_ticket(subject: str) -> uuid.UUID | None:
    """The ticket an audit subject names (``audit_subject``'s inverse), or None for any other subject."""
    kind, _, rest = subject.partition(":")
    if kind != "ticket":
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None


# How many pages of the whole log one request of a tenant-limited key reads at most.
_AUDIT_PAGES_PER_REQUEST = 20


async def tenant_audit_page(
    conn: asyncpg.Connection, scope: frozenset[int], *, after_seq: int, subject: str | None, limit: int
) -> tuple[list[StoredEntry], int]:
    """The audit entries a key limited to some tenants may read, and the last sequence number read.

    The chain is one for the whole service; other tenants' entries (their ticket ids, states and
    timing) are left out as if absent, as everything else of theirs is, and so are the service's
    own (keys, lists, settings). Reads on until ``limit`` such entries are found, the log ends, or
    a bounded number of pages was read; the caller continues from the sequence number returned.
    """
    found: list[StoredEntry] = []
    for _ in range(_AUDIT_PAGES_PER_REQUEST):
        page = await audit_page(conn, after_seq=after_seq, subject=subject, limit=limit)
        named = {t for t in (subject_ticket(e.subject) for e in page) if t is not None}
        visible = await visible_tickets(conn, sorted(named), scope)
        for entry in page:
            if subject_ticket(entry.subject) in visible:
                found.append(entry)
            after_seq = entry.seq
            if len(found) == limit:
                return found, after_seq
        if len(page) < limit:
            break
    return found, after_seq


async def visible_tickets(conn: asyncpg.Connection, ticket_ids: Sequence[uuid.UUID], scope: Scope) -> set[uuid.UUID]:
    """Which of these tickets exist within ``scope``."""
    if not ticket_ids:
        return set()
    return {r["id"] for r in await conn.fetch(Q.visible_tickets, list(ticket_ids), _scope(scope))}


async def db_now(conn: asyncpg.Connection) -> datetime:
    """The database's clock (the transaction's start): the one every rule's ``now`` comes from."""
    value: datetime = await conn.fetchval(Q.now)
    return value


# ---------------------------------------------------------------- reading


def not_found(ticket_id: uuid.UUID) -> TicketNotFound:
    """The one answer for an unknown ticket and for another tenant's: the same code and message."""
    return TicketNotFound(f"no ticket has the id {ticket_id}")


async def get_ticket(conn: asyncpg.Connection, ticket_id: uuid.UUID, scope: Scope = None) -> Ticket:
    """The ticket, if it is in ``scope`` (None: any tenant's); else ``TicketNotFound``."""
    row = await conn.fetchrow(Q.get_ticket, ticket_id, _scope(scope))
    if row is None:
        raise not_found(ticket_id)
    return _ticket(row)


async def locked_ticket(conn: asyncpg.Connection, ticket_id: uuid.UUID, scope: Scope = None) -> Ticket:
    """The ticket, row-locked until the caller's transaction ends, if it is in ``scope``."""
    row = await conn.fetchrow(Q.get_ticket_for_update, ticket_id, _scope(scope))
    if row is None:
        raise not_found(ticket_id)
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
        _scope(f.tenants),
    )
    return [_ticket(r) for r in rows]


async def ticket_evidence(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[Evidence]:
    return [_evidence(r) for r in await conn.fetch(Q.ticket_evidence, ticket_id)]


async def ticket_detail(conn: asyncpg.Connection, ticket_id: uuid.UUID, scope: Scope = None) -> TicketDetail:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ticket = await get_ticket(conn, ticket_id, scope)
        evidence = await ticket_evidence(conn, ticket_id)
        notices = [dict(r) for r in await conn.fetch(Q.ticket_notices, ticket_id)]
        decision_rows = await conn.fetch(Q.ticket_decisions, ticket_id)
        deliveries = [dict(r) for r in await conn.fetch(Q.ticket_deliveries, ticket_id)]
    decisions = [_decision(r) for r in decision_rows]
    return TicketDetail(ticket=ticket, evidence=evidence, notices=notices, decisions=decisions, deliveries=deliveries)


async def ticket_sources(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[Source]:
    """Every source that reported the ticket's content, first first."""
    return [Source(r["source"]) for r in await conn.fetch(Q.ticket_sources, ticket_id)]


async def ticket_content_type(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> str | None:
    value: str | None = await conn.fetchval(Q.ticket_content_type, ticket_id)
    return value


async def evidence_entry_rows(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[tuple[int, uuid.UUID]]:
    """(hash entry row, scan id) of every list entry matched in a ticket's evidence."""
    return [(r["entry_row"], r["scan_id"]) for r in await conn.fetch(Q.evidence_entry_rows, ticket_id)]


# ---------------------------------------------------------------- opening and attaching


async def live_ticket(
    conn: asyncpg.Connection,
    *,
    tenant_id: int,
    content_id: str,
    content_url: str | None,
    source: Source,
    priority: int,
    due: datetime,
    automated_detection: bool,
) -> tuple[uuid.UUID, bool]:
    """The live ticket for the tenant's ``content_id``, opened if there is none; and whether it was opened now.

    Content ids are the platform's own names: the same id from another tenant is another ticket.

    The partial unique index makes concurrent uploads of one item agree on one ticket: the loser
    of the race waits for the winner's commit, inserts nothing, and attaches to the winner's ticket.
    """
    for _ in range(5):
        opened = await conn.fetchval(
            Q.insert_ticket, uuid.uuid4(), content_id, content_url, source.value, priority, due, automated_detection, tenant_id
        )
        if opened is not None:
            return opened, True
        existing = await conn.fetchval(Q.live_ticket_for_update, content_id, tenant_id)
        if existing is not None:
            return existing, False
    raise RuntimeError(f"could not open or find a live ticket for content {content_id!r}")  # pragma: no cover


@dataclass(frozen=True, kw_only=True, slots=True)
class Sighting:
    """One scan's matches about one tenant's content: what ``attach_evidence_many`` stores per item."""

    ticket_id: uuid.UUID
    scan_id: uuid.UUID
    api_key_id: int | None
    matches: Sequence[Match]


async def live_tickets_many(
    conn: asyncpg.Connection,
    contents: Sequence[tuple[int, str, str | None]],
    *,
    source: Source,
    priority: int,
    due: datetime,
    automated_detection: bool,
) -> list[tuple[uuid.UUID, bool]]:
    """``live_ticket`` for many distinct (tenant, content id, content url) at once: one insert, one locking read.

    Rows are inserted and locked in (tenant, content id) order, so two batches naming the same
    contents wait for each other instead of deadlocking. Returns (ticket id, opened now) per content, in order.
    """
    keys = [(tenant, content_id) for tenant, content_id, _ in contents]
    if len(set(keys)) != len(keys):
        raise ValueError("each content once per call")
    found: dict[tuple[int, str], tuple[uuid.UUID, bool]] = {}
    for _ in range(5):
        wanted = [c for c in contents if (c[0], c[1]) not in found]
        if not wanted:
            break
        inserted = await conn.fetch(
            Q.insert_tickets,
            [uuid.uuid4() for _ in wanted],
            [c[1] for c in wanted],
            [c[2] for c in wanted],
            source.value,
            priority,
            due,
            automated_detection,
            [c[0] for c in wanted],
        )
        found.update({(r["tenant_id"], r["content_id"]): (r["id"], True) for r in inserted})
        rest = [c for c in wanted if (c[0], c[1]) not in found]
        if rest:
            existing = await conn.fetch(Q.live_tickets_for_update, [c[1] for c in rest], [c[0] for c in rest])
            found.update({(r["tenant_id"], r["content_id"]): (r["id"], False) for r in existing})
    missing = [k for k in keys if k not in found]
    if missing:  # pragma: no cover - a ticket closed and reopened five times during one call
        raise RuntimeError(f"could not open or find a live ticket for {len(missing)} contents")
    return [found[k] for k in keys]


async def get_tickets(conn: asyncpg.Connection, ticket_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Ticket]:
    """These tickets by id (any tenant's: for the match path, which names only tickets it just opened or locked)."""
    if not ticket_ids:
        return {}
    return {r["id"]: _ticket(r) for r in await conn.fetch(Q.get_tickets, list(ticket_ids))}


async def attach_evidence_many(conn: asyncpg.Connection, sightings: Sequence[Sighting], *, priority: int, due: datetime) -> None:
    """``attach_evidence`` for many tickets (each named once) in two statements."""
    if len({s.ticket_id for s in sightings}) != len(sightings):
        raise ValueError("each ticket once per call")
    rows = [(s.ticket_id, s.scan_id, s.api_key_id, m) for s in sightings for m in s.matches]
    if rows:
        await conn.execute(
            Q.insert_evidence_many,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3].entry_row for r in rows],
            [r[3].hashset for r in rows],
            [r[3].hashset_version for r in rows],
            [r[3].entry_id for r in rows],
            [r[3].tool for r in rows],
            [r[3].tool_version for r in rows],
            [r[3].distance for r in rows],
            [r[3].approval_id for r in rows],
            [r[3].approval_reason for r in rows],
            [r[3].transform for r in rows],
            [r[3].query_share for r in rows],
            [r[3].index_share for r in rows],
            [r[3].matched_frames for r in rows],
        )
    if sightings:
        await conn.execute(Q.attach_sightings, [s.ticket_id for s in sightings], priority, due)


async def file_notice(conn: asyncpg.Connection, notice: Notice, actor: Actor, config: TakedownConfig) -> tuple[Ticket, int, bool]:
    """Record a notice and open or attach to the content's live ticket: (ticket, notice id, opened).

    The ticket is the notifier's tenant's (``actor.tenant_id``; the default tenant for a caller of
    none): a notice naming another tenant's content id opens the notifier's own ticket, never
    joins or returns the other's.
    """
    async with conn.transaction():
        now = await db_now(conn)
        priority = PRIORITY[notice.source]
        due = due_at(now, config.due_hours[notice.source], notice.legal_deadline)
        ticket_id, opened = await live_ticket(
            conn,
            tenant_id=DEFAULT_TENANT_ID if actor.tenant_id is None else actor.tenant_id,
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
            subject=audit_subject(ticket_id),
            before=before,
            after={**ticket.audit_view(), "source": notice.source.value, "notice_id": notice_id},
        )
    return ticket, notice_id, opened


async def audit_ticket_change(conn: asyncpg.Connection, actor: str, action: str, before: Ticket, after: Ticket) -> None:
    """Append a ticket's change to the audit log, as its state before and after, in the caller's transaction."""
    await append_audit(
        conn, actor=actor, action=action, subject=audit_subject(after.id), before=before.audit_view(), after=after.audit_view()
    )


async def set_hold(conn: asyncpg.Connection, ticket_id: uuid.UUID, actor: Actor, hold: bool, reason: str | None) -> Ticket:
    """Place or lift a legal hold: while held, the ticket's evidence is never purged."""
    async with conn.transaction():
        before = await locked_ticket(conn, ticket_id, actor.tenants)
        await conn.execute(Q.set_hold, ticket_id, hold, reason if hold else None)
        after = await get_ticket(conn, ticket_id)
        await audit_ticket_change(
            conn, actor.name, "ticket.legal_hold_set" if hold else "ticket.legal_hold_lifted", before, after
        )
        return after
