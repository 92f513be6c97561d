"""Ed25519 keys and signatures over list manifests (the ``cryptography`` library does the maths).

Issuers sign the manifest, not the list file: the manifest carries the file's SHA-256 and entry
count, so one signature covers the whole import while the file itself streams unverified until
its checksum is compared at the end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hashsets.errors import InvalidKey


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyPair:
    private_pem: bytes
    public_key: bytes  # raw 32 bytes

    @property
    def public_text(self) -> str:
        return public_key_text(self.public_key)


def generate() -> KeyPair:
    private = Ed25519PrivateKey.generate()
    return KeyPair(
        private_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        public_key=private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    )


def public_key_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def fingerprint(raw: bytes) -> str:
    """A short, stable name for a public key (shown in listings and events)."""
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key from base64, hex, or a PEM SubjectPublicKeyInfo."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise InvalidKey("the PEM text is not a public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidKey("the PEM key is not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKey("the public key is neither base64, hex nor PEM") from None
    if len(raw) != 32:
        raise InvalidKey(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return raw


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("the private key file is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidKey("the private key is not an Ed25519 key")
    return key


def public_of(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(private: Ed25519PrivateKey, message: bytes) -> bytes:
    return private.sign(message)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
