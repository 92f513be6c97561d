"""Ticket values: the ticket, its evidence, notices and decisions, and who acted. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.match import Match
from takedown.workflow import NEEDS_REVIEW, Action, Source, State

Scope = frozenset[int] | None
"""The tenants a caller may see: a platform key's own, a staff key's limit, or None for every tenant."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """Who changed something: an API key (``key_id`` and its printable prefix) or the system itself.

    Decisions are attributed to the key that made them; give each reviewer their own key
    (``hashguard keys create --role reviewer --label "name"``) and the key's label names the person.

    ``tenants`` is the set of tenants whose tickets the actor may see and touch (None: every
    tenant, as for the system and the command line); a ticket outside it is answered as absent.
    ``tenant_id`` is a platform key's own tenant, where its notices open tickets.
    """

    key_id: int | None
    name: str
    tenants: Scope = None
    tenant_id: int | None = None

    @property
    def automated(self) -> bool:
        return self.key_id is None


SYSTEM = Actor(key_id=None, name="system")


@dataclass(frozen=True, kw_only=True, slots=True)
class Evidence:
    """One match behind a ticket: the detector's ``Match`` (list, version, entry id never its hash,
    tool, distance, approval), which scan found it, whose key asked, and when it was recorded.

    Takedown keeps the match as the detector reports it rather than a copy of its fields, so the
    verdict, the stored evidence and the ticket read one value. What the evidence table stores of
    it: everything but ``shadow`` (shadow matches open no ticket), ``quarantined`` (it only steers
    the automated-action rule at match time) and ``local_allowance_id``; read back, those are
    their defaults.
    """

    scan_id: uuid.UUID
    match: Match
    api_key_id: int | None = None
    observed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Notice:
    """A notice about content (DSA Art 16, a hotline notice, an authority's removal order)."""

    source: Source
    content_id: str
    content_url: str | None
    explanation: str | None
    content_type: str | None = None
    notifier_name: str | None = None
    notifier_email: str | None = None
    authority: str | None = None
    authority_reference: str | None = None
    legal_deadline: datetime | None = None
    bona_fide: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Ticket:
    id: uuid.UUID
    tenant_id: int
    content_id: str
    content_url: str | None
    source: Source
    state: State
    priority: int
    received_at: datetime
    due_at: datetime
    automated_detection: bool
    lease_key_id: int | None
    lease_key_prefix: str | None
    lease_expires_at: datetime | None
    action: Action | None
    decided_at: datetime | None
    decided_key_id: int | None
    first_action_at: datetime | None
    sightings: int
    notices: int
    legal_hold: bool
    legal_hold_reason: str | None
    preserve_until: datetime | None
    evidence_purged_at: datetime | None
    updated_at: datetime

    def overdue(self, now: datetime) -> bool:
        return self.state in NEEDS_REVIEW and self.due_at < now

    def leased_to(self, key_id: int, now: datetime) -> bool:
        return self.lease_key_id == key_id and self.lease_expires_at is not None and self.lease_expires_at > now

    def audit_view(self) -> dict[str, Any]:
        """What the audit trail records of a ticket: its workflow fields, no personal data."""
        return {
            "state": self.state.value,
            "priority": self.priority,
            "due_at": self.due_at,
            "action": self.action.value if self.action else None,
            "lease": self.lease_key_prefix,
            "legal_hold": self.legal_hold,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionInput:
    """A reviewer's decision: the target state, and for a restriction which action and why."""

    to: State
    action: Action | None = None
    ground: str | None = None
    legal_ground: str | None = None
    explanation: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """A recorded state change."""

    from_state: State
    to_state: State
    action: Action | None
    ground: str | None
    legal_ground: str | None
    explanation: str | None
    automated_detection: bool
    automated_decision: bool
    actor: str
    decided_at: datetime
    reported_to: str | None = None
    report_reference: str | None = None
