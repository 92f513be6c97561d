"""Staff accounts' and console sessions' storage (``staff_users``, ``staff_sessions``).

Every change here is audited in the transaction that makes it: accounts created, disabled and
their passwords reset; every sign-in, every failed one and every lockout; sign-outs. The audit
entries name the account by e-mail (staff act under their own name) and never hold a password,
a hash of one, or a session token.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import asyncpg

from kernel import staff
from kernel.auditlog import append_audit
from kernel.db import Queries
from kernel.keys import Principal, Role, new_key
from kernel.keystore import insert_key
from kernel.staff import InvalidAccount, SessionPolicy, SignInOutcome, StaffSession, StaffUser

Q = Queries("kernel", "staff.sql")


def subject(email: str) -> str:
    """The audit log's subject for everything about one account."""
    return f"user:{email}"


def _user(row: asyncpg.Record) -> StaffUser:
    limit = row["tenants"]
    return StaffUser(
        id=row["id"],
        email=row["email"],
        role=Role(row["role"]),
        key_id=row["key_id"],
        key_prefix=row["key_prefix"],
        tenants=frozenset(limit) if limit else None,
        tenant_names=tuple(row["tenant_names"]),
        failed_count=row["failed_count"],
        locked_until=row["locked_until"],
        disabled_at=row["disabled_at"] or (row["now"] if row["key_revoked"] else None),
        previews_off=row["previews_off"],
        created_at=row["created_at"],
    )


async def create_user(
    conn: asyncpg.Connection, *, email: str, role: Role, password: str, tenants: Collection[int] = (), actor: str
) -> StaffUser:
    """Create an account with its backing staff key (limited to ``tenants``; empty: every tenant)."""
    email = staff.normalise_email(email)
    if role not in staff.STAFF_ROLES:
        raise InvalidAccount("console accounts are for staff roles: reviewer, lead, admin, auditor")
    password_hash = staff.hash_password(password)
    async with conn.transaction():
        key = new_key()  # its secret is dropped here: the account signs in with its password only
        key_id = await insert_key(conn, key, role, f"console:{email}", tenants=tenants)
        user_id = await conn.fetchval(Q.insert_user, email, key_id, password_hash)
        if user_id is None:
            raise InvalidAccount(f"an account for {email} exists already")
        await append_audit(
            conn,
            actor=actor,
            action="user.created",
            subject=subject(email),
            after={"role": role.value, "key": key.prefix, "tenants": sorted(tenants)},
        )
        found = await find_user(conn, email)
    assert found is not None
    return found


async def find_user(conn: asyncpg.Connection, email: str) -> StaffUser | None:
    row = await conn.fetchrow(Q.user_by_email, email.strip().lower())
    return None if row is None else _user(row)


async def list_users(conn: asyncpg.Connection) -> list[StaffUser]:
    return [_user(r) for r in await conn.fetch(Q.list_users)]


async def names_of_keys(conn: asyncpg.Connection, key_ids: Collection[int]) -> dict[int, str]:
    """The e-mail of the person behind each staff key that is an account's (others are absent)."""
    if not key_ids:
        return {}
    return {r["key_id"]: r["email"] for r in await conn.fetch(Q.names_of_keys, sorted(set(key_ids)))}


async def _existing(conn: asyncpg.Connection, email: str) -> StaffUser:
    user = await find_user(conn, email)
    if user is None:
        raise InvalidAccount(f"no account for {email.strip().lower()}")
    await conn.execute(Q.lock_user, user.id)
    return user


async def disable_user(conn: asyncpg.Connection, email: str, *, actor: str, reason: str | None = None) -> StaffUser:
    """Disable an account: its sessions end now and its backing key is revoked (its records stay)."""
    async with conn.transaction():
        user = await _existing(conn, email)
        key_id = await conn.fetchval(Q.disable_user, user.id)
        if key_id is None:
            raise InvalidAccount(f"the account for {user.email} is disabled already")
        await conn.execute(Q.revoke_backing_key, key_id)
        await conn.execute(Q.revoke_user_sessions, user.id)
        await append_audit(
            conn, actor=actor, action="user.disabled", subject=subject(user.email), after={"reason": reason} if reason else None
        )
        found = await find_user(conn, user.email)
    assert found is not None
    return found


async def reset_password(conn: asyncpg.Connection, email: str, password: str, *, actor: str) -> None:
    """Set a new password: the account's sessions end and any lockout is lifted."""
    password_hash = staff.hash_password(password)
    async with conn.transaction():
        user = await _existing(conn, email)
        await conn.execute(Q.set_password, user.id, password_hash)
        await conn.execute(Q.revoke_user_sessions, user.id)
        await append_audit(conn, actor=actor, action="user.password_reset", subject=subject(user.email))


