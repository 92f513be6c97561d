"""The declared response types of the takedown endpoints (requests are in ``takedown.requests``).

The OpenAPI document is generated from these; the schema conformance test holds the handlers to them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType, field

from takedown.reports.api import HotlineReport
from takedown.workflow import RESTRICTIONS, Action, Source, State

RESTRICTION_NAMES = sorted(a.value for a in RESTRICTIONS)
Restriction = Annotated[Action, Meta(extra_json_schema={"enum": RESTRICTION_NAMES})]


class Lease(Struct, forbid_unknown_fields=True):
    holder: Annotated[str | None, Meta(description="The printable prefix of the reviewer key working the ticket.")]
    expires_at: datetime | None


class Ticket(Struct, forbid_unknown_fields=True):
    id: uuid.UUID
    content_id: str
    content_url: str | None
    source: Annotated[Source, Meta(description="What opened the ticket.")]
    state: State
    priority: Annotated[int, Meta(ge=1, le=4, description="1 is the most urgent.")]
    received_at: datetime | None
    due_at: Annotated[datetime | None, Meta(description="Per source (HASHGUARD_DUE_*_H), or an order's deadline.")]
    overdue: bool
    automated_detection: bool
    lease: Annotated[Lease | None, Meta(description="Null when unclaimed or expired.")]
    action: Action | None
    decided_at: datetime | None
    first_action_at: datetime | None
    sightings: Annotated[int, Meta(description="Scans and lookups that matched this content.")]
    notices: Annotated[int, Meta(description="Notices received about this content.")]
    legal_hold: bool
    legal_hold_reason: str | None
    preserve_until: datetime | None
    evidence_purged_at: datetime | None
    updated_at: datetime | None


class Filed(Struct, forbid_unknown_fields=True):
    notice_id: int
    ticket_id: uuid.UUID
    attached: Annotated[bool, Meta(description="True when the notice joined the content's live ticket.")]
    ticket: Ticket


class TicketPage(Struct, forbid_unknown_fields=True):
    tickets: Annotated[list[Ticket], Meta(description="Most urgent first.")]
    limit: int
    offset: int


class Evidence(Struct, forbid_unknown_fields=True):
    """A match behind the ticket; never holds a list entry's hash."""

    scan_id: uuid.UUID
    hashset: str
    hashset_version: int
    entry_id: str
    tool: str
    tool_version: str
    distance: int
    approval_id: int | None
    approval_reason: Annotated[str | None, Meta(description="Why the tool was active when it matched.")]
    transform: Annotated[
        str,
        Meta(
            description="The query variant of the upload that matched: original, a mirror or rotation (mirror_h,"
            " mirror_v, rot90, rot180, rot270, transpose, transverse: the upload is the listed picture so transformed),"
            " trimmed (its border removed) or compat_* (the hash a quirky hasher would have made)."
        ),
    ]
    observed_at: datetime | None
    # Video (vpdq) evidence: how much of each video matched. Absent for image and exact matches.
    query_share: Annotated[float, Meta(description="Video matches: percent of the upload's frames that matched.")] | UnsetType = (
        UNSET
    )
    index_share: (
        Annotated[float, Meta(description="Video matches: percent of the listed video's frames matched.")] | UnsetType
    ) = UNSET
    matched_frames: Annotated[int, Meta(description="Video matches: upload frames that matched.")] | UnsetType = UNSET


class DecisionRecord(Struct, forbid_unknown_fields=True):
    from_: State = field(name="from")
    to: State
    action: Action | None
    ground: str | None
    legal_ground: str | None
    explanation: str | None
    reported_to: str | None
    report_reference: str | None
    automated_detection: bool
    automated_decision: bool
    decided_by: str | None
    decided_at: datetime | None


class TicketDetail(Ticket, forbid_unknown_fields=True):
    evidence: list[Evidence]
    notice_records: list[dict[str, Any]]
    decisions: list[DecisionRecord]
    deliveries: Annotated[list[dict[str, Any]], Meta(description="The platform actions queued and their delivery.")]
    reports: Annotated[list[HotlineReport], Meta(description="The hotline reports hashguard files for this ticket.")]


class Claimed(Struct, forbid_unknown_fields=True):
    ticket: Annotated[Ticket | None, Meta(description="Null when the queue is empty.")]


class Retried(Struct, forbid_unknown_fields=True):
    retried: int


class Policy(Struct, forbid_unknown_fields=True):
    hashset: str
    tool: str
    auto_action: bool
    action: Restriction


class Policies(Struct, forbid_unknown_fields=True):
    policies: list[Policy]


class AuditEntry(Struct, forbid_unknown_fields=True):
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str
    prev_hash: str


class AuditPage(Struct, forbid_unknown_fields=True):
    entries: list[AuditEntry]
    next_after: Annotated[
        int,
        Meta(
            description="Pass as ?after= for the next page: the last sequence number read. A key limited to "
            "tenants sees only its tenants' ticket entries, so a page may hold fewer entries than were read."
        ),
    ]


Statement = Annotated[
    dict[str, Any],
    Meta(
        title="Statement",
        description="DSA Art 17 statement of reasons: restriction, facts, automated means, ground, redress; "
        "plus the same decision in DSA Transparency Database field names (transparency_database).",
    ),
]
Transparency = Annotated[
    dict[str, Any],
    Meta(
        title="Transparency",
        description="Notices received by source; actions by action and source; automated detection and decision counts "
        "and automated detections overturned by people; median seconds from receipt to action; complaints, their "
        "outcomes and median decision time; reversals; reports filed by hotline.",
    ),
]
