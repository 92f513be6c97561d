"""The declared JSON bodies and queries staff and platforms send, and their checks beyond the types.
Pure: ``kernel.routes`` decodes a body into these Structs (types, required fields, lengths, no NUL,
enum members); the functions here apply the rules that span fields and raise ``InvalidInput`` with a
message that names the field, before anything is written."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from msgspec import Meta, Struct, field

from kernel.api import MOMENT_RULE, checked_moment, moment, optional_text, text, trimmed
from takedown.errors import InvalidInput
from takedown.tickets import DecisionInput, Notice
from takedown.workflow import RESTRICTIONS, Action, Source, State

E = TypeVar("E", bound=StrEnum)

MAX_TEXT = 5000
MAX_SHORT = 1024
MAX_PAGE = 500


class ContentType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    OTHER = "other"


class Ground(StrEnum):
    ILLEGAL_CONTENT = "illegal_content"
    INCOMPATIBLE_CONTENT = "incompatible_content"


CONTENT_TYPES = frozenset(c.value for c in ContentType)
GROUNDS = frozenset(g.value for g in Ground)

Short = Annotated[str, text(MAX_SHORT)]
Long = Annotated[str, text(MAX_TEXT)]
OptionalShort = Annotated[str, optional_text(MAX_SHORT)]
OptionalLong = Annotated[str, optional_text(MAX_TEXT)]
Moment = Annotated[datetime, moment(MOMENT_RULE)]  # the one timestamp rule (kernel.api)


# The enum members a request may name, where the request takes fewer than the enum holds.
NOTICE_SOURCES = [s.value for s in Source if s is not Source.HASH_MATCH]
DECISIONS = [s.value for s in (State.ACTIONED, State.DISMISSED, State.REINSTATED, State.UPHELD)]
RESTRICTION_NAMES = sorted(a.value for a in RESTRICTIONS)


class Notifier(Struct):
    """Optional: CSAM notices may be anonymous (DSA Art 16(2)(c))."""

    name: OptionalShort | None = None
    email: OptionalShort | None = None


class Authority(Struct):
    """The order behind a notice with source authority_order."""

    name: Short
    reference: Short
    deadline: Annotated[Moment | None, Meta(description="The order's legal deadline.")] = None

    def __post_init__(self) -> None:
        self.deadline = checked_moment("deadline", self.deadline)


class NoticeBody(Struct):
    source: Annotated[
        Source,
        Meta(
            description="What the notice is; hash matches open tickets through /v1/scan and /v1/lookup.",
            extra_json_schema={"enum": NOTICE_SOURCES},
        ),
    ]
    content_id: Short
    content_url: OptionalShort | None = None
    explanation: Annotated[OptionalLong, Meta(description="Why the content is illegal (required except for orders).")] | None = (
        None
    )
    content_type: ContentType | None = None
    notifier: Notifier | None = None
    authority: Authority | None = None
    bona_fide: Annotated[bool, Meta(description="The notifier confirms the notice is accurate and complete.")] = False


class DecisionBody(Struct):
    decision: Annotated[
        State,
        Meta(
            description="actioned/dismissed for a ticket in review; reinstated/upheld for an appeal.",
            extra_json_schema={"enum": DECISIONS},
        ),
    ]
    explanation: Long
    action: Annotated[
        Action | None,
        Meta(description="With actioned; default remove.", extra_json_schema={"enum": [*RESTRICTION_NAMES, None]}),
    ] = None
    ground: Ground | None = None
    legal_ground: Annotated[str, optional_text(500)] | None = None


class ReportBody(Struct):
    hotline: Annotated[Short, Meta(description="e.g. NCMEC.")]
    reference: Annotated[OptionalShort, Meta(description="The report's id at the hotline.")] | None = None


class AppealBody(Struct):
    explanation: Long


class CloseBody(Struct):
    explanation: OptionalLong | None = None


class AssignBody(Struct):
    key_prefix: Annotated[Long, Meta(description="The printable prefix of the reviewer's key.")]


class LegalHoldBody(Struct):
    hold: bool
    reason: Annotated[OptionalLong, Meta(description="Required when placing a hold.")] | None = None


class PolicyBody(Struct):
    hashset: Long
    auto_action: Annotated[bool, Meta(description="Lets the list's matches be actioned without a reviewer.")]
    tool: OptionalLong | None = "*"
    action: Annotated[Action, Meta(extra_json_schema={"enum": RESTRICTION_NAMES})] = Action.REMOVE


def _list_of(*members: StrEnum) -> str:
    one = "|".join(m.value for m in members)
    return rf"^\s*({one})\s*(,\s*({one})?\s*)*$"


class TicketQuery(Struct):
    state: Annotated[str, Meta(pattern=_list_of(*State), description="Comma-separated states.")] | None = None
    source: Annotated[str, Meta(pattern=_list_of(*Source), description="Comma-separated sources.")] | None = None
    priority: Annotated[int, Meta(ge=1, le=4)] | None = None
    overdue: bool | None = None
    content_id: OptionalShort | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 50
    offset: Annotated[int, Meta(ge=0, le=10_000_000)] = 0


class AuditQuery(Struct):
    after: Annotated[int, Meta(ge=0, le=2**62, description="Entries after this sequence number.")] = 0
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 100
    subject: Annotated[OptionalShort, Meta(description="e.g. ticket:<id>")] | None = None


class TransparencyQuery(Struct):
    from_: Annotated[str, Meta(description="ISO 8601 date or timestamp; default the start of the year of 'to'.")] | None = field(
        default=None, name="from"
    )
    to: Annotated[str, Meta(description="ISO 8601 date or timestamp; default now.")] | None = None
    tenant: Annotated[OptionalShort, Meta(description="One tenant's figures (default: every tenant the key may see).")] | None = (
        None
    )


class TransparencyExportQuery(TransparencyQuery, kw_only=True):
    format: Annotated[
        Literal["csv", "dsa-2024-2835", "eu-2021-1232"],
        Meta(
            description="csv: every figure as figure,value; dsa-2024-2835: the Implementing Regulation's template "
            "sections 1.2-1.6; eu-2021-1232: the annual report on voluntary detection."
        ),
    ]


def enum_list(raw: str | None, kind: type[E]) -> list[E] | None:
    """A comma-separated query value (already checked against its pattern) as enum members."""
    if not raw:
        return None
    return [kind(part.strip()) for part in raw.split(",") if part.strip()]


def parse_notice(body: NoticeBody) -> Notice:
    """A notice that is not a hash match. Notifier contact is optional (CSAM notices may be anonymous)."""
    source = body.source
    if source is Source.HASH_MATCH:
        raise InvalidInput("hash matches open tickets through /v1/scan and /v1/lookup, not as notices")
    authority = body.authority
    if source is Source.AUTHORITY_ORDER:
        if authority is None:
            raise InvalidInput("'authority' (name, reference and deadline of the order) is required for source 'authority_order'")
    elif authority is not None:
        raise InvalidInput("'authority' is only for notices with source 'authority_order'")
    explanation = trimmed(body.explanation)
    if explanation is None and source is not Source.AUTHORITY_ORDER:
        raise InvalidInput("the field 'explanation' is required")
    notifier = body.notifier
    return Notice(
        source=source,
        content_id=body.content_id.strip(),
        content_url=trimmed(body.content_url),
        explanation=explanation,
        content_type=body.content_type.value if body.content_type else None,
        notifier_name=trimmed(notifier.name) if notifier else None,
        notifier_email=trimmed(notifier.email) if notifier else None,
        authority=authority.name.strip() if authority else None,
        authority_reference=authority.reference.strip() if authority else None,
        legal_deadline=authority.deadline if authority else None,
        bona_fide=body.bona_fide,
    )


def parse_decision(body: DecisionBody) -> DecisionInput:
    """``{"decision": "actioned"|"dismissed"|"reinstated"|"upheld", "action", "ground", "legal_ground", "explanation"}``."""
    to, action = body.decision, body.action
    if to is State.ACTIONED:
        action = action or Action.REMOVE
        if action not in RESTRICTIONS:
            raise InvalidInput(f"'action' must be one of: {', '.join(sorted(a.value for a in RESTRICTIONS))}")
    elif action is not None:
        raise InvalidInput("'action' is given only with the decision 'actioned'")
    return DecisionInput(
        to=to,
        action=action,
        ground=body.ground.value if body.ground else None,
        legal_ground=trimmed(body.legal_ground),
        explanation=body.explanation.strip(),
    )


def parse_report(body: ReportBody) -> tuple[str, str | None]:
    """``{"hotline": "NCMEC", "reference": "<report id>"}``: where the ticket was reported."""
    return body.hotline.strip(), trimmed(body.reference)


def parse_hold(body: LegalHoldBody) -> tuple[bool, str | None]:
    reason = trimmed(body.reason)
    if body.hold and reason is None:
        raise InvalidInput("the field 'reason' is required")
    return body.hold, reason


def parse_policy(body: PolicyBody) -> tuple[str, str, bool, Action]:
    """A list's automation policy: (hashset, tool or '*', auto_action, action)."""
    if body.action not in RESTRICTIONS:
        raise InvalidInput("'action' must be one of: block, remove, restrict")
    return body.hashset.strip(), trimmed(body.tool) or "*", body.auto_action, body.action
