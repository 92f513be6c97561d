"""The manifest that travels with a list file, and how its signature is checked.

A manifest is a JSON object::

    {"issuer": "Example Hotline", "list": "example-pdq", "tool": "pdq", "version": "2026-11-23.1",
     "kind": "delta", "base_version": "2026-11-22.1", "created": "2026-11-23T06:00:00Z",
     "entries": 1200, "sha256": "<hex of the list file>", "format": "csv", "classification": "iwf",
     "signature": {"algorithm": "ed25519", "key": "<base64 public key>", "value": "<base64>"}}

The signature covers the canonical form of every other field: the JSON object without
``signature``, keys sorted, no insignificant whitespace, UTF-8 (for the strings and integers a
manifest holds this equals RFC 8785 JCS). ``entries`` counts the entry lines of the file, adds and
retractions alike. Verification here is pure; which keys are trusted is the caller's data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hashsets import signing
from hashsets.errors import InvalidManifest, VerificationFailed
from hashsets.parse import ListFormat, Scheme, parse_scheme

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KNOWN = {
    "issuer",
    "list",
    "tool",
    "version",
    "kind",
    "base_version",
    "created",
    "entries",
    "sha256",
    "format",
    "classification",
    "signature",
}


class Kind(StrEnum):
    FULL = "full"
    DELTA = "delta"


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    issuer: str
    list: str
    tool: str
    version: str
    kind: Kind
    base_version: str | None
    created: datetime
    entries: int
    sha256: bytes
    format: ListFormat | None
    classification: Scheme | None
    signature: bytes | None
    signature_key: bytes | None
    raw: Mapping[str, Any]

    def signed_bytes(self) -> bytes:
        return canonical_bytes(self.raw)


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _text(doc: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise InvalidManifest(f"the manifest has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidManifest(f"the manifest's {key!r} must be a string")
    text = str(value).strip()
    if not text:
        raise InvalidManifest(f"the manifest's {key!r} is empty")
    return text


def parse_manifest(text: str | bytes) -> Manifest:
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"the manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidManifest("the manifest must be a JSON object")
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:
        raise InvalidManifest(f"the manifest has unknown fields: {', '.join(unknown)}")
    try:
        kind = Kind(_text(doc, "kind") or "")
    except ValueError:
        raise InvalidManifest("the manifest's 'kind' must be 'full' or 'delta'") from None
    base_version = _text(doc, "base_version", required=False)
    if kind is Kind.DELTA and base_version is None:
        raise InvalidManifest("a delta manifest must name the 'base_version' it applies to")
    if kind is Kind.FULL and base_version is not None:
        raise InvalidManifest("a full manifest has no 'base_version'")
    created_text = _text(doc, "created") or ""
    try:
        created = datetime.fromisoformat(created_text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidManifest("the manifest's 'created' is not an ISO 8601 time") from None
    if created.tzinfo is None:
        raise InvalidManifest("the manifest's 'created' must include a time zone (e.g. ...Z)")
    entries = doc.get("entries")
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
        raise InvalidManifest("the manifest's 'entries' must be a non-negative integer")
    sha = (_text(doc, "sha256") or "").lower()
    if not _SHA256.fullmatch(sha):
        raise InvalidManifest("the manifest's 'sha256' must be 64 hexadecimal digits")
    fmt_text = _text(doc, "format", required=False)
    try:
        fmt = ListFormat(fmt_text.lower()) if fmt_text else None
    except ValueError:
        raise InvalidManifest(f"the manifest's 'format' must be one of {', '.join(f.value for f in ListFormat)}") from None
    try:
        classification = parse_scheme(_text(doc, "classification", required=False))
    except ValueError as exc:
        raise InvalidManifest(f"the manifest's 'classification': {exc}") from None
    signature, signature_key = _signature(doc.get("signature"))
    return Manifest(
        issuer=_text(doc, "issuer") or "",
        list=_text(doc, "list") or "",
        tool=(_text(doc, "tool") or "").lower(),
        version=_text(doc, "version") or "",
        kind=kind,
        base_version=base_version,
        created=created,
        entries=entries,
        sha256=bytes.fromhex(sha),
        format=fmt,
        classification=classification,
        signature=signature,
        signature_key=signature_key,
        raw=doc,
    )


def _signature(value: object) -> tuple[bytes | None, bytes | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise InvalidManifest("the manifest's 'signature' must be an object with 'algorithm', 'key' and 'value'")
    if value.get("algorithm") != "ed25519":
        raise InvalidManifest("the manifest's signature algorithm must be 'ed25519'")
    try:
        sig = base64.b64decode(str(value.get("value", "")), validate=True)
        key = base64.b64decode(str(value.get("key", "")), validate=True) if value.get("key") else None
    except (binascii.Error, ValueError):
        raise InvalidManifest("the manifest's signature 'value' and 'key' must be base64") from None
    if len(sig) != 64:
        raise InvalidManifest("an Ed25519 signature is 64 bytes")
    return sig, key


@dataclass(frozen=True, kw_only=True, slots=True)
class TrustedKey:
    id: int
    organisation: str
    public_key: bytes


def verify_signature(manifest: Manifest, trusted: Iterable[TrustedKey]) -> TrustedKey:
    """The trusted key of the manifest's issuer that signed it; ``VerificationFailed`` otherwise."""
    if manifest.signature is None:
        raise VerificationFailed("the manifest is not signed; import it with --allow-unsigned to record it as unsigned")
    keys = [k for k in trusted if k.organisation == manifest.issuer]
    if not keys:
        raise VerificationFailed(
            f"no key is trusted for the issuer {manifest.issuer!r}; add one with: hashguard hashsets trust ORG PUBLIC_KEY"
        )
    message = manifest.signed_bytes()
    for key in keys:
        if signing.verify(key.public_key, message, manifest.signature):
            return key
    raise VerificationFailed(
        f"the manifest's signature does not verify with any key trusted for {manifest.issuer!r}"
        " (altered manifest, or signed by another key); nothing was imported"
    )


def build_manifest(
    *,
    issuer: str,
    list_name: str,
    tool: str,
    version: str,
    kind: Kind,
    created: datetime,
    entries: int,
    sha256: bytes,
    base_version: str | None = None,
    format: ListFormat | None = None,
    classification: Scheme | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": issuer,
        "list": list_name,
        "tool": tool,
        "version": version,
        "kind": kind.value,
        "created": created.isoformat().replace("+00:00", "Z"),
        "entries": entries,
        "sha256": sha256.hex(),
    }
    if base_version is not None:
        doc["base_version"] = base_version
    if format is not None:
        doc["format"] = format.value
    if classification is not None:
        doc["classification"] = classification.value
    return doc


def sign_manifest(document: Mapping[str, Any], private_pem: bytes) -> dict[str, Any]:
    """The document with a ``signature`` over its canonical form (test and demo lists)."""
    private = signing.load_private_key(private_pem)
    signature = signing.sign(private, canonical_bytes(document))
    return {
        **{k: v for k, v in document.items() if k != "signature"},
        "signature": {
            "algorithm": "ed25519",
            "key": signing.public_key_text(signing.public_of(private)),
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }
