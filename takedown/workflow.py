"""The ticket state machine, sources, priorities and due times. Pure: no I/O.

A ticket moves only along ``TRANSITIONS``; ``transition()`` is the single gate every change
passes, so a refused move raises ``InvalidTransition`` before anything is written. The
PostgreSQL enums ``ticket_state``, ``ticket_source`` and ``platform_action`` mirror the enums here.

    open ──claim──> in_review ──> actioned ──> reported
      │  <─release──     │           │  ╲         │
      └─(auto policy)────┼──────────>┘   ╲        │
                         └─> dismissed    appealed <┘ ──> reinstated | upheld ──> (reported)
    every decided state ──> closed
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from takedown.errors import InvalidTransition


class State(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"
    ACTIONED = "actioned"
    DISMISSED = "dismissed"
    REPORTED = "reported"
    APPEALED = "appealed"
    REINSTATED = "reinstated"
    UPHELD = "upheld"
    CLOSED = "closed"


class Source(StrEnum):
    HASH_MATCH = "hash_match"
    USER_REPORT = "user_report"
    TRUSTED_FLAGGER = "trusted_flagger"
    HOTLINE = "hotline"
    AUTHORITY_ORDER = "authority_order"


class Action(StrEnum):
    """What the platform is asked to do with the content (sent to its webhook)."""

    REMOVE = "remove"
    BLOCK = "block"
    RESTRICT = "restrict"
    REINSTATE = "reinstate"


RESTRICTIONS = frozenset({Action.REMOVE, Action.BLOCK, Action.RESTRICT})

TRANSITIONS: Mapping[State, frozenset[State]] = {
    # open -> actioned only for an automated decision under an auto_action list policy;
    # people decide from in_review, after claiming the ticket.
    State.OPEN: frozenset({State.IN_REVIEW, State.ACTIONED}),
    # in_review -> open: released by its reviewer (an expired lease is claimable without a move).
    State.IN_REVIEW: frozenset({State.OPEN, State.ACTIONED, State.DISMISSED}),
    State.ACTIONED: frozenset({State.REPORTED, State.APPEALED, State.CLOSED}),
    State.REPORTED: frozenset({State.APPEALED, State.CLOSED}),
    State.APPEALED: frozenset({State.REINSTATED, State.UPHELD}),
    # An upheld restriction may still need its hotline report.
    State.UPHELD: frozenset({State.REPORTED, State.CLOSED}),
    State.DISMISSED: frozenset({State.CLOSED}),
    State.REINSTATED: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}

# A ticket in one of these states is live: new matches and notices about its content attach to it.
# Finished tickets (the decision was "not illegal", or the case is closed) make way for a new one.
FINISHED = frozenset({State.DISMISSED, State.REINSTATED, State.CLOSED})
# States a reviewer's claim can pick up.
NEEDS_REVIEW = frozenset({State.OPEN, State.IN_REVIEW, State.APPEALED})
# Decisions a person gives through the decision endpoint, by the state they are given in.
HUMAN_DECISIONS: Mapping[State, frozenset[State]] = {
    State.IN_REVIEW: frozenset({State.ACTIONED, State.DISMISSED}),
    State.APPEALED: frozenset({State.REINSTATED, State.UPHELD}),
}
# States from which the uploader may appeal the restriction (DSA Art 20 internal complaint).
APPEALABLE = frozenset({State.ACTIONED, State.REPORTED})

# 1 is the most urgent. Authority orders and known-hash matches first; trusted flaggers get
# priority over ordinary users (DSA Art 22); hotlines are usually trusted flaggers too.
PRIORITY: Mapping[Source, int] = {
    Source.AUTHORITY_ORDER: 1,
    Source.HASH_MATCH: 1,
    Source.HOTLINE: 2,
    Source.TRUSTED_FLAGGER: 2,
    Source.USER_REPORT: 3,
}


def transition(current: State, to: State) -> State:
    """Return ``to`` if the state machine allows ``current -> to``; raise ``InvalidTransition`` otherwise."""
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(current.value, to.value)
    return to


def due_at(received_at: datetime, hours: float, legal_deadline: datetime | None = None) -> datetime:
    """When a ticket must be decided: the source's window, or an order's own deadline if sooner."""
    due = received_at + timedelta(hours=hours)
    return min(due, legal_deadline) if legal_deadline is not None else due
