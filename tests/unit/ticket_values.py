"""A takedown ``Ticket`` value for unit tests of the pure rules: a fresh hash-match ticket, fields overridable."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from takedown.tickets import Ticket
from takedown.workflow import PRIORITY, Source, State


def a_ticket(state: State, *, received_at: datetime, due_at: datetime, updated_at: datetime, **changes: object) -> Ticket:
    base = Ticket(
        id=uuid.UUID(int=1),
        tenant_id=1,
        content_id="c",
        content_url=None,
        source=Source.HASH_MATCH,
        state=state,
        priority=PRIORITY[Source.HASH_MATCH],
        received_at=received_at,
        due_at=due_at,
        automated_detection=True,
        lease_key_id=None,
        lease_key_prefix=None,
        lease_expires_at=None,
        action=None,
        decided_at=None,
        decided_key_id=None,
        first_action_at=None,
        sightings=1,
        notices=0,
        legal_hold=False,
        legal_hold_reason=None,
        preserve_until=None,
        evidence_purged_at=None,
        updated_at=updated_at,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
