"""The allow-list (``allowlist``): hashes of benign images that never match. Hashes are never shown back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hashsets.errors import HashsetError
from hashsets.events import record_event
from kernel.db import Queries

Q = Queries("hashsets")


@dataclass(frozen=True, kw_only=True, slots=True)
class AllowEntry:
    id: int
    tool: str
    reason: str
    actor: str
    added_at: datetime


async def allow(conn: asyncpg.Connection, tool: str, value: bytes, reason: str, actor: str) -> int:
    """Add a benign image's hash to the allow-list; returns its id (the hash is never shown back)."""
    if not reason.strip():
        raise HashsetError("say why the hash is allowed (--reason)")
    async with conn.transaction():
        allow_id = await conn.fetchval(Q.insert_allow, tool, value, reason.strip(), actor)
        if allow_id is None:
            raise HashsetError(f"that {tool} hash is already on the allow-list")
        await record_event(conn, actor, "allow", None, {"allow_id": allow_id, "tool": tool, "reason": reason.strip()})
    return int(allow_id)


async def disallow(conn: asyncpg.Connection, allow_id: int, reason: str, actor: str) -> None:
    async with conn.transaction():
        tool = await conn.fetchval(Q.delete_allow, allow_id)
        if tool is None:
            raise HashsetError(f"no allow-list entry has id {allow_id}")
        await record_event(conn, actor, "disallow", None, {"allow_id": allow_id, "tool": tool, "reason": reason})


async def list_allowed(conn: asyncpg.Connection) -> list[AllowEntry]:
    return [AllowEntry(**dict(r)) for r in await conn.fetch(Q.list_allow)]


async def allowed_hashes(conn: asyncpg.Connection) -> list[tuple[int, str, bytes]]:
    return [(r["id"], r["tool"], r["hash"]) for r in await conn.fetch(Q.allow_hashes)]
