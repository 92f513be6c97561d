"""Manifests and their Ed25519 signatures: the real verification path, with keys made here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hashsets import signing
from hashsets.errors import InvalidKey, InvalidManifest, VerificationFailed
from hashsets.manifest import Kind, TrustedKey, build_manifest, parse_manifest, sign_manifest, verify_signature

PAIR = signing.generate()
OTHER = signing.generate()
TRUSTED = [TrustedKey(id=1, organisation="Example Hotline", public_key=PAIR.public_key)]


def document(**changes: Any) -> dict[str, Any]:
    doc = build_manifest(
        issuer="Example Hotline",
        list_name="example-pdq",
        tool="pdq",
        version="2026-11-23.1",
        kind=Kind.FULL,
        created=datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        entries=3,
        sha256=bytes(range(32)),
    )
    doc.update(changes)
    return doc


def test_a_signed_manifest_verifies_with_the_issuers_trusted_key() -> None:
    manifest = parse_manifest(json.dumps(sign_manifest(document(), PAIR.private_pem)))
    assert verify_signature(manifest, TRUSTED).id == 1
    assert (manifest.list, manifest.tool, manifest.entries, manifest.kind) == ("example-pdq", "pdq", 3, Kind.FULL)


@pytest.mark.parametrize(
    ("field", "value"), [("entries", 4), ("sha256", "ff" * 32), ("list", "another"), ("version", "2026-11-24.1")]
)
def test_any_altered_field_breaks_the_signature(field: str, value: object) -> None:
    signed = sign_manifest(document(), PAIR.private_pem)
    signed[field] = value
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_signature(parse_manifest(json.dumps(signed)), TRUSTED)


def test_a_key_trusted_for_another_issuer_or_an_untrusted_key_is_refused() -> None:
    by_other = parse_manifest(json.dumps(sign_manifest(document(), OTHER.private_pem)))
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_signature(by_other, TRUSTED)
    elsewhere = [TrustedKey(id=2, organisation="Someone Else", public_key=OTHER.public_key)]
    with pytest.raises(VerificationFailed, match="no key is trusted for the issuer"):
        verify_signature(by_other, elsewhere)
    with pytest.raises(VerificationFailed, match="not signed"):
        verify_signature(parse_manifest(json.dumps(document())), TRUSTED)


def test_key_order_and_whitespace_do_not_matter() -> None:
    signed = sign_manifest(document(), PAIR.private_pem)
    reordered = json.dumps(dict(reversed(list(signed.items()))), indent=4)
    assert verify_signature(parse_manifest(reordered), TRUSTED).id == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "partial"}, "'kind' must be"),
        ({"kind": "delta"}, "must name the 'base_version'"),
        ({"created": "2026-11-23T06:00:00"}, "time zone"),
        ({"entries": -1}, "non-negative"),
        ({"sha256": "xyz"}, "64 hexadecimal"),
        ({"colour": "blue"}, "unknown fields: colour"),
        ({"format": "xml"}, "'format' must be one of"),
        ({"classification": "other"}, "unknown classification scheme"),
    ],
)
def test_invalid_manifests_are_refused_with_a_clear_message(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        parse_manifest(json.dumps(document(**changes)))
    with pytest.raises(InvalidManifest, match="not valid JSON"):
        parse_manifest("{")


def test_public_keys_parse_from_base64_hex_and_pem() -> None:
    assert signing.parse_public_key(PAIR.public_text) == PAIR.public_key
    assert signing.parse_public_key(PAIR.public_key.hex()) == PAIR.public_key
    pem = (
        signing.load_private_key(PAIR.private_pem)
        .public_key()
        .public_bytes(signing.serialization.Encoding.PEM, signing.serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert signing.parse_public_key(pem.decode()) == PAIR.public_key
    with pytest.raises(InvalidKey):
        signing.parse_public_key("not a key")
    with pytest.raises(InvalidKey, match="32 bytes"):
        signing.parse_public_key("AAAA")
