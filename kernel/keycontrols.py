"""Storage of what is set on an API key beside its role (``key_controls``): distances granted, its
own rate limit, a suspension. Every change is recorded in the audit log in its own transaction.

Keys are named by their printed prefix, as people name them to each other (``keys list``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel import auditlog
from kernel.db import Queries
from kernel.errors import ServiceError
from kernel.ratelimit import KeyControls

Q = Queries("kernel", "key_controls.sql")


class UnknownKey(ServiceError):
    """No active key has this prefix."""

    status = 404
    code = "not_found"


class NotSuspended(ServiceError):
    """The key is not suspended."""

    status = 409
    code = "not_suspended"


@dataclass(frozen=True, kw_only=True, slots=True)
class Suspension:
    prefix: str
    since: datetime
    by: str
    reason: str


async def load(conn: asyncpg.Connection, key_id: int) -> KeyControls:
    row = await conn.fetchrow(Q.controls_of, key_id)
    if row is None:
        return KeyControls()
    return KeyControls(
        distances=row["distances_granted"],
        rate_per_s=row["rate_per_s"],
        burst=row["burst"],
        suspended=row["suspended_at"] is not None,
        suspended_reason=row["suspended_reason"],
    )


async def _key(conn: asyncpg.Connection, prefix: str) -> asyncpg.Record:
    row = await conn.fetchrow(Q.key_by_prefix, prefix)
    if row is None:
        raise UnknownKey(f"no active key has the prefix {prefix!r}")
    await conn.execute(Q.ensure_controls, row["id"])
    return row


async def set_distances(conn: asyncpg.Connection, prefix: str, *, granted: bool, actor: str, reason: str) -> int:
    """Grant (or withdraw) distances in this key's scan and lookup answers; returns the key id."""
    async with conn.transaction():
        key = await _key(conn, prefix)
        before = await conn.fetchrow(Q.lock_controls, key["id"])
        await conn.execute(Q.set_distances, key["id"], granted)
        await auditlog.record(
            conn,
            auditlog.Change(
                actor=actor,
                action="key.distances_granted" if granted else "key.distances_withdrawn",
                subject=f"key:{prefix}",
                before={"distances": before["distances_granted"]},
                after={"distances": granted, "reason": reason},
            ),
        )
        return int(key["id"])


async def set_limit(
    conn: asyncpg.Connection, prefix: str, *, rate_per_s: float | None, burst: int | None, actor: str, reason: str
) -> int:
    """Give this key its own rate limit (None: back to the settings' default); returns the key id."""
    async with conn.transaction():
        key = await _key(conn, prefix)
        before = await conn.fetchrow(Q.lock_controls, key["id"])
        await conn.execute(Q.set_rate, key["id"], rate_per_s, burst)
        await auditlog.record(
            conn,
            auditlog.Change(
                actor=actor,
                action="key.rate_limit_set",
                subject=f"key:{prefix}",
                before={"rate_per_s": before["rate_per_s"], "burst": before["burst"]},
                after={"rate_per_s": rate_per_s, "burst": burst, "reason": reason},
            ),
        )
        return int(key["id"])


async def suspend(conn: asyncpg.Connection, key_id: int, *, actor: str, reason: str, details: Mapping[str, Any]) -> bool:
    """Suspend a key, in the caller's transaction, and audit it; False when it already was."""
    await conn.execute(Q.ensure_controls, key_id)
    if await conn.fetchval(Q.suspend_key, key_id, actor, reason) is None:
        return False
    prefix = await conn.fetchval(Q.prefix_of, key_id)
    await auditlog.record(
        conn,
        auditlog.Change(actor=actor, action="key.suspended", subject=f"key:{prefix}", after={"reason": reason, **dict(details)}),
    )
    return True


async def release(conn: asyncpg.Connection, prefix: str, *, actor: str, reason: str) -> tuple[int, datetime]:
    """Lift a key's suspension; returns the key id and when. 404 for an unknown key, 409 when it is not suspended."""
    async with conn.transaction():
        key = await _key(conn, prefix)
        before = await conn.fetchrow(Q.lock_controls, key["id"])
        at = await conn.fetchval(Q.release_key, key["id"])
        if at is None:
            raise NotSuspended(f"the key {prefix} is not suspended")
        await auditlog.record(
            conn,
            auditlog.Change(
                actor=actor,
                action="key.released",
                subject=f"key:{prefix}",
                before={"suspended_reason": before["suspended_reason"], "suspended_by": before["suspended_by"]},
                after={"reason": reason},
            ),
        )
        return int(key["id"]), at


async def suspended(conn: asyncpg.Connection) -> list[Suspension]:
    return [
        Suspension(prefix=r["key_prefix"], since=r["suspended_at"], by=r["suspended_by"], reason=r["suspended_reason"])
        for r in await conn.fetch(Q.suspended_keys)
    ]
