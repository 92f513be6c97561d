"""API keys' storage (``api_keys``): every context authenticates through it, so it is the kernel's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.db import Queries
from kernel.keys import NewKey, Principal, Role

Q = Queries("kernel")


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyInfo:
    id: int
    prefix: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


async def insert_key(conn: asyncpg.Connection, key: NewKey, role: Role, label: str) -> int:
    return int(await conn.fetchval(Q.insert_key, key.prefix, key.digest, role.value, label))


async def find_key(conn: asyncpg.Connection, digest: bytes) -> Principal | None:
    row = await conn.fetchrow(Q.find_key, digest)
    return None if row is None else Principal(key_id=row["id"], prefix=row["key_prefix"], role=Role(row["role"]))


async def find_active_key_by_prefix(conn: asyncpg.Connection, prefix: str) -> Principal | None:
    """The unrevoked key with this printable prefix (how people name a key to each other), or None."""
    row = await conn.fetchrow(Q.find_active_key_by_prefix, prefix)
    return None if row is None else Principal(key_id=row["id"], prefix=row["key_prefix"], role=Role(row["role"]))


async def list_keys(conn: asyncpg.Connection) -> list[KeyInfo]:
    return [
        KeyInfo(
            id=r["id"],
            prefix=r["key_prefix"],
            role=Role(r["role"]),
            label=r["label"],
            created_at=r["created_at"],
            revoked_at=r["revoked_at"],
        )
        for r in await conn.fetch(Q.list_keys)
    ]


async def revoke_key(conn: asyncpg.Connection, prefix: str) -> bool:
    return await conn.fetchval(Q.revoke_key, prefix) is not None


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval(Q.ping)
