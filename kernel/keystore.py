"""API keys' storage (``api_keys``): every context authenticates through it, so it is the kernel's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.db import Queries
from kernel.keys import DEFAULT_TENANT_ID, NewKey, Principal, Role

Q = Queries("kernel")


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyInfo:
    id: int
    prefix: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None
    tenant: str | None = None  # a platform key's tenant
    tenants: tuple[str, ...] = ()  # a staff key's limit (empty: every tenant)


@dataclass(frozen=True, kw_only=True, slots=True)
class Tenant:
    id: int
    name: str
    created_at: datetime


async def insert_key(
    conn: asyncpg.Connection,
    key: NewKey,
    role: Role,
    label: str,
    *,
    tenant_id: int | None = None,
    tenants: Collection[int] = (),
) -> int:
    """Store a key. A platform key belongs to ``tenant_id`` (the default tenant when None); a staff
    key may be limited to ``tenants`` (empty: every tenant). Call inside a transaction."""
    if role is Role.PLATFORM:
        if tenants:
            raise ValueError("a platform key belongs to one tenant; it takes no tenant limit")
        owner: int | None = DEFAULT_TENANT_ID if tenant_id is None else tenant_id
    else:
        if tenant_id is not None:
            raise ValueError("only platform keys belong to a tenant; limit a staff key with tenants")
        owner = None
    key_id = int(await conn.fetchval(Q.insert_key, key.prefix, key.digest, role.value, label, owner))
    if tenants:
        await conn.execute(Q.limit_key_tenants, key_id, sorted(set(tenants)))
    return key_id


def _principal(row: asyncpg.Record | None) -> Principal | None:
    if row is None:
        return None
    role = Role(row["role"])
    if role is Role.PLATFORM:
        return Principal(
            key_id=row["id"],
            prefix=row["key_prefix"],
            role=role,
            tenant_id=row["tenant_id"],
            tenants=frozenset({row["tenant_id"]}),
        )
    limit = row["tenants"]
    return Principal(key_id=row["id"], prefix=row["key_prefix"], role=role, tenants=frozenset(limit) if limit else None)


async def find_key(conn: asyncpg.Connection, digest: bytes) -> Principal | None:
    return _principal(await conn.fetchrow(Q.find_key, digest))


async def find_active_key_by_prefix(conn: asyncpg.Connection, prefix: str) -> Principal | None:
    """The unrevoked key with this printable prefix (how people name a key to each other), or None."""
    return _principal(await conn.fetchrow(Q.find_active_key_by_prefix, prefix))


async def create_tenant(conn: asyncpg.Connection, name: str) -> Tenant | None:
    """Create a tenant; None when one of that name exists."""
    row = await conn.fetchrow(Q.insert_tenant, name)
    return None if row is None else Tenant(id=row["id"], name=row["name"], created_at=row["created_at"])


async def list_tenants(conn: asyncpg.Connection) -> list[Tenant]:
    return [Tenant(id=r["id"], name=r["name"], created_at=r["created_at"]) for r in await conn.fetch(Q.list_tenants)]


async def tenant_ids(conn: asyncpg.Connection, names: Collection[str]) -> dict[str, int]:
    """The ids of the tenants named (names not found are absent from the answer)."""
    return {r["name"]: r["id"] for r in await conn.fetch(Q.tenant_ids, list(names))}


async def list_keys(conn: asyncpg.Connection) -> list[KeyInfo]:
    return [
        KeyInfo(
            id=r["id"],
            prefix=r["key_prefix"],
            role=Role(r["role"]),
            label=r["label"],
            created_at=r["created_at"],
            revoked_at=r["revoked_at"],
            tenant=r["tenant"],
            tenants=tuple(r["tenants"]),
        )
        for r in await conn.fetch(Q.list_keys)
    ]


async def revoke_key(conn: asyncpg.Connection, prefix: str) -> bool:
    return await conn.fetchval(Q.revoke_key, prefix) is not None


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval(Q.ping)


async def count_platform_tenants(conn: asyncpg.Connection) -> int:
    """How many tenants hold an active platform key."""
    return int(await conn.fetchval(Q.count_platform_tenants))
