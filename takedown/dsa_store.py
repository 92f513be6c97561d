"""Storage of the DSA Transparency Database outbox: statements of reasons queued when issued,
claimed, sent and marked by ``takedown.dsa_jobs``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import Queries

Q = Queries("takedown", "dsa_queries.sql")


@dataclass(frozen=True, kw_only=True, slots=True)
class Submission:
    """A queued statement claimed for sending."""

    id: int
    puid: str
    body: dict[str, Any]
    attempts: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    pending: int
    submitted: int
    failed: int
    oldest_pending: datetime | None


async def enqueue(conn: asyncpg.Connection, statement_id: int, ticket_id: uuid.UUID, wire: Mapping[str, Any]) -> None:
    """Queue a statement for the database, in the caller's (the statement's) transaction."""
    await conn.execute(Q.insert_dsa_submission, statement_id, ticket_id, str(wire["puid"]), json.dumps(wire))


async def claim(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Submission]:
    async with conn.transaction():
        rows = await conn.fetch(Q.claim_dsa_submissions, limit, lease_s)
    return [Submission(id=r["id"], puid=r["puid"], body=json.loads(r["body"]), attempts=r["attempts"]) for r in rows]


async def mark_submitted(conn: asyncpg.Connection, submission_id: int, status: int, db_uuid: str | None) -> None:
    await conn.execute(Q.mark_dsa_submitted, submission_id, status, db_uuid)


async def mark_submitted_many(conn: asyncpg.Connection, accepted: Sequence[tuple[int, str | None]], status: int) -> None:
    """Mark a batch accepted in one statement: (row id, the database's uuid or None) each."""
    if accepted:
        await conn.execute(Q.mark_dsa_submitted_many, [a[0] for a in accepted], status, [a[1] for a in accepted])


async def mark_rejected(
    conn: asyncpg.Connection, submission_id: int, status: int | None, error: str, errors: Mapping[str, Any]
) -> None:
    await conn.execute(Q.mark_dsa_rejected, submission_id, status, error[:1000], json.dumps(errors))


async def mark_retry(
    conn: asyncpg.Connection, submission_id: int, status: int | None, error: str | None, retry_in_s: float, *, counts: bool
) -> None:
    await conn.execute(Q.mark_dsa_retry, submission_id, status, None if error is None else error[:1000], retry_in_s, counts)


async def retry_failed(conn: asyncpg.Connection, ticket_id: uuid.UUID | None = None) -> int:
    return len(await conn.fetch(Q.retry_dsa_failed, ticket_id))


async def counts(conn: asyncpg.Connection) -> Counts:
    rows = {r["state"]: r for r in await conn.fetch(Q.dsa_counts)}

    def n(state: str) -> int:
        return int(rows[state]["n"]) if state in rows else 0

    return Counts(
        pending=n("pending"),
        submitted=n("submitted"),
        failed=n("failed"),
        oldest_pending=rows["pending"]["oldest"] if "pending" in rows else None,
    )


async def submissions(conn: asyncpg.Connection, state: str | None = None, limit: int = 100) -> Sequence[dict[str, Any]]:
    """The queue as plain values (for ``hashguard dsa list``)."""
    out = []
    for r in await conn.fetch(Q.dsa_submissions_list, state, limit):
        row = dict(r)
        row["errors"] = json.loads(row["errors"]) if row["errors"] else None
        out.append(row)
    return out
