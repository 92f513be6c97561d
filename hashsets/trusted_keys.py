"""Issuers' public keys trusted to sign list manifests (``trusted_keys``)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from hashsets.errors import HashsetError
from hashsets.events import record_event
from hashsets.manifest import TrustedKey
from kernel.db import Queries

Q = Queries("hashsets")


async def trust(conn: asyncpg.Connection, organisation: str, public_key: bytes, fingerprint: str, actor: str) -> int:
    async with conn.transaction():
        key_id = await conn.fetchval(Q.insert_trusted_key, organisation, public_key, fingerprint, actor)
        await record_event(conn, actor, "trust", None, {"organisation": organisation, "key": fingerprint})
    return int(key_id)


async def distrust(conn: asyncpg.Connection, organisation: str, fingerprint: str, actor: str) -> None:
    async with conn.transaction():
        if await conn.fetchval(Q.revoke_trusted_key, organisation, fingerprint) is None:
            raise HashsetError(f"no active key {fingerprint} is trusted for {organisation!r}")
        await record_event(conn, actor, "distrust", None, {"organisation": organisation, "key": fingerprint})


async def trusted_keys(conn: asyncpg.Connection) -> list[tuple[TrustedKey, str, str, datetime]]:
    return [
        (
            TrustedKey(id=r["id"], organisation=r["organisation"], public_key=r["public_key"]),
            r["fingerprint"],
            r["added_by"],
            r["added_at"],
        )
        for r in await conn.fetch(Q.trusted_keys)
    ]
