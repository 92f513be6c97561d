"""Webhook signatures, bodies and the retry schedule."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import random
import uuid
from datetime import UTC, datetime

from takedown.webhooks import ActionRequest, backoff_s, body, headers, signature, verify_signature
from takedown.workflow import Action


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    payload = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + payload, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1700000000, payload) == "sha256=" + expected
    sent = headers("s3cret", 1700000000, payload, "key-1", "remove")
    assert sent["X-Hashguard-Timestamp"] == "1700000000"
    assert sent["Idempotency-Key"] == "key-1"
    assert verify_signature("s3cret", "1700000000", payload, sent["X-Hashguard-Signature"])
    assert not verify_signature("other", "1700000000", payload, sent["X-Hashguard-Signature"])
    assert not verify_signature("s3cret", "1700000001", payload, sent["X-Hashguard-Signature"])
    assert not verify_signature("s3cret", "1700000000", payload + b" ", sent["X-Hashguard-Signature"])
    assert not verify_signature("s3cret", "not-a-number", payload, sent["X-Hashguard-Signature"])


def test_body_is_deterministic_json() -> None:
    def decided() -> ActionRequest:
        return ActionRequest(
            idempotency_key=uuid.UUID(int=1),
            ticket_id=uuid.UUID(int=2),
            content_id="item-1",
            content_url=None,
            action=Action.REMOVE,
            decided_at=datetime(2026, 1, 1, tzinfo=UTC),
            automated_decision=True,
            statement_url="/v1/tickets/x/statement",
        )

    # A redelivery rebuilds the request from what was stored: it must send the first delivery's bytes.
    first, redelivered = body(decided()), body(decided())
    assert redelivered == first
    # The signature made over the first delivery's body verifies against the redelivered one.
    sent = headers("s3cret", 1700000000, first.encode(), "key-1", "remove")
    assert verify_signature("s3cret", "1700000000", redelivered.encode(), sent["X-Hashguard-Signature"])
    parsed = json.loads(first)
    assert parsed == {
        "idempotency_key": str(uuid.UUID(int=1)),
        "ticket_id": str(uuid.UUID(int=2)),
        "content_id": "item-1",
        "content_url": None,
        "action": "remove",
        "decided_at": "2026-01-01T00:00:00+00:00",
        "automated_decision": True,
        "statement_url": "/v1/tickets/x/statement",
    }
    assert first == json.dumps(parsed, sort_keys=True, separators=(",", ":"))  # canonical: sorted keys, no spaces
    # A different decision gives different bytes, so a stale body cannot pass for a new one.
    assert body(dataclasses.replace(decided(), action=Action.REINSTATE)) != first


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    for attempt in range(1, 15):
        window = min(60.0, 1.0 * 2 ** (attempt - 1))
        delays = [backoff_s(attempt, 1.0, 60.0, rng) for _ in range(50)]
        assert all(window / 2 <= d <= window for d in delays)
        assert len(set(delays)) > 1  # jitter: not in lockstep
