"""Storage of the case evidence a hotline report is built from and the job never keeps beyond it:
the upload's own hashes, the uploader details a platform sent, the reviewer's report flags.
Written in the transactions of the match, the notice and the decision; purged with the evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import asyncpg

from kernel.db import Queries
from takedown.reports.case import Review, Uploader

Q = Queries("takedown.reports")


async def record_upload_hashes(
    conn: asyncpg.Connection, ticket_id: uuid.UUID, scan_id: uuid.UUID, hashes: Mapping[str, bytes]
) -> None:
    """The uploaded file's own hashes, in the match's transaction (``takedown.matching``)."""
    await record_upload_hashes_many(conn, [(ticket_id, scan_id, tool, value) for tool, value in sorted(hashes.items())])


async def record_upload_hashes_many(conn: asyncpg.Connection, rows: Sequence[tuple[uuid.UUID, uuid.UUID, str, bytes]]) -> None:
    """(ticket, scan, tool, value) rows for a whole call's tickets in one statement (a 1,000-item batch)."""
    if rows:
        await conn.execute(
            Q.insert_upload_hashes,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [bytes(r[3]) for r in rows],
        )


async def record_uploader(conn: asyncpg.Connection, ticket_id: uuid.UUID, uploader: Uploader) -> None:
    await conn.execute(
        Q.insert_uploader, ticket_id, uploader.account_id, uploader.screen_name, uploader.ip, uploader.port, uploader.upload_time
    )


async def record_review(conn: asyncpg.Connection, ticket_id: uuid.UUID, review: Review) -> None:
    """The report flags of the decision just written, in its transaction (``takedown.decision_store``)."""
    await conn.execute(
        Q.record_review,
        ticket_id,
        review.file_viewed,
        review.exif_viewed,
        review.escalate,
        review.viral,
        review.potential_meme,
        review.uk_priority,
        review.iwf_category,
        review.iccam_verdict,
    )


async def purge_case_evidence(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> None:
    """Upload hashes and uploader details go with the rest of the ticket's evidence."""
    await conn.execute(Q.purge_upload_hashes, ticket_id)
    await conn.execute(Q.purge_uploaders, ticket_id)
