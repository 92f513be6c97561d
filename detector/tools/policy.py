"""Which installed tools may scan: the approval policy. Pure: records in, decisions out.

A tool scans only while (a) some approval in one of the deployment's jurisdictions covers it
— status approved, recommended or permitted, valid now, the installed version inside the
approved range — or (b) an admin has allowed it locally, which is recorded as exactly that and
never dressed up as an approval. A suspension or withdrawal in a declared jurisdiction beats
a local allowance: an admin cannot keep using locally what a regulator has just stopped, only
another authority's current approval can keep the tool running.

Every decision carries its reason and the approval (or allowance) it rests on, so a match can
record the approval it ran under and ``/readyz`` and ``/metrics`` can say why a tool is on or off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from detector.errors import DetectorError
from kernel.api import MOMENT_RULE, moment_problem
from kernel.errors import BadRequest


class ApprovalStatus(StrEnum):
    """An authority's position on a tool (mirrors the PostgreSQL enum ``tool_approval_status``)."""

    APPROVED = "approved"  # e.g. accredited against a minimum accuracy standard
    RECOMMENDED = "recommended"  # e.g. a code of practice recommends the technique
    PERMITTED = "permitted"  # e.g. a derogation allows it under safeguards
    PROPOSED = "proposed"  # under consultation: recorded, never enough to scan
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"


COVERING: frozenset[ApprovalStatus] = frozenset({ApprovalStatus.APPROVED, ApprovalStatus.RECOMMENDED, ApprovalStatus.PERMITTED})
_STRENGTH = {ApprovalStatus.APPROVED: 0, ApprovalStatus.RECOMMENDED: 1, ApprovalStatus.PERMITTED: 2}

# Allowed status changes of one approval record. Withdrawn is final: a tool approved again
# later gets a new record, so the history of what was withdrawn stays readable.
TRANSITIONS: Mapping[ApprovalStatus, frozenset[ApprovalStatus]] = {
    ApprovalStatus.PROPOSED: frozenset(COVERING | {ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN}),
    ApprovalStatus.APPROVED: frozenset({ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN}),
    ApprovalStatus.RECOMMENDED: frozenset({ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN}),
    ApprovalStatus.PERMITTED: frozenset({ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN}),
    ApprovalStatus.SUSPENDED: frozenset(COVERING | {ApprovalStatus.WITHDRAWN}),
    ApprovalStatus.WITHDRAWN: frozenset(),
}


class Reason(StrEnum):
    """Why a tool is active or not (the ``reason`` label of ``hashguard_tool_active``)."""

    APPROVED = "approved"
    RECOMMENDED = "recommended"
    PERMITTED = "permitted"
    LOCAL_ALLOWANCE = "local_allowance"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    PROPOSED = "proposed"
    VERSION_NOT_COVERED = "version_not_covered"
    NO_APPROVAL = "no_approval"
    UNREADABLE_APPROVAL = "unreadable_approval"
    NO_LEGAL_BASIS = "no_legal_basis"  # the deployment serves the EU and no EU basis for voluntary detection is recorded


