"""The use case a scan's matches start: match → evidence → ticket (and, under a policy, an automated restriction).

The detector finds the matches and records its own copy; the composition root then calls
``open_for_matches`` in that same transaction, so the scan's evidence and the ticket commit
together or not at all. Takedown takes the detector's ``Match`` values as they are (the only
detector type it imports) and decides everything else here and in ``takedown.rules``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from detector.match import Match
from kernel.auditlog import Change, append_audit_many
from takedown import policy_store, rules
from takedown.config import TakedownConfig
from takedown.decision_store import DecisionHook, apply_decision
from takedown.reports import evidence_store as report_store
from takedown.reports.case import Uploader
from takedown.ticket_store import Sighting, attach_evidence_many, audit_subject, db_now, get_tickets, live_tickets_many
from takedown.tickets import SYSTEM
from takedown.workflow import PRIORITY, Action, Source, due_at

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchTicket:
    """The ticket a match opened or joined, and what happened to it in the same transaction."""

    ticket_id: uuid.UUID
    opened: bool
    auto_action: Action | None


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchOpening:
    """One scan's (or lookup item's) answered matches about one tenant's content."""

    scan_id: uuid.UUID
    tenant_id: int
    content_id: str
    content_url: str | None
    api_key_id: int | None
    matches: Sequence[Match]
    upload_hashes: Mapping[str, bytes] | None = None
    uploader: Uploader | None = None


async def open_for_matches(
    conn: asyncpg.Connection,
    *,
    scan_id: uuid.UUID,
    tenant_id: int,
    content_id: str,
    content_url: str | None,
    api_key_id: int | None,
    matches: Sequence[Match],
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
    upload_hashes: Mapping[str, bytes] | None = None,
    uploader: Uploader | None = None,
) -> MatchTicket:
    """Open (or attach to) the content's ticket for a scan's or lookup's matches: ``open_for_many`` of one."""
    opening = MatchOpening(
        scan_id=scan_id,
        tenant_id=tenant_id,
        content_id=content_id,
        content_url=content_url,
        api_key_id=api_key_id,
        matches=matches,
        upload_hashes=upload_hashes,
        uploader=uploader,
    )
    [ticket] = await open_for_many(conn, [opening], config=config, on_decision=on_decision)
    return ticket


async def open_for_many(
    conn: asyncpg.Connection,
    openings: Sequence[MatchOpening],
    *,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
) -> list[MatchTicket]:
    """Open (or attach to) each content's ticket for these matches, keeping them as evidence; one per opening, in order.

    Each ticket is the scanning key's tenant's: ``content_id`` is that platform's name for the upload.

    Runs in the caller's transaction, the one that records the scans' match evidence. A list with
    an ``auto_action`` policy gets its restriction decided here, automatically, in the same commit.
    Shadow matches open no ticket: the caller passes only the matches the verdict answers.

    Set-based, for a 1,000-item lookup batch: the tickets are opened or locked in one statement,
    the evidence inserted in one, the sightings counted in one, the audit entries appended in one,
    and the auto-action policies read once, so the cost is a handful of round trips whatever the
    batch holds. Only automated decisions (lists under an ``auto_action`` policy) are applied one
    ticket at a time. A content named twice in one call is handled in rounds (its second
    sighting joins the ticket the first opened, as two calls would), each round set-based.
    Each opening's ``upload_hashes`` (the upload's own hashes, tool -> value) are kept with the
    evidence for the hotline report (``takedown.reports``) and purged with it, in one statement.
    """
    if any(not o.matches for o in openings):
        raise ValueError("a ticket is opened for at least one match")
    if not openings:
        return []
    rounds: list[list[int]] = []
    seen: dict[tuple[int, str], int] = {}
    for i, o in enumerate(openings):
        k = seen.get((o.tenant_id, o.content_id), 0)
        seen[(o.tenant_id, o.content_id)] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(i)
    results: dict[int, MatchTicket] = {}
    async with conn.transaction():
        now = await db_now(conn)
        source = Source.HASH_MATCH
        due = due_at(now, config.due_hours[source])
        for members in rounds:
            batch = [openings[i] for i in members]
            for i, ticket in zip(members, await _open_round(conn, batch, source, due, config, on_decision), strict=True):
                results[i] = ticket
    return [results[i] for i in range(len(openings))]


async def _open_round(
    conn: asyncpg.Connection,
    batch: Sequence[MatchOpening],
    source: Source,
    due: datetime,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook],
) -> list[MatchTicket]:
    """``open_for_many`` for openings that name distinct contents."""
    live = await live_tickets_many(
        conn,
        [(o.tenant_id, o.content_id, o.content_url) for o in batch],
        source=source,
        priority=PRIORITY[source],
        due=due,
        automated_detection=True,
    )
    ids = [ticket_id for ticket_id, _ in live]
    joined = [ticket_id for ticket_id, opened in live if not opened]
    before = await get_tickets(conn, joined)
    await attach_evidence_many(
        conn,
        [
            Sighting(ticket_id=t, scan_id=o.scan_id, api_key_id=o.api_key_id, matches=o.matches)
            for o, t in zip(batch, ids, strict=True)
        ],
        priority=PRIORITY[source],
        due=due,
    )
    await report_store.record_upload_hashes_many(
        conn,
        [
            (t, o.scan_id, tool, value)
            for o, t in zip(batch, ids, strict=True)
            for tool, value in sorted((o.upload_hashes or {}).items())
        ],
    )
    for o, t in zip(batch, ids, strict=True):
        if o.uploader is not None and o.uploader.any():
            await report_store.record_uploader(conn, t, o.uploader)
    after = await get_tickets(conn, ids)
    await append_audit_many(
        conn,
        [
            Change(
                actor=SYSTEM.name,
                action="ticket.opened" if opened else "ticket.match_attached",
                subject=audit_subject(ticket_id),
                before=None if opened else before[ticket_id].audit_view(),
                after={
                    **after[ticket_id].audit_view(),
                    "source": source.value,
                    "matches": [
                        {"hashset": m.hashset, "hashset_version": m.hashset_version, "entry_id": m.entry_id, "tool": m.tool}
                        for m in o.matches
                    ],
                },
            )
            for o, (ticket_id, opened) in zip(batch, live, strict=True)
        ],
    )
    may_act = [rules.may_act_automatically(after[t].state, o.matches) for o, t in zip(batch, ids, strict=True)]
    policies = (
        await policy_store.auto_action_policies(
            conn, [m for o, act in zip(batch, may_act, strict=True) if act for m in o.matches]
        )
        if any(may_act)
        else []
    )
    tickets = []
    for o, (ticket_id, opened) in zip(batch, live, strict=True):
        ticket = after[ticket_id]
        # auto_action keeps only the policies that name one of this opening's lists and tools.
        action = rules.auto_action(ticket.state, o.matches, policies)
        if action is not None:
            await apply_decision(
                conn,
                ticket,
                rules.automated_restriction(action),
                SYSTEM,
                config,
                automated_decision=True,
                on_decision=on_decision,
            )
        tickets.append(MatchTicket(ticket_id=ticket_id, opened=opened, auto_action=action))
    return tickets
