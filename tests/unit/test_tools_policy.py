"""The approval policy: which installed tool may scan, and why."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.tools.policy import (
    Activation,
    Approval,
    ApprovalStatus,
    InvalidTransition,
    InvalidVersionSpec,
    LocalAllowance,
    Reason,
    check_transition,
    check_version_spec,
    decide,
    decide_all,
    version_matches,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def approval(id: int = 1, **changes: object) -> Approval:
    base = Approval(
        id=id,
        tool="pdq",
        versions="*",
        authority="Ofcom",
        jurisdiction="GB",
        instrument="OSA s.121 accreditation",
        scope=("csam_known",),
        status=ApprovalStatus.APPROVED,
        valid_from=NOW - timedelta(days=30),
        valid_until=None,
        accuracy_statement="",
        accuracy_reference="",
        evidence_url="",
        created_at=NOW,
        updated_at=NOW,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def allowance(id: int = 1, tool: str = "pdq", versions: str = "*") -> LocalAllowance:
    return LocalAllowance(id=id, tool=tool, versions=versions, reason="pilot", allowed_by="admin", allowed_at=NOW)


def run(
    approvals: Sequence[Approval] = (),
    allowances: Sequence[LocalAllowance] = (),
    places: tuple[str, ...] = ("GB",),
    version: str = "pdqhash-0.2.5",
) -> Activation:
    return decide(tool="pdq", version=version, approvals=approvals, allowances=allowances, jurisdictions=places, now=NOW)


def test_nothing_recorded_means_inactive() -> None:
    decision = run()
    assert not decision.active and decision.reason is Reason.NO_APPROVAL
    assert "GB" in decision.detail
    assert "HASHGUARD_JURISDICTIONS is empty" in run(places=()).detail


@pytest.mark.parametrize("status", ["approved", "recommended", "permitted"])
def test_covering_statuses_activate_and_name_the_approval(status: str) -> None:
    decision = run([approval(7, status=ApprovalStatus(status))])
    assert decision.active and decision.reason == status and decision.approval_id == 7
    assert "Ofcom (GB)" in decision.detail


def test_other_jurisdictions_do_not_count_and_codes_are_case_insensitive() -> None:
    assert not run([approval(jurisdiction="AU")]).active
    assert run([approval(jurisdiction="gb")], places=(" Gb ",)).active


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": ApprovalStatus.PROPOSED}, Reason.PROPOSED),
        ({"valid_until": NOW}, Reason.EXPIRED),
        ({"valid_from": NOW + timedelta(seconds=1)}, Reason.NOT_YET_VALID),
        ({"versions": ">=0.3"}, Reason.VERSION_NOT_COVERED),
        ({"status": ApprovalStatus.SUSPENDED}, Reason.SUSPENDED),
        ({"status": ApprovalStatus.WITHDRAWN}, Reason.WITHDRAWN),
    ],
)
def test_reasons_for_not_scanning(changes: dict[str, Any], reason: Reason) -> None:
    decision = run([approval(**changes)])
    assert not decision.active and decision.reason is reason


def test_validity_window_is_half_open() -> None:
    assert run([approval(valid_from=NOW, valid_until=NOW + timedelta(seconds=1))]).active
    assert not run([approval(valid_until=NOW)]).active


def test_strongest_then_oldest_approval_is_recorded() -> None:
    approvals = [
        approval(5, status=ApprovalStatus.PERMITTED),
        approval(9),
        approval(3, status=ApprovalStatus.RECOMMENDED),
        approval(8),
    ]
    assert run(approvals).approval_id == 8


def test_another_current_approval_keeps_the_tool_running_after_a_withdrawal() -> None:
    decision = run(
        [approval(1, status=ApprovalStatus.WITHDRAWN), approval(2, authority="eSafety", jurisdiction="AU")], places=("GB", "AU")
    )
    assert decision.active and decision.approval_id == 2


def test_local_allowance_activates_but_says_so() -> None:
    decision = run(allowances=[allowance(4)])
    assert decision.active and decision.reason is Reason.LOCAL_ALLOWANCE
    assert decision.approval_id is None and decision.allowance_id == 4
    assert not run(allowances=[allowance(tool="md5")]).active
    assert not run(allowances=[allowance(versions="<0.2")]).active


@pytest.mark.parametrize("status", [ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN])
def test_a_suspension_or_withdrawal_here_beats_a_local_allowance(status: ApprovalStatus) -> None:
    decision = run([approval(status=status)], [allowance()])
    assert not decision.active and decision.reason == status.value
    # ...but not one in a jurisdiction the deployment does not serve.
    assert run([approval(status=status, jurisdiction="AU")], [allowance()]).active


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        ("*", "anything at all", True),
        (">=0.2,<0.3", "pdqhash-0.2.5", True),
        (">=0.3", "pdqhash-0.2.5", False),
        ("==0.2.*", "pdqhash-0.2.9", True),
        ("==1", "1", True),
        ("==2", "1", False),
        (">=1", "not-a-version!", False),
    ],
)
def test_version_ranges(spec: str, version: str, expected: bool) -> None:
    assert version_matches(spec, version) is expected


@pytest.mark.parametrize("spec", ["", "latest", ">>1", "pdqhash-0.2.5"])
def test_invalid_version_ranges_are_refused(spec: str) -> None:
    with pytest.raises(InvalidVersionSpec):
        check_version_spec(spec)
    assert check_version_spec(" >=1 ") == ">=1"


def test_transitions() -> None:
    check_transition(ApprovalStatus.APPROVED, ApprovalStatus.SUSPENDED)
    check_transition(ApprovalStatus.SUSPENDED, ApprovalStatus.APPROVED)
    check_transition(ApprovalStatus.PROPOSED, ApprovalStatus.PERMITTED)
    with pytest.raises(InvalidTransition, match="withdrawn is final"):
        check_transition(ApprovalStatus.WITHDRAWN, ApprovalStatus.APPROVED)
    with pytest.raises(InvalidTransition) as caught:
        check_transition(ApprovalStatus.SUSPENDED, ApprovalStatus.SUSPENDED)
    assert caught.value.status == 409


def test_decide_all_covers_every_installed_tool() -> None:
    decisions = decide_all(
        {"pdq": "pdqhash-0.2.5", "md5": "1"},
        approvals=[approval()],
        allowances=[allowance(tool="md5")],
        jurisdictions=["GB"],
        now=NOW,
    )
    assert list(decisions) == ["md5", "pdq"]
    assert decisions["md5"].reason is Reason.LOCAL_ALLOWANCE and decisions["pdq"].reason is Reason.APPROVED


def test_new_approvals_are_validated() -> None:
    from detector.errors import BadRequest
    from detector.tools.policy import NewApproval

    base: dict[str, object] = {"tool": "pdq", "authority": "Ofcom", "jurisdiction": " gb ", "instrument": "x"}
    made = NewApproval.checked(**base, scope=["b", "a", "a"])  # type: ignore[arg-type]
    assert made.jurisdiction == "GB" and made.scope == ("a", "b") and made.valid_from is not None
    for bad in (
        {"authority": "nul\x00"},
        {"jurisdiction": "Great Britain"},
        {"valid_until": NOW},  # before the default valid_from, now
        {"valid_from": datetime(2026, 1, 1)},  # no time zone
        {"scope": ["ok", ""]},
        {"accuracy_statement": "x" * 2001},
        {"status": ["approved"]},
    ):
        with pytest.raises(BadRequest):
            NewApproval.checked(**{**base, **bad})  # type: ignore[arg-type]


def test_next_change_is_the_nearest_future_boundary() -> None:
    from detector.tools.policy import next_change

    soon, later = NOW + timedelta(hours=1), NOW + timedelta(days=1)
    approvals = [approval(1, valid_until=later), approval(2, valid_from=soon), approval(3, valid_until=NOW)]
    assert next_change(approvals, NOW) == soon
    assert next_change([approval(1)], NOW) is None