async def set_previews_off(conn: asyncpg.Connection, user_id: int, email: str, off: bool) -> None:
    """The person's own setting: never offer previews of material (audited, it changes their exposure)."""
    async with conn.transaction():
        await conn.execute(Q.set_previews_off, user_id, off)
        await append_audit(conn, actor=email, action="user.previews_set", subject=subject(email), after={"previews_off": off})


@dataclass(frozen=True, kw_only=True, slots=True)
class SignIn:
    """A sign-in attempt's answer: the outcome, and the new session's token and CSRF token when ``ok``."""

    outcome: str
    token: str | None = None
    csrf_token: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == SignInOutcome.OK


async def sign_in(conn: asyncpg.Connection, email: str, password: str, policy: SessionPolicy, *, remote: str | None) -> SignIn:
    """Check the password and open a session; every attempt, right or wrong, is audited.

    An unknown account costs as much time as a known one (a dummy hash is verified) and is
    audited under the address tried. ``policy.lockout_failures`` wrong passwords in a row lock the
    account for ``policy.lockout_min``; a locked account refuses even the right password.
    """
    try:
        wanted = staff.normalise_email(email)
    except InvalidAccount:
        wanted = email.strip().lower()[:320]
    async with conn.transaction():
        # Attempts on one account are serialised, so the failure count cannot be raced past the lockout.
        await conn.execute(Q.lock_user_by_email, wanted)
        row = await conn.fetchrow(Q.user_by_email, wanted)
        user = None if row is None else _user(row)
        right = staff.verify_password(None if row is None else row["password_hash"], password)
        now = row["now"] if row is not None else None
        where = {"remote": remote} if remote else {}
        if user is None:
            await append_audit(
                conn, actor=wanted, action="user.sign_in_failed", subject=subject(wanted), after={"why": "unknown", **where}
            )
            return SignIn(outcome=SignInOutcome.UNKNOWN)
        if user.disabled_at is not None:
            await append_audit(
                conn, actor=wanted, action="user.sign_in_failed", subject=subject(wanted), after={"why": "disabled", **where}
            )
            return SignIn(outcome=SignInOutcome.DISABLED)
        assert now is not None
        if user.locked(now):
            await append_audit(
                conn, actor=wanted, action="user.sign_in_failed", subject=subject(wanted), after={"why": "locked", **where}
            )
            return SignIn(outcome=SignInOutcome.LOCKED)
        if not right:
            row = await conn.fetchrow(Q.record_failure, user.id, policy.lockout_failures, policy.lockout_min)
            await append_audit(
                conn,
                actor=wanted,
                action="user.sign_in_failed",
                subject=subject(wanted),
                after={"why": "wrong_password", **where},
            )
            if row["locked"]:
                await append_audit(
                    conn,
                    actor="system",
                    action="user.locked",
                    subject=subject(wanted),
                    after={"until": row["locked_until"], "failures": policy.lockout_failures},
                )
                return SignIn(outcome=SignInOutcome.LOCKED)
            return SignIn(outcome=SignInOutcome.WRONG_PASSWORD)
        await conn.execute(Q.record_success, user.id)
        await conn.execute(Q.purge_sessions, policy.idle_min)
        token, csrf = staff.new_token(), staff.new_token()
        await conn.execute(Q.insert_session, staff.token_digest(token), user.id, csrf, policy.absolute_h)
        await append_audit(
            conn, actor=wanted, action="user.signed_in", subject=subject(wanted), after={"role": user.role.value, **where}
        )
        return SignIn(outcome=SignInOutcome.OK, token=token, csrf_token=csrf)


async def session(conn: asyncpg.Connection, token: str, policy: SessionPolicy) -> StaffSession | None:
    """The live session of ``token`` (touched: its idle clock restarts), or None."""
    row = await conn.fetchrow(Q.touch_session, staff.token_digest(token), policy.idle_min, staff.STRETCH_PAUSE_MIN)
    if row is None:
        return None
    limit = row["tenants"]
    principal = Principal(
        key_id=row["key_id"], prefix=row["key_prefix"], role=Role(row["role"]), tenants=frozenset(limit) if limit else None
    )
    return StaffSession(
        user_id=row["user_id"],
        email=row["email"],
        principal=principal,
        csrf_token=row["csrf_token"],
        previews_off=row["previews_off"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        stretch_started_at=row["stretch_started_at"],
        now=row["now"],
    )


async def sign_out(conn: asyncpg.Connection, token: str, email: str) -> None:
    async with conn.transaction():
        if await conn.fetchval(Q.revoke_session, staff.token_digest(token)) is not None:
            await append_audit(conn, actor=email, action="user.signed_out", subject=subject(email))