# The EU and its member states: a deployment naming any of them serves EU users, whose voluntary
# detection needs an EU legal basis (Reg. 2021/1232 was it until it lapsed on 3 April 2026).
EU_JURISDICTIONS = frozenset(
    {
        "EU", "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR",
        "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip


def eu_detection_halt(jurisdictions: Iterable[str], basis: str | None) -> str | None:
    """Why no tool may scan for lack of an EU legal basis, or None.

    Fail closed: a deployment that serves the EU (or a member state) with no recorded basis
    (HASHGUARD_EU_VOLUNTARY_DETECTION_BASIS) stops every tool, local allowances included, since its
    scans cannot tell EU users from others. A deployment serving no EU jurisdiction is unaffected.
    """
    eu = sorted({normalise_jurisdiction(j) for j in jurisdictions} & EU_JURISDICTIONS)
    if not eu or (basis and basis.strip()):
        return None
    return (
        f"the deployment serves {', '.join(eu)} and no EU legal basis for voluntary detection is recorded"
        " (Reg. 2021/1232 lapsed on 3 April 2026; set HASHGUARD_EU_VOLUNTARY_DETECTION_BASIS to the basis relied on)"
    )


# The closed window an unreadable approval is given in place of its dates (never "now").
UNREADABLE_WINDOW = timedelta(microseconds=1)


class InvalidVersionSpec(BadRequest):
    """The version range is not '*' or a PEP 440 specifier such as '>=0.2,<0.3'."""

    code = "invalid_version_spec"


class InvalidTransition(DetectorError):
    """The approval cannot move to that status."""

    status = 409
    code = "invalid_transition"

    def __init__(self, from_: ApprovalStatus, to: ApprovalStatus) -> None:
        self.from_, self.to = from_, to
        allowed = ", ".join(sorted(TRANSITIONS[from_])) or "none: withdrawn is final, record a new approval"
        super().__init__(f"an approval that is {from_} cannot become {to} (allowed: {allowed})")


class ToolNotActive(BadRequest):
    """The tool is installed but not active in this deployment."""

    code = "tool_not_active"

    def __init__(self, tool: str, reason: str, active: Iterable[str]) -> None:
        self.tool, self.reason = tool, reason
        names = ", ".join(sorted(active)) or "none"
        super().__init__(f"the tool {tool!r} is not active here ({reason}); active tools: {names}")


def check_transition(from_: ApprovalStatus, to: ApprovalStatus) -> None:
    if to not in TRANSITIONS[from_]:
        raise InvalidTransition(from_, to)


def release(version: str) -> str:
    """The comparable part of a tool version: 'pdqhash-0.2.5' -> '0.2.5', '1' -> '1'."""
    return version.rsplit("-", 1)[-1]


def check_version_spec(spec: str) -> str:
    """Validate a version range; return it stripped. '*' means every version."""
    spec = spec.strip()
    if spec == "*":
        return spec
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise InvalidVersionSpec(f"the version range {spec!r} is not '*' or a PEP 440 specifier such as '>=0.2,<0.3'") from None
    if not spec:
        raise InvalidVersionSpec()
    return spec


def version_matches(spec: str, version: str) -> bool:
    """Whether ``version`` of a tool lies in the range ``spec`` (compared on its release part)."""
    if spec.strip() == "*":
        return True
    try:
        return Version(release(version)) in SpecifierSet(spec)
    except (InvalidVersion, InvalidSpecifier):
        # A version that is not PEP 440 can only be covered by '*': never guess an order.
        return False


def normalise_jurisdiction(code: str) -> str:
    return code.strip().upper()


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval:
    """One authority's position on one tool under one instrument, in one jurisdiction."""

    id: int
    tool: str
    versions: str
    authority: str
    jurisdiction: str
    instrument: str
    scope: tuple[str, ...]
    status: ApprovalStatus
    valid_from: datetime
    valid_until: datetime | None
    accuracy_statement: str
    accuracy_reference: str
    evidence_url: str
    created_at: datetime
    updated_at: datetime
    # Why the stored record cannot be decided on (dates outside the timestamp rule), or None.
    problem: str | None = None


def approval_problem(approval: Approval) -> str | None:
    """Why an approval cannot be compared with now: unreadable as stored, or a moment that breaks the
    timestamp rule (a naive one would make every comparison raise). None when it can."""
    if approval.problem is not None:
        return approval.problem
    for label, moment in (("valid_from", approval.valid_from), ("valid_until", approval.valid_until)):
        if moment is not None and (problem := moment_problem(moment)) is not None:
            return f"its {label} {problem}"
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class LocalAllowance:
    """An admin's explicit, recorded decision to run a tool that no approval covers here."""

    id: int
    tool: str
    versions: str
    reason: str
    allowed_by: str
    allowed_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Activation:
    """The policy's decision for one installed tool."""

    tool: str
    version: str
    active: bool
    reason: Reason
    approval_id: int | None = None
    allowance_id: int | None = None
    detail: str = ""


def _covers_now(approval: Approval, now: datetime) -> bool:
    return approval.valid_from <= now and (approval.valid_until is None or now < approval.valid_until)


def decide(
    *,
    tool: str,
    version: str,
    approvals: Iterable[Approval],
    allowances: Iterable[LocalAllowance],
    jurisdictions: Iterable[str],
    now: datetime,
    halt: str | None = None,
) -> Activation:
    """Decide whether ``tool`` at ``version`` may scan now in a deployment serving ``jurisdictions``.

    ``halt``: why no tool may scan whatever the approvals say (``eu_detection_halt``), or None."""
    if halt is not None:
        return Activation(tool=tool, version=version, active=False, reason=Reason.NO_LEGAL_BASIS, detail=halt)
    places = {normalise_jurisdiction(j) for j in jurisdictions}
    mine = [a for a in approvals if a.tool == tool and normalise_jurisdiction(a.jurisdiction) in places]
    in_range = [a for a in mine if version_matches(a.versions, version)]
    # Fail closed: a covering approval here whose dates cannot be compared with now may or may not be in
    # force, so neither it, another approval nor a local allowance keeps the tool scanning; the other
    # records still decide every other tool, and the reload goes on. Withdrawing it (a suspension or
    # withdrawal stops the tool whatever its dates) and recording a new approval brings the tool back.
    unreadable = [(a, p) for a in in_range if a.status in COVERING and (p := approval_problem(a)) is not None]
    if unreadable:
        bad, problem = unreadable[0]
        return Activation(
            tool=tool,
            version=version,
            active=False,
            reason=Reason.UNREADABLE_APPROVAL,
            approval_id=bad.id,
            detail=f"approval {bad.id} cannot be read: {problem}; correct or withdraw it and record a new one",
        )
    covering = sorted(
        (a for a in in_range if a.status in COVERING and _covers_now(a, now)), key=lambda a: (_STRENGTH[a.status], a.id)
    )
    if covering:
        best = covering[0]
        return Activation(
            tool=tool,
            version=version,
            active=True,
            reason=Reason(best.status.value),
            approval_id=best.id,
            detail=f"{best.authority} ({best.jurisdiction}): {best.instrument}",
        )
    stopped = sorted(
        (a for a in in_range if a.status in (ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN)), key=lambda a: a.id
    )
    if stopped:
        last = stopped[-1]
        return Activation(
            tool=tool,
            version=version,
            active=False,
            reason=Reason(last.status.value),
            approval_id=last.id,
            detail=f"{last.authority} ({last.jurisdiction}) {last.status} approval {last.id}; a local allowance cannot override it",
        )
    for allowance in sorted(allowances, key=lambda a: a.id):
        if allowance.tool == tool and version_matches(allowance.versions, version):
            return Activation(
                tool=tool,
                version=version,
                active=True,
                reason=Reason.LOCAL_ALLOWANCE,
                allowance_id=allowance.id,
                detail=f"allowed locally by {allowance.allowed_by}: {allowance.reason}",
            )
    return _why_not(tool, version, mine, in_range, places, now)


def _why_not(
    tool: str, version: str, mine: list[Approval], in_range: list[Approval], places: set[str], now: datetime
) -> Activation:
    def inactive(reason: Reason, detail: str, approval: Approval | None = None) -> Activation:
        return Activation(
            tool=tool, version=version, active=False, reason=reason, approval_id=approval.id if approval else None, detail=detail
        )

    for a in in_range:
        if a.status in COVERING and a.valid_until is not None and a.valid_until <= now:
            return inactive(Reason.EXPIRED, f"approval {a.id} expired at {a.valid_until.isoformat()}", a)
    for a in in_range:
        if a.status in COVERING and a.valid_from > now:
            return inactive(Reason.NOT_YET_VALID, f"approval {a.id} is valid from {a.valid_from.isoformat()}", a)
    for a in in_range:
        if a.status is ApprovalStatus.PROPOSED:
            return inactive(Reason.PROPOSED, f"approval {a.id} is only proposed", a)
    if mine:
        return inactive(Reason.VERSION_NOT_COVERED, f"no approval here covers version {version}")
    where = ", ".join(sorted(places)) or "none declared (HASHGUARD_JURISDICTIONS is empty)"
    return inactive(Reason.NO_APPROVAL, f"no approval in the deployment's jurisdictions ({where}) and no local allowance")


def next_change(approvals: Iterable[Approval], now: datetime) -> datetime | None:
    """The next moment an approval starts or ends, when decisions may change without any write."""
    moments = [
        m for a in approvals if approval_problem(a) is None for m in (a.valid_from, a.valid_until) if m is not None and m > now
    ]
    return min(moments, default=None)


def decide_all(
    tools: Mapping[str, str],
    *,
    approvals: Iterable[Approval],
    allowances: Iterable[LocalAllowance],
    jurisdictions: Iterable[str],
    now: datetime,
    halt: str | None = None,
) -> dict[str, Activation]:
    """``decide`` for every installed tool (name -> version), in name order."""
    approvals, allowances, jurisdictions = list(approvals), list(allowances), list(jurisdictions)
    return {
        name: decide(
            tool=name,
            version=tools[name],
            approvals=approvals,
            allowances=allowances,
            jurisdictions=jurisdictions,
            now=now,
            halt=halt,
        )
        for name in sorted(tools)
    }


class ApprovalNotFound(DetectorError):
    """No tool approval has that id."""

    status = 404
    code = "approval_not_found"


class AllowanceNotFound(DetectorError):
    """No standing local allowance exists for that tool."""

    status = 404
    code = "allowance_not_found"


class AllowanceExists(DetectorError):
    """A standing local allowance for that tool already exists; revoke it first."""

    status = 409
    code = "allowance_exists"


_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_MAX_TEXT = 2000


_JURISDICTION = re.compile(r"[A-Z][A-Z0-9-]{1,15}")


def check_text(field: str, value: object, *, required: bool) -> str:
    """A free-text field: a string of at most 2000 characters, without NUL (PostgreSQL refuses it)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    if "\x00" in value:
        raise BadRequest(f"{field} must not contain NUL characters")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{field} is required")
    if len(value) > _MAX_TEXT:
        raise BadRequest(f"{field} is longer than {_MAX_TEXT} characters")
    return value


def check_tool_name(tool: object) -> str:
    if not isinstance(tool, str) or not _NAME.fullmatch(tool.strip()):
        raise BadRequest(f"tool must be a tool name matching {_NAME.pattern}")
    return tool.strip()


@dataclass(frozen=True, kw_only=True, slots=True)
class NewApproval:
    """A validated approval to record. Build it with ``NewApproval.checked``."""

    tool: str
    versions: str
    authority: str
    jurisdiction: str
    instrument: str
    scope: tuple[str, ...]
    status: ApprovalStatus
    valid_from: datetime | None
    valid_until: datetime | None
    accuracy_statement: str
    accuracy_reference: str
    evidence_url: str

    @classmethod
    def checked(
        cls,
        *,
        tool: object,
        authority: object,
        jurisdiction: object,
        instrument: object,
        status: object = ApprovalStatus.APPROVED.value,
        versions: object = "*",
        scope: object = (),
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        accuracy_statement: object = "",
        accuracy_reference: object = "",
        evidence_url: object = "",
    ) -> NewApproval:
        """Validate every field with a clear 4xx message; the one way user input becomes an approval."""
        try:
            parsed_status = ApprovalStatus(status)  # type: ignore[arg-type]
        except ValueError:
            raise BadRequest(f"status must be one of {', '.join(s.value for s in ApprovalStatus)}") from None
        if parsed_status in (ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN):
            raise BadRequest("a new approval cannot start suspended or withdrawn; suspend or withdraw an existing one")
        if not isinstance(scope, list | tuple) or not all(isinstance(s, str) and s.strip() for s in scope):
            raise BadRequest("scope must be a list of content categories, e.g. ['csam_known']")
        categories = tuple(sorted({check_text("scope", s, required=True) for s in scope}))
        place = normalise_jurisdiction(check_text("jurisdiction", jurisdiction, required=True))
        if not _JURISDICTION.fullmatch(place):
            raise BadRequest("jurisdiction must be a code such as GB, AU, EU or US-CA")
        # Pinned here rather than left to the database default so valid_until can be checked against it.
        valid_from = valid_from or datetime.now(UTC)
        # The one timestamp rule (kernel.api): an extreme date would be stored as +-infinity and read
        # back naive, and every reload would then fail on comparing it.
        for moment, label in ((valid_from, "valid_from"), (valid_until, "valid_until")):
            if moment is not None and (problem := moment_problem(moment)) is not None:
                raise BadRequest(f"{label} {problem}: give {MOMENT_RULE}")
        if valid_until is not None and valid_until <= valid_from:
            raise BadRequest("valid_until must be later than valid_from (default: now)")
        url = check_text("evidence_url", evidence_url, required=False)
        if url and not url.startswith(("https://", "http://")):
            raise BadRequest("evidence_url must be an http(s) URL")
        if not isinstance(versions, str):
            raise BadRequest("versions must be a string such as '*' or '>=0.2,<0.3'")
        return cls(
            tool=check_tool_name(tool),
            versions=check_version_spec(versions),
            authority=check_text("authority", authority, required=True),
            jurisdiction=place,
            instrument=check_text("instrument", instrument, required=True),
            scope=categories,
            status=parsed_status,
            valid_from=valid_from,
            valid_until=valid_until,
            accuracy_statement=check_text("accuracy_statement", accuracy_statement, required=False),
            accuracy_reference=check_text("accuracy_reference", accuracy_reference, required=False),
            evidence_url=url,
        )


def approval_record(approval: Approval) -> dict[str, Any]:
    """An approval as JSON-ready data (API, CLI, audit events)."""
    return {
        "id": approval.id,
        "tool": approval.tool,
        "versions": approval.versions,
        "authority": approval.authority,
        "jurisdiction": approval.jurisdiction,
        "instrument": approval.instrument,
        "scope": list(approval.scope),
        "status": approval.status.value,
        "valid_from": approval.valid_from.isoformat(),
        "valid_until": approval.valid_until.isoformat() if approval.valid_until else None,
        "accuracy_statement": approval.accuracy_statement,
        "accuracy_reference": approval.accuracy_reference,
        "evidence_url": approval.evidence_url,
        "created_at": approval.created_at.isoformat(),
        "updated_at": approval.updated_at.isoformat(),
    }


def allowance_record(allowance: LocalAllowance) -> dict[str, Any]:
    return {
        "id": allowance.id,
        "tool": allowance.tool,
        "versions": allowance.versions,
        "reason": allowance.reason,
        "allowed_by": allowance.allowed_by,
        "allowed_at": allowance.allowed_at.isoformat(),
    }


def activation_record(activation: Activation) -> dict[str, Any]:
    return {
        "tool": activation.tool,
        "version": activation.version,
        "active": activation.active,
        "reason": activation.reason.value,
        "approval_id": activation.approval_id,
        "local_allowance_id": activation.allowance_id,
        "detail": activation.detail,
    }
