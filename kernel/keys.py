"""API keys and roles. Pure: key generation and hashing; storage is in ``kernel.keystore``."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "hg_"
# The first characters of a key identify it in lists and logs without revealing it.
PREFIX_LENGTH = len(KEY_PREFIX) + 8


class Role(StrEnum):
    PLATFORM = "platform"
    REVIEWER = "reviewer"
    LEAD = "lead"
    ADMIN = "admin"
    AUDITOR = "auditor"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewKey:
    """A freshly made key. ``secret`` is shown once and never stored."""

    secret: str
    prefix: str
    digest: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """Who is calling: the key's database id, its printable prefix and its role."""

    key_id: int
    prefix: str
    role: Role


def new_key() -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(secret=secret, prefix=secret[:PREFIX_LENGTH], digest=key_digest(secret))


def key_digest(secret: str) -> bytes:
    # 256 random bits need no slow password hash: a plain SHA-256 cannot be inverted or guessed.
    return hashlib.sha256(secret.encode()).digest()


def parse_bearer(header: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # Keys are ASCII. A header byte that is not (aiohttp hands it over as a lone surrogate) is simply
    # not a key: 401, never an encoding error further on.
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200 or not token.isascii():
        return None
    return token
