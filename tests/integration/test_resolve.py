"""detector.resolve.Resolver on the real database, with hashsets' catalogue: what a hit becomes."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import pytest

from detector.errors import NotReady
from detector.match import Match
from detector.matcher import Hit
from detector.resolve import Answered, Resolver
from detector.scan import Pending, Resolution, ScanContext
from detector.tools.registry import ToolRegistry
from hashsets import lists
from hashsets.parse import parse_lines
from hashsets.serving import MatchCatalogue
from kernel.keys import DEFAULT_TENANT_ID
from kernel.metrics import Metrics

CONTEXT = ScanContext(content_id="c-1", content_url=None, api_key_id=None, tenant_id=DEFAULT_TENANT_ID)


@dataclass(frozen=True, kw_only=True, slots=True)
class Opened:
    ticket_id: uuid.UUID


class RecordingDesk:
    """The takedown side as a list of what it was asked to open, and what was committed."""

    def __init__(self) -> None:
        self.opened: list[Sequence[Match]] = []
        self.committed_tickets: list[Opened] = []

    async def open_for_many(self, conn: asyncpg.Connection, items: Sequence[Answered]) -> list[Opened]:
        self.opened.extend(item.matches for item in items)
        return [Opened(ticket_id=uuid.uuid4()) for _ in items]

    def committed(self, ticket: Opened) -> None:
        self.committed_tickets.append(ticket)


def resolver(pool: asyncpg.Pool, desk: RecordingDesk) -> Resolver[Opened]:
    return Resolver(
        pool=pool,
        lists=MatchCatalogue(),
        tickets=desk,
        tools=ToolRegistry.load(),
        metrics=Metrics(),
        flood_max_matches=0,
        flood_window_s=60,
    )


async def one(resolve: Resolver[Opened], scan_id: uuid.UUID, hits: Sequence[Hit]) -> Resolution:
    [resolved] = await resolve([Pending(scan_id=scan_id, context=CONTEXT, hits=hits, hashes={})])
    return resolved


async def entry_row(conn: asyncpg.Connection) -> int:
    text = "id,hash\ne1," + hashlib.sha256(b"1").hexdigest() + "\n"
    pdq = ToolRegistry.load().get("pdq")
    await lists.import_entries(
        conn,
        name="list",
        tool="pdq",
        source="tests",
        entries=parse_lines(text.splitlines(keepends=True), pdq.parse_hex),
        file_sha256=b"",
    )
    return int(await conn.fetchval("SELECT id FROM hash_entries WHERE entry_id = 'e1'"))


async def test_a_hit_becomes_an_answered_match_with_evidence_and_a_ticket(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        row = await entry_row(conn)
    desk = RecordingDesk()
    scan_id = uuid.uuid4()
    resolved = await one(
        resolver(pool, desk), scan_id, [Hit(tool="pdq", row_id=row, distance=3, hashset="list", hashset_version=1)]
    )
    [match] = resolved.matches
    assert (match.entry_row, match.hashset, match.entry_id, match.distance, match.shadow) == (row, "list", "e1", 3, False)
    assert desk.opened == [[match]] and resolved.ticket_id == str(desk.committed_tickets[0].ticket_id)
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT scan_id, content_id, hash_entry_id, entry_id, shadow FROM scan_matches")
    assert [tuple(r) for r in stored] == [(scan_id, "c-1", row, "e1", False)]


async def test_a_shadow_hit_is_evidence_only_and_a_lost_entry_is_not_ready(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        row = await entry_row(conn)
    desk = RecordingDesk()
    resolve = resolver(pool, desk)
    resolved = await one(
        resolve, uuid.uuid4(), [Hit(tool="pdq", row_id=row, distance=0, hashset="list", hashset_version=1, shadow=True)]
    )
    assert resolved.matches == [] and resolved.ticket_id is None and desk.opened == []
    with pytest.raises(NotReady):
        await one(resolve, uuid.uuid4(), [Hit(tool="pdq", row_id=row + 1000, distance=0)])
    async with pool.acquire() as conn:
        assert [tuple(r) for r in await conn.fetch("SELECT hash_entry_id, shadow FROM scan_matches")] == [(row, True)]
