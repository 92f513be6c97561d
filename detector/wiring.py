"""Cross-context hooks, registered by every composition root (the service and the command line).

The contexts may not import each other, yet some changes must travel: list and tool-approval
changes belong in the takedown context's hash-chained audit log, and a reviewer's decision that a
hash match was wrong belongs in the list's feedback for its issuer. Each hook runs inside the
transaction of the change that triggers it, so both commit or roll back together.
"""

from __future__ import annotations

import asyncpg

from detector.db import Change, add_change_sink
from hashsets import pg as hashsets_pg
from takedown import pg as takedown_pg
from takedown.tickets import Actor, Ticket
from takedown.workflow import Source, State

# Decisions that say a hash match was wrong: a reviewer dismissed the ticket, or reinstated the
# content after the uploader's appeal.
_WRONG_MATCH_STATES = frozenset({State.DISMISSED, State.REINSTATED})


async def audit_change(conn: asyncpg.Connection, change: Change) -> None:
    if conn.is_in_transaction():
        await _append(conn, change)
    else:
        async with conn.transaction():
            await _append(conn, change)


async def _append(conn: asyncpg.Connection, change: Change) -> None:
    await takedown_pg.append_audit(
        conn, actor=change.actor, action=change.action, subject=change.subject, before=change.before, after=change.after
    )


async def wrong_match_feedback(conn: asyncpg.Connection, before: Ticket, after: Ticket, actor: Actor) -> None:
    if after.source is not Source.HASH_MATCH or after.state not in _WRONG_MATCH_STATES or before.state is after.state:
        return
    for entry_row, scan_id in await takedown_pg.evidence_entry_rows(conn, after.id):
        await hashsets_pg.record_wrong_match(
            conn, entry_row, actor.name, note=f"ticket {after.id} {after.state.value}", scan_id=scan_id
        )


def wire() -> None:
    """Register the audit sink for list and approval changes; idempotent.

    ``wrong_match_feedback`` is not registered here: the service passes it to takedown explicitly
    (``takedown.http.DECISION_HOOKS``, set in ``detector.app.create_app``)."""
    add_change_sink(audit_change)
