"""Staff accounts and console sessions: the values and rules. Pure: storage is in ``kernel.staffstore``.

A person signed in to the console acts with the same role, tenant limit and identity as a staff
API key: every account is backed by an ``api_keys`` row (its secret discarded at creation), so the
role checks, leases and decisions the API applies to a key apply to the person unchanged.

Passwords are hashed with Argon2id (argon2-cffi's defaults: RFC 9106's second recommended
parameter set). Session tokens are 256 random bits; only their SHA-256 is stored, like keys'.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kernel.errors import BadRequest, ServiceError
from kernel.keys import Principal, Role

STAFF_ROLES = frozenset({Role.REVIEWER, Role.LEAD, Role.ADMIN, Role.AUDITOR})
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
SESSION_COOKIE = "hg_console"
# A pause at least this long between requests starts a new stretch of continuous review.
STRETCH_PAUSE_MIN = 10.0

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so an unknown account takes as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


class StaffError(ServiceError):
    """The staff account request could not be handled."""


class InvalidAccount(StaffError, BadRequest):
    """The account details are not acceptable."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffUser:
    """An account as stored (never with its password)."""

    id: int
    email: str
    role: Role
    key_id: int
    key_prefix: str
    tenants: frozenset[int] | None
    tenant_names: tuple[str, ...]
    failed_count: int
    locked_until: datetime | None
    disabled_at: datetime | None
    previews_off: bool
    created_at: datetime

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    @property
    def name(self) -> str:
        """How the person is named in the audit log and on screen."""
        return self.email


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffSession:
    """A signed-in person's live session, as the console's handlers see it."""

    user_id: int
    email: str
    principal: Principal
    csrf_token: str
    previews_off: bool
    created_at: datetime
    expires_at: datetime
    stretch_started_at: datetime
    now: datetime

    @property
    def role(self) -> Role:
        return self.principal.role


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionPolicy:
    """The timeouts and lockout the settings ask for (HASHGUARD_CONSOLE_*)."""

    idle_min: float
    absolute_h: float
    lockout_failures: int
    lockout_min: float


class SignInOutcome:
    """The outcomes a sign-in attempt is counted and audited by."""

    OK = "ok"
    WRONG_PASSWORD = "wrong_password"
    LOCKED = "locked"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise InvalidAccount("an e-mail address like name@example.org is required")
    return email


def staff_role(raw: str) -> Role:
    try:
        role = Role(raw)
    except ValueError:
        role = None
    if role not in STAFF_ROLES:
        raise InvalidAccount(f"a staff role is one of: {', '.join(sorted(r.value for r in STAFF_ROLES))}")
    assert role is not None
    return role


def check_password(password: str) -> None:
    """The one rule for a new password: long enough to resist guessing, short enough to hash."""
    if len(password) < MIN_PASSWORD:
        raise InvalidAccount(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidAccount(f"a password has at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise InvalidAccount("a password cannot hold a NUL character")


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored_hash`` was made from; None (no such account) is never."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        _hasher.verify(stored_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def parse_cookie_token(raw: str | None) -> str | None:
    """The session token of a cookie value, or None when absent or not one we could have set."""
    if not raw or len(raw) > 100 or not raw.isascii() or not re.fullmatch(r"[A-Za-z0-9_-]+", raw):
        return None
    return raw


def is_loopback_host(host: str | None) -> bool:
    """Whether the console is reached on this machine only: there the cookie may go without ``Secure``."""
    if not host:
        return False
    if host.startswith("["):  # [::1]:8080
        return host[1:].split("]", 1)[0] == "::1"
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in {"localhost", "127.0.0.1", "::1"}
