"""The flows between contexts, wired by ``hashguard.app`` (the service) where it assembles takedown.

The contexts do not import each other; what must travel between them is a function here, handed
to the context that triggers it. Each runs inside the transaction of the change that triggers it,
so both commit or roll back together.

(List and tool-approval changes reach the audit log without a flow: the audit log is the kernel's,
and every context appends to it directly; see ``kernel.auditlog``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector import evidence
from hashsets import feedback
from hashsets.exchanges import store as exchange_store
from takedown import ticket_store
from takedown.retention_store import ScanMatches
from takedown.tickets import Actor, Ticket
from takedown.workflow import Source, State

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

# Takedown's retention clears the detector's copy of match evidence with its own, through the
# detector's functions: takedown never touches the detector's scan_matches table.
DETECTOR_SCANS = ScanMatches(matched_before=evidence.scans_matched_before, forget=evidence.forget_scans)

# Decisions that say a hash match was wrong: a reviewer dismissed the ticket, or reinstated the
# content after the uploader's appeal.
_WRONG_MATCH_STATES = frozenset({State.DISMISSED, State.REINSTATED})


async def wrong_match_feedback(conn: asyncpg.Connection, before: Ticket, after: Ticket, actor: Actor) -> None:
    """A reviewer's verdict that a hash match was wrong becomes feedback on the list entry, for its issuer."""
    if after.source is not Source.HASH_MATCH or after.state not in _WRONG_MATCH_STATES or before.state is after.state:
        return
    for entry_row, scan_id in await ticket_store.evidence_entry_rows(conn, after.id):
        await feedback.record_wrong_match(
            conn, entry_row, actor.name, note=f"ticket {after.id} {after.state.value}", scan_id=scan_id
        )


async def exchange_feedback(conn: asyncpg.Connection, before: Ticket, after: Ticket, actor: Actor) -> None:
    """A reviewer's verdict on a match of a hash-sharing source's entry goes back to the source: a dismissal
    (or a reinstatement) as a downvote, a confirmed action as an upvote where the source enables upvotes.

    Queued in the decision's transaction (``exchange_feedback``, delivered with retries by the fetcher's
    loop) and recorded in the audit log; an automated action is not a reviewer's confirmation.
    """
    if after.source is not Source.HASH_MATCH or before.state is after.state:
        return
    if after.state in _WRONG_MATCH_STATES:
        vote = "down"
    elif after.state is State.ACTIONED and not actor.automated:
        vote = "up"
    else:
        return
    for entry_row, _scan_id in await ticket_store.evidence_entry_rows(conn, after.id):
        entry = await exchange_store.source_of_entry_row(conn, entry_row)
        if entry is None or (vote == "up" and not entry.upvotes):
            continue
        await exchange_store.queue_feedback(
            conn, entry, vote=vote, reason=f"ticket {after.id} {after.state.value}", ticket=f"ticket:{after.id}", actor=actor.name
        )
