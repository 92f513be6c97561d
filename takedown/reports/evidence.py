"""Evidence without keeping media: which content URLs hashguard may fetch the file from, how the
fetch is signed, and how the fetched bytes are checked. Pure; the fetch is ``takedown.reports.job``'s.

The file is fetched only from hosts the operator listed (HASHGUARD_EVIDENCE_HOSTS; the URL's port is
not part of the match), over https, or plain http to a loopback host. The request is signed like
the platform's webhooks (``takedown.webhooks``): ``X-Hashguard-Signature`` is the HMAC-SHA256 of
``timestamp + "." + "GET " + url`` with the tenant's webhook secret, so the platform can refuse a
fetch that did not come from its hashguard. The bytes are hashed as they stream and must equal the
hashes the scan recorded; only then are they uploaded, and nothing but the hashes is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

from takedown import webhooks

EVENT = "evidence.fetch"


def is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def fetch_refusal(url: str | None, hosts: Collection[str]) -> str | None:
    """Why the file at ``url`` is not fetched (the report is then hash-only); None when it may be."""
    if not url:
        return "the ticket has no content URL"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or host not in {h.lower().rstrip(".") for h in hosts}:
        return "the content URL's host is not in HASHGUARD_EVIDENCE_HOSTS"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and is_loopback(host):
        return None
    return "evidence is fetched over https only (plain http only from a loopback host)"


def signed_headers(secret: str, timestamp: int, url: str) -> dict[str, str]:
    payload = b"GET " + url.encode()
    return {
        webhooks.TIMESTAMP_HEADER: str(timestamp),
        webhooks.SIGNATURE_HEADER: webhooks.signature(secret, timestamp, payload),
        webhooks.EVENT_HEADER: EVENT,
    }


def verify_fetch(secret: str, timestamp: str, url: str, sent: str) -> bool:
    """The platform's check of a fetch (the tests' platform stand-in uses it)."""
    return webhooks.verify_signature(secret, timestamp, b"GET " + url.encode(), sent)


@dataclass(slots=True)
class Digests:
    """MD5 and SHA-256 of bytes as they stream past."""

    md5: hashlib._Hash = field(default_factory=hashlib.md5)
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def values(self) -> dict[str, bytes]:
        return {"md5": self.md5.digest(), "sha256": self.sha256.digest()}


def mismatch(recorded: Mapping[str, bytes], fetched: Mapping[str, bytes]) -> str | None:
    """Why the fetched file is not the one that matched; None when every recorded digest agrees.

    At least one cryptographic digest must have been recorded at scan time (the md5 or sha256
    tool): perceptual hashes cannot prove two files are the same bytes."""
    common = [t for t in ("md5", "sha256") if t in recorded]
    if not common:
        return "no MD5 or SHA-256 was recorded at scan time to check the fetched file against"
    for tool in common:
        if recorded[tool] != fetched[tool]:
            return f"the fetched file's {tool} differs from the one recorded at scan time"
    return None
