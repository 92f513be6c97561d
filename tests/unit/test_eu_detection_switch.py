"""The EU legal basis switch for voluntary detection (Reg. 2021/1232 lapsed on 3 April 2026): a
deployment serving the EU with no recorded basis runs no tool, whatever approves or allows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detector.tools.policy import (
    Approval,
    ApprovalStatus,
    LocalAllowance,
    Reason,
    decide_all,
    eu_detection_halt,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _approval(jurisdiction: str) -> Approval:
    return Approval(
        id=1,
        tool="pdq",
        versions="*",
        authority="a DPA",
        jurisdiction=jurisdiction,
        instrument="EU 2021/1232 Art 3",
        scope=("csam_known",),
        status=ApprovalStatus.PERMITTED,
        valid_from=NOW - timedelta(days=400),
        valid_until=None,
        accuracy_statement="",
        accuracy_reference="",
        evidence_url="",
        created_at=NOW,
        updated_at=NOW,
    )


ALLOW = LocalAllowance(id=1, tool="md5", versions="*", reason="ours", allowed_by="admin", allowed_at=NOW)


@pytest.mark.parametrize(
    ("jurisdictions", "basis", "halted"),
    [
        (("EU",), None, True),
        (("DE",), None, True),  # a member state is the EU too
        (("GB", "eu"), "", True),
        (("GB", "AU"), None, False),
        (("EU",), "Council regulation on a new interim derogation (as recorded by counsel)", False),
        ((), None, False),
    ],
)
def test_serving_the_eu_without_a_basis_stops_every_tool(jurisdictions: tuple[str, ...], basis: str | None, halted: bool) -> None:
    halt = eu_detection_halt(jurisdictions, basis)
    assert (halt is not None) is halted
    decided = decide_all(
        {"pdq": "1.0", "md5": "1.0"},
        approvals=[_approval("EU")],
        allowances=[ALLOW],
        jurisdictions=jurisdictions,
        now=NOW,
        halt=halt,
    )
    if halted:
        assert halt is not None and "2021/1232" in halt
        assert all(not a.active and a.reason is Reason.NO_LEGAL_BASIS and a.detail == halt for a in decided.values())
    else:
        assert decided["md5"].active  # the local allowance is untouched
