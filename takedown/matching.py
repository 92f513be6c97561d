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
from typing import TYPE_CHECKING

from detector.match import Match
from kernel.auditlog import append_audit
from takedown import policy_store, rules
from takedown.config import TakedownConfig
from takedown.decision_store import DecisionHook, apply_decision
from takedown.reports import evidence_store as report_store
from takedown.reports.case import Uploader
from takedown.ticket_store import attach_evidence, audit_subject, db_now, get_ticket, live_ticket
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
    """Open (or attach to) the content's ticket for a scan's or lookup's matches, keeping them as evidence.

    The ticket is the scanning key's tenant's: ``content_id`` is that platform's name for the upload.

    Runs in the caller's transaction, the one that records the scan's match evidence. A list with
    an ``auto_action`` policy gets its restriction decided here, automatically, in the same commit.
    Shadow matches open no ticket: the caller passes only the matches the verdict answers.
    ``upload_hashes`` (the upload's own hashes, tool -> value) are kept with the evidence for the
    hotline report (``takedown.reports``) and purged with it.
    """
    if not matches:
        raise ValueError("a ticket is opened for at least one match")
    async with conn.transaction():
        now = await db_now(conn)
        source = Source.HASH_MATCH
        due = due_at(now, config.due_hours[source])
        ticket_id, opened = await live_ticket(
            conn,
            tenant_id=tenant_id,
            content_id=content_id,
            content_url=content_url,
            source=source,
            priority=PRIORITY[source],
            due=due,
            automated_detection=True,
        )
        before = None if opened else (await get_ticket(conn, ticket_id)).audit_view()
        await attach_evidence(
            conn, ticket_id, scan_id=scan_id, api_key_id=api_key_id, matches=matches, priority=PRIORITY[source], due=due
        )
        if upload_hashes:
            await report_store.record_upload_hashes(conn, ticket_id, scan_id, upload_hashes)
        if uploader is not None and uploader.any():
            await report_store.record_uploader(conn, ticket_id, uploader)
        ticket = await get_ticket(conn, ticket_id)
        matched = [
            {"hashset": m.hashset, "hashset_version": m.hashset_version, "entry_id": m.entry_id, "tool": m.tool} for m in matches
        ]
        await append_audit(
            conn,
            actor=SYSTEM.name,
            action="ticket.opened" if opened else "ticket.match_attached",
            subject=audit_subject(ticket_id),
            before=before,
            after={**ticket.audit_view(), "source": source.value, "matches": matched},
        )
        policies = (
            await policy_store.auto_action_policies(conn, matches) if rules.may_act_automatically(ticket.state, matches) else []
        )
        action = rules.auto_action(ticket.state, matches, policies)
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
    return MatchTicket(ticket_id=ticket_id, opened=opened, auto_action=action)
