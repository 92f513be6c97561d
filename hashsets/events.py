"""The record of changes to lists and their defences (``hashset_events``), mirrored into the audit chain."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from kernel import auditlog
from kernel.auditlog import Change
from kernel.db import Queries

Q = Queries("hashsets")


async def record_event(
    conn: asyncpg.Connection, actor: str, action: str, hashset: str | None, details: Mapping[str, Any] | None = None
) -> None:
    """Append to ``hashset_events`` and to the audit chain. Details never hold hash values."""
    await conn.execute(Q.insert_event, actor or "unknown", action, hashset, json.dumps(dict(details or {}), default=str))
    await auditlog.record(
        conn,
        Change(
            actor=actor or "unknown",
            action=f"hashset.{action}",
            subject=f"hashset:{hashset}" if hashset else "hashsets",
            after=json.loads(json.dumps(dict(details or {}), default=str)),
        ),
    )


async def events(conn: asyncpg.Connection, name: str | None = None) -> list[tuple[datetime, str, str, str | None, str]]:
    return [(r["at"], r["actor"], r["action"], r["hashset"], r["details"]) for r in await conn.fetch(Q.list_events, name)]
