"""The edge's small rules: one timestamp rule, keys that are ASCII, approvals that cannot be read,
and webhook settings that are safe to use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from detector.approvals import api as approvals_api
from detector.tools.policy import (
    UNREADABLE_WINDOW,
    Approval,
    ApprovalStatus,
    LocalAllowance,
    NewApproval,
    Reason,
    decide,
    next_change,
)
from kernel.api import EARLIEST, LATEST, checked_moment, parse_moment
from kernel.errors import BadRequest
from kernel.keys import parse_bearer
from takedown.requests import NoticeBody
from takedown.webhooks import MIN_SECRET_BYTES, webhook_settings_problem

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),  # the driver stores it as -infinity, reads it back naive
        datetime.max.replace(tzinfo=UTC),  # ... and this one as infinity
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        LATEST,
        datetime(2026, 1, 1),  # naive
    ],
)
def test_the_timestamp_rule_refuses_naive_and_extreme_moments(moment: datetime) -> None:
    with pytest.raises(ValueError, match="'valid_until'"):
        checked_moment("valid_until", moment)


def test_the_timestamp_rule_keeps_ordinary_moments_in_utc() -> None:
    assert checked_moment("t", EARLIEST) == EARLIEST
    assert checked_moment("t", LATEST - timedelta(microseconds=1)) is not None
    east = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert checked_moment("t", east) == datetime(2026, 1, 1, tzinfo=UTC)
    assert checked_moment("t", east).tzinfo is UTC  # type: ignore[union-attr]
    assert parse_moment("--valid-from", "2026-01-01", naive_is_utc=True) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no time zone"):
        parse_moment("from", "2026-01-01")
    with pytest.raises(ValueError, match="outside"):
        parse_moment("--valid-from", "0001-01-01", naive_is_utc=True)
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_moment("--valid-from", "yesterday", naive_is_utc=True)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-01-01T00:00:00"])
def test_every_request_type_that_takes_a_time_keeps_the_rule(value: str) -> None:
    approval = {"tool": "pdq", "authority": "A", "jurisdiction": "GB", "instrument": "i", "valid_until": value}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(approval), type=approvals_api.NewApproval)
    notice = {
        "source": "authority_order",
        "content_id": "c-1",
        "authority": {"name": "eSafety", "reference": "R-1", "deadline": value},
    }
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(notice), type=NoticeBody)
    # The one way any input becomes an approval refuses it as well (the command line goes through it).
    with pytest.raises(BadRequest, match="valid_from"):
        NewApproval.checked(
            tool="pdq", authority="A", jurisdiction="GB", instrument="i", valid_from=datetime(1, 1, 1, tzinfo=UTC)
        )


def test_a_bearer_token_with_a_byte_that_is_not_ascii_is_no_key() -> None:
    # aiohttp hands a header byte 0xff over as the lone surrogate U+DCFF.
    assert parse_bearer("Bearer hg_abc\udcffdef") is None
    assert parse_bearer("Bearer hg_caf\u00e9") is None
    assert parse_bearer("B\udcffarer hg_abc") is None


def _approval(approval_id: int = 1, **changes: Any) -> Approval:
    values: dict[str, object] = dict(
        id=approval_id,
        tool="pdq",
        versions="*",
        authority="Ofcom",
        jurisdiction="GB",
        instrument="code",
        scope=(),
        status=ApprovalStatus.APPROVED,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=None,
        accuracy_statement="",
        accuracy_reference="",
        evidence_url="",
        created_at=NOW,
        updated_at=NOW,
    )
    values.update(changes)
    return Approval(**values)  # type: ignore[arg-type]


ALLOWED = LocalAllowance(id=1, tool="pdq", versions="*", reason="r", allowed_by="a", allowed_at=NOW)


@pytest.mark.parametrize(
    "bad",
    [
        {"valid_until": datetime.max},  # what the driver made of 'infinity': naive
        {"valid_from": datetime.min},
        {"problem": "stored out of range", "valid_from": EARLIEST, "valid_until": EARLIEST + UNREADABLE_WINDOW},
    ],
)
def test_an_approval_that_cannot_be_compared_fails_closed_for_its_tool_only(bad: dict[str, Any]) -> None:
    broken = _approval(**bad)
    fine = _approval(2, tool="md5")
    decided = decide(tool="pdq", version="0.2.5", approvals=[broken, fine], allowances=[ALLOWED], jurisdictions=["GB"], now=NOW)
    # Not even the local allowance keeps it scanning: the approval might have ended.
    assert (decided.active, decided.reason, decided.approval_id) == (False, Reason.UNREADABLE_APPROVAL, 1)
    other = decide(tool="md5", version="1", approvals=[broken, fine], allowances=[], jurisdictions=["GB"], now=NOW)
    assert other.active and other.reason is Reason.APPROVED
    assert next_change([broken, fine], NOW) is None  # its moments are never scheduled


def test_withdrawing_an_unreadable_approval_stops_its_tool_as_any_withdrawal_does() -> None:
    withdrawn = _approval(valid_until=datetime.max, status=ApprovalStatus.WITHDRAWN)
    decided = decide(tool="pdq", version="0.2.5", approvals=[withdrawn], allowances=[ALLOWED], jurisdictions=["GB"], now=NOW)
    assert (decided.active, decided.reason) == (False, Reason.WITHDRAWN)
    renewed = _approval(2)
    back = decide(tool="pdq", version="0.2.5", approvals=[withdrawn, renewed], allowances=[], jurisdictions=["GB"], now=NOW)
    assert back.active and back.approval_id == 2


def test_webhook_settings_need_a_real_key_and_tls_outside_loopback() -> None:
    good = "k" * MIN_SECRET_BYTES
    assert webhook_settings_problem(None, None) is None
    assert webhook_settings_problem("https://platform.example/takedown", good) is None
    assert webhook_settings_problem("http://127.0.0.1:9000/takedown", good) is None
    assert webhook_settings_problem("http://[::1]:9000/takedown", good) is None
    assert webhook_settings_problem("http://localhost:9000/takedown", good) is None
    assert "https" in (webhook_settings_problem("http://platform.example/takedown", good) or "")
    assert "https" in (webhook_settings_problem("http://10.0.0.5/takedown", good) or "")
    assert "32 bytes" in (webhook_settings_problem("https://platform.example/takedown", "x") or "")
    assert "not" in (webhook_settings_problem("https://platform.example/takedown", None) or "")
    assert "http(s)" in (webhook_settings_problem("ftp://platform.example/x", good) or "")
    for problem in (
        webhook_settings_problem("http://platform.example/t", "x"),
        webhook_settings_problem("https://p.example", "x"),
    ):
        assert problem is not None and "\n" not in problem
