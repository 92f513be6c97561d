"""API keys and roles. Pure: key generation and hashing; storage is in ``kernel.keystore``."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "hg_"
# The tenant every install starts with (migration 0050 creates it first): platform keys made
# without naming a tenant, and every record written before tenants existed, belong to it.
DEFAULT_TENANT_ID = 1
DEFAULT_TENANT = "default"
# What a tenant may be called (the tenants table checks the same).
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
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
    """Who is calling: the key's database id, its printable prefix, its role and its tenants.

    ``tenant_id`` is the tenant a platform key belongs to (always set for platform keys, None for
    staff keys). ``tenants`` is the set of tenants whose records the key may see or touch: a
    platform key's own tenant, a staff key's limit, or None for a staff key that sees every
    tenant. Records outside it must answer exactly as if they did not exist.
    """

    key_id: int
    prefix: str
    role: Role
    tenant_id: int | None = None
    tenants: frozenset[int] | None = None

    def __post_init__(self) -> None:
        # A platform key that saw every tenant would be the isolation bug itself: refuse to build one.
        if self.role is Role.PLATFORM and (self.tenant_id is None or self.tenants != frozenset({self.tenant_id})):
            raise ValueError("a platform key belongs to exactly one tenant")
        if self.role is not Role.PLATFORM and self.tenant_id is not None:
            raise ValueError("only platform keys belong to a tenant")

    def sees(self, tenant_id: int) -> bool:
        """Whether a record of ``tenant_id`` is visible to this key."""
        return self.tenants is None or tenant_id in self.tenants


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
