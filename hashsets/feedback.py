"""Reviewers' wrong-match decisions per list entry (``hash_entry_feedback``), exported for the list's issuer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hashsets.lists import hashset_row
from kernel.db import Queries

Q = Queries("hashsets")


@dataclass(frozen=True, kw_only=True, slots=True)
class Feedback:
    entry_id: str
    added_in_version: int
    wrong_matches: int
    last_decided_at: datetime
    notes: str


async def record_wrong_match(
    conn: asyncpg.Connection, hash_entry_id: int, reviewer: str, note: str = "", scan_id: uuid.UUID | None = None
) -> int:
    """Keep a reviewer's decision that a match of this entry (``scan_matches.hash_entry_id``) was wrong.

    Called by the takedown context when a reviewer rejects a match; exported per list with
    ``hashguard hashsets feedback NAME`` for the issuer.
    """
    return int(await conn.fetchval(Q.insert_feedback, hash_entry_id, scan_id, reviewer, note))


async def feedback(conn: asyncpg.Connection, name: str) -> list[Feedback]:
    hashset = await hashset_row(conn, name)
    return [
        Feedback(
            entry_id=r["entry_id"],
            added_in_version=r["added_in_version"],
            wrong_matches=r["wrong_matches"],
            last_decided_at=r["last_decided_at"],
            notes=r["notes"] or "",
        )
        for r in await conn.fetch(Q.feedback_for_list, hashset["id"])
    ]
