"""Platform webhooks: the request body, its signature, and the retry schedule. Pure: the sending
is done by ``takedown.jobs``.

Receivers verify ``X-Hashguard-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``
with ``X-Hashguard-Timestamp`` (Unix seconds; reject stale ones to stop replays) and apply each
``Idempotency-Key`` once: every retry of one action carries the same key and the same body, so a
receiver that honours the key never acts twice, whatever hashguard's crashes and retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from urllib.parse import urlsplit

from takedown.workflow import Action

SIGNATURE_HEADER = "X-Hashguard-Signature"
TIMESTAMP_HEADER = "X-Hashguard-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Hashguard-Event"


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionRequest:
    """What the platform is told: act on this content, for this ticket, for this reason."""

    idempotency_key: uuid.UUID
    ticket_id: uuid.UUID
    content_id: str
    content_url: str | None
    action: Action
    decided_at: datetime
    automated_decision: bool
    statement_url: str | None


def body(request: ActionRequest) -> str:
    """The JSON body, fixed when the action is decided and sent byte-for-byte on every attempt."""
    return json.dumps(
        {
            "idempotency_key": str(request.idempotency_key),
            "ticket_id": str(request.ticket_id),
            "content_id": request.content_id,
            "content_url": request.content_url,
            "action": request.action.value,
            "decided_at": request.decided_at.isoformat(),
            "automated_decision": request.automated_decision,
            "statement_url": request.statement_url,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(secret: str, timestamp: int, payload: bytes, idempotency_key: str, action: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, payload),
        IDEMPOTENCY_HEADER: idempotency_key,
        EVENT_HEADER: f"takedown.{action}",
    }


def verify_signature(secret: str, timestamp: str, payload: bytes, sent: str) -> bool:
    """The receiver's check (also used by the tests' fake platform)."""
    try:
        expected = signature(secret, int(timestamp), payload)
    except ValueError:
        return False
    return hmac.compare_digest(expected, sent)


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with "equal jitter".

    Half the window is fixed so retries never bunch at zero; the other half is random so many
    failed rows do not retry in lockstep against a receiver that is just coming back.
    """
    window = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0.0, window / 2)
    return window / 2 + jitter


# A signing key shorter than this is guessable offline from one signed request (RFC 2104 asks for at
# least the hash's output length: 32 bytes for SHA-256).
MIN_SECRET_BYTES = 32


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (plain http is allowed only there)."""
    host = urlsplit(url).hostname or ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def webhook_settings_problem(url: str | None, secret: str | None) -> str | None:
    """Why HASHGUARD_WEBHOOK_URL / HASHGUARD_WEBHOOK_SECRET cannot be used, in one line; None when they can.

    The webhook carries content ids and urls (evidence) and orders removals: it must be signed with a
    real key, and outside this machine it must travel over TLS. Plain http is accepted only to a
    loopback host (a sidecar, a local test receiver).
    """
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"HASHGUARD_WEBHOOK_URL must be an http(s) URL with a host, not {parts.scheme or 'no scheme'}://"
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            return f"HASHGUARD_WEBHOOK_URL must use https outside loopback (plain http to {host} would expose evidence)"
    if not secret:
        return "HASHGUARD_WEBHOOK_URL is set but HASHGUARD_WEBHOOK_SECRET is not: webhooks must be signed"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"HASHGUARD_WEBHOOK_SECRET must be at least {MIN_SECRET_BYTES} bytes (e.g. openssl rand -hex 32)"
    return None
