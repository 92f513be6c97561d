"""PostgreSQL storage for the detector context: API keys and match evidence."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from detector.auth import NewKey, Principal, Role
from detector.db import Queries

Q = Queries("detector")


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyInfo:
    id: int
    prefix: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchRecord:
    scan_id: uuid.UUID
    content_id: str
    content_url: str | None
    hash_entry_id: int
    hashset: str
    hashset_version: int
    entry_id: str
    tool: str
    tool_version: str
    distance: int
    api_key_id: int | None
    shadow: bool = False  # a shadow list's match: recorded, never answered or actioned
    quarantined: bool = False  # the entry is flood-quarantined: review, not automatic action
    # Provenance: the approval the tool ran under, or the local allowance, and the policy's reason.
    approval_id: int | None = None
    local_allowance_id: int | None = None
    approval_reason: str | None = None


async def insert_key(conn: asyncpg.Connection, key: NewKey, role: Role, label: str) -> int:
    return int(await conn.fetchval(Q.insert_key, key.prefix, key.digest, role.value, label))


async def find_key(conn: asyncpg.Connection, digest: bytes) -> Principal | None:
    row = await conn.fetchrow(Q.find_key, digest)
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


async def record_matches(conn: asyncpg.Connection, records: Sequence[MatchRecord]) -> None:
    if not records:
        return
    columns = [
        "scan_id",
        "content_id",
        "content_url",
        "hash_entry_id",
        "hashset",
        "hashset_version",
        "entry_id",
        "tool",
        "tool_version",
        "distance",
        "api_key_id",
        "shadow",
        "quarantined",
        "approval_id",
        "local_allowance_id",
        "approval_reason",
    ]
    await conn.copy_records_to_table(
        "scan_matches", records=[tuple(getattr(r, c) for c in columns) for r in records], columns=columns
    )


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval(Q.ping)
