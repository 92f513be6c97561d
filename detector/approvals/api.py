"""The declared request and response types of the tool registry's admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, Struct

from detector.api import Activation
from detector.tools.base import IndexKind, ToolKind
from detector.tools.policy import ApprovalStatus
from kernel.api import NO_NUL, NOT_BLANK, Moment, checked_moment

TOOL_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_EVENTS = 1000

ApprovalId = Annotated[int, Meta(ge=0, le=10**18 - 1)]
ToolName = Annotated[str, Meta(pattern=TOOL_NAME, description="A tool name, e.g. pdq.")]
# The registry's own text rule (detector.tools.policy.check_text): at most 2000 characters, no NUL.
RegistryText = Annotated[str, Meta(max_length=2000, pattern=NO_NUL)]
RequiredText = Annotated[str, Meta(min_length=1, max_length=2000, pattern=NOT_BLANK)]
Versions = Annotated[str, Meta(description="'*' or a PEP 440 range of the tool's release, e.g. '>=0.2,<0.3'.")]


class ToolQuery(Struct):
    tool: ToolName | None = None


class EventsQuery(Struct):
    tool: ToolName | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_EVENTS)] = 100


class Tool(Struct, forbid_unknown_fields=True):
    name: str
    version: str
    kind: ToolKind
    bits: int
    default_threshold: int
    threshold: int
    index: IndexKind
    media_types: list[str]
    description: str
    implementation: str
    activation: Activation | None


class Tools(Struct, forbid_unknown_fields=True):
    tools: list[Tool]


class Approval(Struct, forbid_unknown_fields=True):
    id: int
    tool: str
    versions: Versions
    authority: Annotated[str, Meta(description="e.g. Ofcom, eSafety.")]
    jurisdiction: Annotated[str, Meta(description="e.g. GB, AU, EU; compared with HASHGUARD_JURISDICTIONS.")]
    instrument: Annotated[str, Meta(description="The notice, code or decision, e.g. 'OSA s.121 accreditation'.")]
    scope: Annotated[list[str], Meta(description="Content categories, e.g. csam_known.")]
    status: ApprovalStatus
    valid_from: datetime
    valid_until: datetime | None
    accuracy_statement: str
    accuracy_reference: str
    evidence_url: str
    created_at: datetime
    updated_at: datetime


class Approvals(Struct, forbid_unknown_fields=True):
    approvals: list[Approval]


class NewApproval(Struct, forbid_unknown_fields=True):
    """An authority's approval of a tool, to record. Checked further by ``NewApproval.checked``."""

    tool: ToolName
    authority: RequiredText
    jurisdiction: Annotated[str, Meta(pattern=r"^\s*[A-Za-z][A-Za-z0-9-]{1,15}\s*$", description="e.g. GB, AU, EU, US-CA.")]
    instrument: RequiredText
    versions: Versions = "*"
    scope: Annotated[list[RequiredText], Meta(description="Content categories, e.g. csam_known.")] = []
    status: Annotated[ApprovalStatus, Meta(description="A new approval is approved, recommended, permitted or proposed.")] = (
        ApprovalStatus.APPROVED
    )
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    accuracy_statement: RegistryText = ""
    accuracy_reference: RegistryText = ""
    evidence_url: Annotated[str, Meta(max_length=2000, pattern=r"^(\s*(https?://[^\x00]*)?)$")] = ""

    def __post_init__(self) -> None:
        self.valid_from = checked_moment("valid_from", self.valid_from)
        self.valid_until = checked_moment("valid_until", self.valid_until)


class StatusChange(Struct):
    status: ApprovalStatus
    note: RegistryText = ""


class Allowance(Struct, forbid_unknown_fields=True):
    id: int
    tool: str
    versions: str
    reason: str
    allowed_by: str
    allowed_at: datetime


class RevokedAllowance(Allowance, forbid_unknown_fields=True):
    revoked: bool


class Allowances(Struct, forbid_unknown_fields=True):
    allowances: list[Allowance]


class AllowLocal(Struct):
    tool: ToolName
    reason: RequiredText
    versions: Versions = "*"


class Event(Struct, forbid_unknown_fields=True):
    id: int
    at: datetime
    actor: str
    action: str
    tool: str
    approval_id: int | None
    local_allowance_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Events(Struct, forbid_unknown_fields=True):
    events: list[Event]
