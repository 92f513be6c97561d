"""The pure half of the DSA Transparency Database path: the rate limit, the schema check and what
each answer means."""

from __future__ import annotations

import json

import pytest

from takedown import dsa_db


def test_the_rate_limit_holds_both_the_per_second_and_the_per_minute_limit() -> None:
    limit = dsa_db.RateLimit(per_second=200, per_minute=12_000, now=0.0)
    now, sent = 0.0, []
    # Drive it like the submitter does, for two simulated minutes.
    while now < 120.0:
        wait = limit.wait_s(now)
        if wait > 0:
            now += wait
            continue
        limit.take(now)
        sent.append(now)
    # Sliding windows, not only the clock's seconds: starting at each call.
    j = k = 0
    for i, t in enumerate(sent):
        while j < len(sent) and sent[j] < t + 1.0:
            j += 1
        while k < len(sent) and sent[k] < t + 60.0:
            k += 1
        assert j - i <= 200, f"{j - i} calls in the second from {t}"
        assert k - i <= 12_000, f"{k - i} calls in the minute from {t}"
    assert len(sent) >= 21_000  # and it does not throttle far below the limits (about 180/s sustained)


def test_a_token_bucket_refuses_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        dsa_db.TokenBucket(limit=0, per=1)


def _valid() -> dict[str, object]:
    return {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
        "illegal_content_legal_ground": "Directive 2011/93/EU",
        "illegal_content_explanation": "known material",
        "decision_facts": "matched a vetted list",
        "content_type": ["CONTENT_TYPE_IMAGE"],
        "category": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "content_date": "2026-05-01",
        "application_date": "2026-05-01",
        "source_type": "SOURCE_VOLUNTARY",
        "automated_detection": "Yes",
        "automated_decision": "AUTOMATED_DECISION_FULLY",
        "puid": "7b0c2a44-0d8e-4f0e-9a53-0c3c1b9d6f10",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"puid": "has spaces"}, "puid"),
        ({"decision_ground": "DECISION_GROUND_OTHER"}, "decision_ground"),
        ({"illegal_content_legal_ground": None}, ""),
        ({"decision_visibility": ["DECISION_VISIBILITY_OTHER"]}, ""),
        ({"content_type": ["CONTENT_TYPE_OTHER"]}, ""),
        ({"content_date": "1999-12-31"}, "content_date"),
        ({"application_date": "2019-12-31"}, "application_date"),
        ({"territorial_scope": ["US"]}, "territorial_scope/0"),
        ({"decision_facts": "x" * 5001}, "decision_facts"),
        ({"surprise": "field"}, ""),
    ],
)
def test_the_schema_refuses_what_the_database_would(change: dict[str, object], field: str) -> None:
    statement = {**_valid(), **change}
    statement = {k: v for k, v in statement.items() if v is not None}
    assert dsa_db.problems(_valid()) == {}
    found = dsa_db.problems(statement)
    assert field in found, found


def test_a_created_batch_maps_uuids_by_puid() -> None:
    body = json.dumps({"statements": [{"puid": "a", "uuid": "u-a"}, {"puid": "b", "uuid": "u-b"}]}).encode()
    verdict = dsa_db.batch_verdict(["a", "b"], 201, body)
    assert verdict.outcome == {"a": dsa_db.Outcome.SUBMITTED, "b": dsa_db.Outcome.SUBMITTED}
    assert verdict.db_uuid == {"a": "u-a", "b": "u-b"}


def test_per_statement_errors_reject_only_those_and_release_the_rest_at_once() -> None:
    body = json.dumps({"errors": {"statement_1": {"decision_facts": ["required"]}}}).encode()
    verdict = dsa_db.batch_verdict(["a", "b", "c"], 422, body)
    assert verdict.outcome == {"a": dsa_db.Outcome.RETRY, "b": dsa_db.Outcome.REJECTED, "c": dsa_db.Outcome.RETRY}
    assert verdict.errors == {"b": {"decision_facts": ["required"]}} and not verdict.backoff


@pytest.mark.parametrize("status", [None, 401, 429, 500, 503])
def test_failed_calls_retry_everything_with_backoff(status: int | None) -> None:
    verdict = dsa_db.batch_verdict(["a"], status, b"<html>", "3")
    assert verdict.outcome == {"a": dsa_db.Outcome.RETRY} and verdict.backoff and verdict.error
    assert verdict.retry_after_s == (3.0 if status == 429 else None)


def test_an_unreadable_422_retries_rather_than_guess() -> None:
    assert dsa_db.batch_verdict(["a", "b"], 422, b"not json").outcome == {"a": dsa_db.Outcome.RETRY, "b": dsa_db.Outcome.RETRY}


@pytest.mark.parametrize(
    ("url", "token", "problem"),
    [
        (None, None, None),
        ("https://transparency.example/", "t", None),
        ("http://127.0.0.1:9/", "t", None),
        ("http://db.example/", "t", "https"),
        ("https://db.example/", None, "TOKEN"),
        ("ftp://db.example/", "t", "http(s)"),
    ],
)
def test_the_settings_check(url: str | None, token: str | None, problem: str | None) -> None:
    found = dsa_db.dsa_settings_problem(url, token)
    assert (found is None) if problem is None else (found is not None and problem in found)
