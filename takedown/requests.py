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
from takedown.reports.case import Review, Uploader
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


class UploaderBody(Struct):
    """What the platform knows of the upload's account: case evidence for a hotline report
    (personOrUserReported, ipCaptureEvent), purged with the ticket's evidence."""

    account_id: Annotated[OptionalShort, Meta(description="The platform's id of the uploading account.")] | None = None
    screen_name: OptionalShort | None = None
    ip: Annotated[str, optional_text(64), Meta(description="The upload's IPv4 or IPv6 address.")] | None = None
    port: Annotated[int, Meta(ge=1, le=65535, description="The upload's source port.")] | None = None
    upload_time: Annotated[Moment | None, Meta(description="When the file was uploaded to the platform.")] = None

    def __post_init__(self) -> None:
        self.upload_time = checked_moment("uploader.upload_time", self.upload_time)


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
    uploader: Annotated[UploaderBody | None, Meta(description="The upload's account, when the platform knows it.")] = None


class IwfCategory(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class IccamVerdict(StrEnum):
    BASELINE = "baseline"
    NATIONAL = "national"
    NOT_ILLEGAL = "not_illegal"


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
    # What the hotline report says of the review (actioned or upheld only).
    file_viewed: Annotated[bool, Meta(description="A person viewed the entire file (fileViewedByEsp).")] = False
    exif_viewed: Annotated[bool, Meta(description="A person viewed its EXIF data; only with file_viewed.")] = False
    escalate: Annotated[OptionalShort, Meta(description="Why the hotline report is urgent (escalateToHighPriority).")] | None = (
        None
    )
    viral: Annotated[bool, Meta(description="The item is viral: the NCMEC report uses the batched viral form.")] = False
    potential_meme: Annotated[bool, Meta(description="The item is a potential meme (batched form).")] = False
    uk_priority: (
        Annotated[
            int, Meta(ge=1, le=3, description="NCA priority: 1 immediately, 2 as soon as practicable, 3 without undue delay.")
        ]
        | None
    ) = None
    iwf_category: Annotated[IwfCategory | None, Meta(description="The reviewer's IWF category.")] = None
    iccam_verdict: Annotated[IccamVerdict | None, Meta(description="INTERPOL baseline, nationally illegal or not illegal.")] = (
        None
    )


class ReportBody(Struct):
    hotline: Annotated[Short, Meta(description="e.g. ncmec. Without 'reference' hashguard files the report itself (ncmec only).")]
    reference: (
        Annotated[OptionalShort, Meta(description="The report's id at the hotline, when it was filed elsewhere.")] | None
    ) = None


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


def parse_uploader(body: UploaderBody | None) -> Uploader | None:
    if body is None:
        return None
    try:
        return Uploader(
            account_id=trimmed(body.account_id),
            screen_name=trimmed(body.screen_name),
            ip=trimmed(body.ip),
            port=body.port,
            upload_time=body.upload_time,
        )
    except ValueError:
        raise InvalidInput("'uploader.ip' must be an IPv4 or IPv6 address") from None


def parse_review(body: DecisionBody) -> Review | None:
    """The report flags of a decision; only an actioned or upheld decision (a confirmed item) takes them."""
    given = (
        body.file_viewed
        or body.exif_viewed
        or body.viral
        or body.potential_meme
        or trimmed(body.escalate) is not None
        or body.uk_priority is not None
        or body.iwf_category is not None
        or body.iccam_verdict is not None
    )
    if not given:
        return None
    if body.decision not in (State.ACTIONED, State.UPHELD):
        raise InvalidInput("the report flags (file_viewed, escalate, viral, ...) go with an 'actioned' or 'upheld' decision")
    if body.exif_viewed and not body.file_viewed:
        raise InvalidInput("'exif_viewed' requires 'file_viewed': EXIF data is viewed with the file")
    return Review(
        file_viewed=body.file_viewed,
        exif_viewed=body.exif_viewed,
        escalate=trimmed(body.escalate),
        viral=body.viral,
        potential_meme=body.potential_meme,
        uk_priority=body.uk_priority,
        iwf_category=body.iwf_category.value if body.iwf_category else None,
        iccam_verdict=body.iccam_verdict.value if body.iccam_verdict else None,
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
