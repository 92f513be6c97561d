"""The declared request and response types of the detector's endpoints (scan, lookup, health).

Requests are decoded straight into these Structs by ``kernel.routes``; responses are described by
them in the OpenAPI document, and the schema conformance test holds the handlers to them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from detector.tools.policy import Reason
from kernel.api import OptionalText, checked_text, fast_optional_text, fast_text

MAX_LOOKUP_ITEMS = 1000
# The transform values a match may carry (detector.variants.ORIGINAL and VARIANTS; a unit test holds them equal).
Transform = Literal[
    "original",
    "rot90",
    "rot180",
    "rot270",
    "mirror_h",
    "mirror_v",
    "transpose",
    "transverse",
    "trimmed",
    "compat_cmyk",
    "compat_palette",
    "compat_grey16",
]
MAX_VPDQ_FRAMES = 20_000
HEX = r"^(0x)?[0-9a-fA-F]+$"


class ScanQuery(Struct):
    """The metadata of a scan, as query parameters (or as form fields of a multipart upload)."""

    content_id: (
        Annotated[OptionalText, Meta(description="The platform's id of the item. Required, here or as a form field.")] | None
    ) = None
    content_url: OptionalText | None = None
    # The upload's account, when the platform knows it: case evidence for a hotline report (takedown.reports).
    uploader_account_id: OptionalText | None = None
    uploader_screen_name: OptionalText | None = None
    uploader_ip: Annotated[str, Meta(max_length=64, description="The upload's IPv4 or IPv6 address.")] | None = None
    uploader_port: Annotated[int, Meta(ge=1, le=65535, description="The upload's source port.")] | None = None
    upload_time: Annotated[str, Meta(max_length=64, description="When it was uploaded (ISO 8601 with offset).")] | None = None


UPLOADER_FIELDS = ("uploader_account_id", "uploader_screen_name", "uploader_ip", "uploader_port", "upload_time")


class Match(Struct, forbid_unknown_fields=True):
    hashset: Annotated[str, Meta(description="Name of the hash list that matched.")]
    hashset_version: Annotated[int, Meta(description="The list version the match was made against.")]
    entry_id: Annotated[str, Meta(description="The issuer's id of the matching entry (never its hash).")]
    tool: Annotated[str, Meta(description="Detection tool, e.g. pdq, phash, md5.")]
    tool_version: str
    approval_id: Annotated[
        int | None,
        Meta(description="The tool approval the match ran under (GET /v1/tools/approvals/{id}); null under a local allowance."),
    ]
    approval_reason: Annotated[
        Reason | None, Meta(description="Why the tool was active: approved, recommended, permitted or local_allowance.")
    ]
    transform: Annotated[
        Transform,
        Meta(
            description="Which query variant of the upload matched: original; a mirror or rotation (the upload is the"
            " listed picture mirror_h: flipped left-right, mirror_v: top-bottom, rot90/rot270: rotated 90 degrees"
            " counter-clockwise/clockwise, rot180, transpose/transverse: reflected about a diagonal); trimmed (its"
            " border removed); compat_cmyk, compat_palette, compat_grey16 (the hash python-threatexchange makes of"
            " such files). Hash lookups always answer original."
        ),
    ]
    # Absent by default: distances read list entries back (one flipped bit per call recovers an entry's
    # hash). Given only to keys granted them (hashguard keys grant-distances, recorded in the audit log).
    distance: (
        Annotated[
            int,
            Meta(
                ge=0,
                description="Hamming distance between the upload's hash and the entry (0 for exact tools). Only for"
                " keys granted distances (hashguard keys grant-distances); absent otherwise.",
            ),
        ]
        | UnsetType
    ) = UNSET
    query_share: (
        Annotated[float, Meta(ge=0, le=100, description="Video (vpdq) matches: percent of the upload's frames that matched.")]
        | UnsetType
    ) = UNSET
    index_share: (
        Annotated[float, Meta(ge=0, le=100, description="Video (vpdq) matches: percent of the listed video's frames matched.")]
        | UnsetType
    ) = UNSET
    matched_frames: Annotated[int, Meta(ge=0, description="Video (vpdq) matches: upload frames that matched.")] | UnsetType = (
        UNSET
    )


class Verdict(Struct, forbid_unknown_fields=True):
    scan_id: uuid.UUID
    content_id: str
    verdict: Literal["match", "no_match"]
    matches: list[Match]
    ticket_id: Annotated[str | None, Meta(description="The takedown ticket opened or joined for a match; null for no match.")]
    elapsed_ms: float


class BatchVerdict(Struct, forbid_unknown_fields=True):
    items: Annotated[list[Verdict], Meta(description="One verdict per item, in the order sent.")]
    elapsed_ms: float


class LookupItem(Struct):
    """Hashes a platform computed itself, for one item. The text rule is checked in ``__post_init__``
    (``kernel.api.fast_text``): this is the type a 1,000-item batch decodes into."""

    content_id: Annotated[str, fast_text()]
    hashes: Annotated[
        dict[str, str],
        Meta(
            min_length=1,
            description='Tool name to hex hash, e.g. {"pdq": "<64 hex digits>", "md5": "<32 hex digits>"}.',
            extra_json_schema={"additionalProperties": {"type": "string", "pattern": HEX}},
        ),
    ] = msgspec.field(default_factory=dict)
    content_url: Annotated[str, fast_optional_text()] | None = None
    vpdq: (
        Annotated[
            list[
                tuple[
                    Annotated[int, Meta(ge=0)],
                    Annotated[int, Meta(ge=0, le=100)],
                    Annotated[str, Meta(pattern=HEX)],
                    Annotated[float, Meta(ge=0)],
                ]
            ],
            Meta(
                min_length=1,
                max_length=MAX_VPDQ_FRAMES,
                description="A video's vPDQ hash computed by the platform: [[frame_number, quality, pdq_hex, timestamp_seconds], ...].",
            ),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        if not self.hashes and not self.vpdq:
            raise ValueError("the field 'hashes' is required")  # (or 'vpdq'): kernel.routes answers missing_field
        self.content_id = checked_text("content_id", self.content_id, required=True) or ""
        self.content_url = checked_text("content_url", self.content_url, required=False)


class LookupBatch(Struct):
    items: Annotated[list[LookupItem], Meta(min_length=1, max_length=MAX_LOOKUP_ITEMS)]


class LookupProbe(Struct):
    """Only whether a lookup body is a batch: decoded first, without building anything."""

    items: msgspec.Raw | UnsetType = UNSET


class Health(Struct, forbid_unknown_fields=True):
    status: Literal["ok"]


class LoadedList(Struct, forbid_unknown_fields=True):
    name: str
    version: int
    tool: str
    entries: int
    status: Annotated[str, Meta(description="active, or shadow: matched and recorded, never answered as a match.")]


class CoverageGap(Struct, forbid_unknown_fields=True):
    name: str
    version: int
    tool: str
    entries: int


class IndexState(Struct, forbid_unknown_fields=True):
    loaded_at: datetime
    entries_by_tool: dict[str, int]
    hashsets: list[LoadedList]
    coverage_gaps: Annotated[list[CoverageGap], Meta(description="Lists in a hash type no enabled tool computes.")]


class Activation(Struct, forbid_unknown_fields=True):
    """Whether an installed tool scans here, and why."""

    tool: str
    version: str
    active: bool
    reason: Reason
    approval_id: int | None
    local_allowance_id: int | None
    detail: str


class ExchangeFreshness(Struct, forbid_unknown_fields=True):
    name: str
    kind: str
    paused: bool
    last_page_at: Annotated[str | None, Meta(description="When a page was last applied (ISO 8601).")]
    lag_s: Annotated[float | None, Meta(description="Seconds between now and how far the source has been read.")]
    entries_fetched: int
    quarantined: Annotated[int, Meta(description="Unreadable pages and entries not yet resolved.")]
    last_error_kind: str | None


class WorkerIdentity(Struct, forbid_unknown_fields=True):
    index: Annotated[int, Meta(description="Which worker process of the replica answered (0-based; never a pid).")]
    of: Annotated[int, Meta(description="How many worker processes the replica runs (hashguard serve --workers).")]


class Readiness(Struct, forbid_unknown_fields=True):
    status: Literal["ready", "not_ready"]
    problems: list[str]
    index: IndexState | UnsetType = UNSET
    tools: list[Activation] | UnsetType = UNSET
    exchanges: Annotated[list[ExchangeFreshness], Meta(description="Hash-sharing sources' freshness.")] | UnsetType = UNSET
    worker: Annotated[WorkerIdentity, Meta(description="Present when the replica runs several workers.")] | UnsetType = UNSET
