"""Versions on the real database: deltas, retractions, rollback, the defences and their triggers."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import pytest

from detector.evidence import Seen
from detector.resolve import FloodRule, flood_check
from detector.tools.pdq import PdqTool
from hashsets import allowlist, entries, events, lists, quarantine
from hashsets import feedback as entry_feedback
from hashsets.errors import EntryNotFound, InvalidListFile, VersionConflict
from hashsets.manifest import Kind
from hashsets.parse import parse_blocks
from hashsets.serving import MatchCatalogue
from kernel import keystore
from kernel.keys import Role, new_key

PDQ = PdqTool()


def h(i: int) -> str:
    return hashlib.sha256(f"entry-{i}".encode()).hexdigest()


async def put(
    conn: asyncpg.Connection, text: str, *, kind: Kind = Kind.FULL, base: int | None = None, name: str = "list"
) -> lists.ImportResult:
    request = lists.ImportRequest(name=name, tool="pdq", source="tests", kind=kind, base_version=base, actor="tester")
    blocks = parse_blocks(text.splitlines(keepends=True), PDQ.parse_hex, width=32, allow_retractions=kind is Kind.DELTA)
    return await lists.import_list(conn, request, blocks)


async def current_entries(conn: asyncpg.Connection, name: str = "list") -> set[str]:
    """The issuer ids the detector would load now (hash checked to belong to the id)."""
    [version] = [v for v in await lists.active_versions(conn) if v.name == name]
    async with conn.transaction():
        rows = [r async for chunk in entries.stream_entries(conn, version) for r in chunk]
    ids = {
        r["id"]: r["entry_id"]
        for r in await conn.fetch("SELECT id, entry_id FROM hash_entries WHERE id = ANY($1)", [i for i, _ in rows])
    }
    found = {ids[i] for i, _ in rows}
    assert {value.hex() for _, value in rows} == {h(int(e[1:])) for e in found}
    assert version.entry_count == len(rows) or await conn.fetchval("SELECT count(*) FROM hash_entry_disables") > 0
    return found


def full(*ids: int) -> str:
    return "id,hash\n" + "".join(f"e{i},{h(i)}\n" for i in ids)


async def test_deltas_add_and_retract_and_rollback_moves_the_pointer(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await put(conn, full(1, 2, 3))
        v2 = await put(conn, f"op,id,hash\nadd,e4,{h(4)}\nretract,e2,\n", kind=Kind.DELTA)
        assert (v2.version, v2.added, v2.retracted, v2.entries) == (2, 1, 1, 3)
        assert await current_entries(conn) == {"e1", "e3", "e4"}
        # Retraction by hash alone, and replacing an id (retract + add in one delta).
        v3 = await put(conn, f"op,id,hash\nretract,,{h(1)}\nretract,e3,\nadd,e3,{h(3)}\n", kind=Kind.DELTA)
        assert v3.entries == 2
        assert await current_entries(conn) == {"e3", "e4"}
        rows_before = await conn.fetchval("SELECT count(*) FROM hash_entries")

        assert await lists.rollback(conn, "list", 1, "tester") == 3
        assert await current_entries(conn) == {"e1", "e2", "e3"}
        assert await conn.fetchval("SELECT count(*) FROM hash_entries") == rows_before  # a pointer move, no copy

        # After the rollback a delta applies to the current version (1), not to the abandoned 2 and 3.
        v4 = await put(conn, f"op,id,hash\nretract,e1,\nadd,e5,{h(5)}\n", kind=Kind.DELTA)
        assert v4.version == 4
        assert await current_entries(conn) == {"e2", "e3", "e5"}
        # A sibling branch retracting the same row as version 2 did: both retractions are kept.
        v5 = await put(conn, "op,id,hash\nretract,e2,\n", kind=Kind.DELTA)
        assert await current_entries(conn) == {"e3", "e5"} and v5.entries == 2
        await lists.rollback(conn, "list", 2, "tester")
        assert await current_entries(conn) == {"e1", "e3", "e4"}

        # A full import starts a new lineage.
        await put(conn, full(7, 8))
        assert await current_entries(conn) == {"e7", "e8"}
        actions = [a for _, _, a, _, _ in await events.events(conn, "list")]
        assert actions.count("import") == 6 and actions.count("rollback") == 2


async def test_bad_deltas_change_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await put(conn, full(1, 2))
        before = await conn.fetchval("SELECT generation FROM hashset_generation")
        with pytest.raises(InvalidListFile, match="line 3: retracts an entry the base version does not hold"):
            await put(conn, f"op,id,hash\nadd,e3,{h(3)}\nretract,e9,\n", kind=Kind.DELTA)
        with pytest.raises(InvalidListFile, match="line 2: the hash differs from the entry with that id"):
            await put(conn, f"op,id,hash\nretract,e1,{h(2)}\n", kind=Kind.DELTA)
        with pytest.raises(InvalidListFile, match="adds ids the list already holds \\('e2'\\)"):
            await put(conn, f"op,id,hash\nadd,e2,{h(5)}\n", kind=Kind.DELTA)
        with pytest.raises(VersionConflict, match="has no version 7"):
            await put(conn, f"op,id,hash\nadd,e6,{h(6)}\n", kind=Kind.DELTA, base=7)
        with pytest.raises(VersionConflict, match="a delta needs a base"):
            await put(conn, f"op,id,hash\nadd,e6,{h(6)}\n", kind=Kind.DELTA, name="new-list")
        assert await current_entries(conn) == {"e1", "e2"}
        assert await conn.fetchval("SELECT count(*) FROM hashset_versions") == 1
        assert await conn.fetchval("SELECT count(*) FROM hash_entries") == 2
        assert await conn.fetchval("SELECT generation FROM hashset_generation") == before


async def test_every_change_to_what_is_matched_bumps_the_generation(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await put(conn, full(1, 2, 3))
        await put(conn, full(1, 2, 3, 4))

        async def bumps(action) -> bool:  # type: ignore[no-untyped-def]
            before = await lists.generation(conn)
            await action
            return await lists.generation(conn) > before

        assert await bumps(lists.rollback(conn, "list", 1, "t"))
        assert await bumps(lists.set_status(conn, "list", "shadow", "t", "trying it"))
        assert await bumps(lists.set_threshold(conn, "list", 12, "t", "fewer false positives"))
        assert await bumps(entries.disable_entry(conn, "list", "e2", "wrong match", "t"))
        assert await bumps(entries.enable_entry(conn, "list", "e2", "checked again", "t"))
        allow_id = await allowlist.allow(conn, "pdq", bytes(32), "benign meme", "t")
        assert await bumps(allowlist.disallow(conn, allow_id, "no longer needed", "t"))
        assert await bumps(put(conn, full(9)))


async def test_a_disabled_entry_stays_disabled_across_a_full_reimport(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await put(conn, full(1, 2, 3))
        await entries.disable_entry(conn, "list", "e2", "collides with a stock photo", "reviewer-1")
        assert await current_entries(conn) == {"e1", "e3"}
        await put(conn, full(1, 2, 3, 4))
        assert await current_entries(conn) == {"e1", "e3", "e4"}
        with pytest.raises(EntryNotFound):
            await entries.disable_entry(conn, "list", "e99", "no such entry", "reviewer-1")
        await entries.enable_entry(conn, "list", "e2", "issuer confirmed", "reviewer-1")
        assert await current_entries(conn) == {"e1", "e2", "e3", "e4"}
        [(_, actor, _, _, details)] = [e for e in await events.events(conn, "list") if e[2] == "disable_entry"]
        assert actor == "reviewer-1" and "collides with a stock photo" in details and h(2) not in details


async def test_flood_quarantine_counts_contents_and_sources_fires_again_after_release_and_feedback(
    pool: asyncpg.Pool,
) -> None:
    rule = FloodRule(limit=3, window_s=60, min_sources=2)  # at most 2 distinct contents count per source

    async def match(conn: asyncpg.Connection, tenant: int, content: str) -> None:
        await conn.execute(
            "INSERT INTO scan_matches (scan_id, content_id, hash_entry_id, hashset, hashset_version, entry_id, tool,"
            " tool_version, distance, tenant_id) VALUES ($1, $2, $3, 'list', 1, 'e1', 'pdq', '1', 0, $4)",
            uuid.uuid4(),
            content,
            e1,
            tenant,
        )

    async with pool.acquire() as conn:
        await put(conn, full(1, 2))
        e1 = await conn.fetchval("SELECT id FROM hash_entries WHERE entry_id = 'e1'")
        # Sources are tenants: a is the default one (every key of a single-platform install), b another.
        a, b = 1, await conn.fetchval("INSERT INTO tenants (name) VALUES ('b') RETURNING id")
        # While only tenant a holds a platform key, a flood can only be a's: it keeps its own quarantine.
        await keystore.insert_key(conn, new_key(), Role.PLATFORM, "a", tenant_id=a)
        alone = [Seen(entry_row=e1, source=a, content_id=f"alone-{i}") for i in range(4)]
        assert await flood_check(conn, MatchCatalogue(), [e1], rule, alone) == ({e1}, 1)
        await quarantine.release_quarantine(conn, "list", "e1", "lead-1", "test: the single-platform case")
        # From here tenant b holds a key too: two tenants, so one alone never floods.
        await keystore.insert_key(conn, new_key(), Role.PLATFORM, "b", tenant_id=b)
        # One tenant alone, however many contents it sends (and the same content many times), never floods.
        for i in range(20):
            await match(conn, a, f"a-{i}")
            await match(conn, a, "a-0")
        assert await flood_check(conn, MatchCatalogue(), [e1], rule) == (set(), 0)
        many = [Seen(entry_row=e1, source=a, content_id=f"batch-{i}") for i in range(101)]
        assert await flood_check(conn, MatchCatalogue(), [e1], rule, many) == (set(), 0)  # a 101-item batch
        # A second tenant makes it a flood: 2 + 2 distinct contents > 3 (the batch being added counts).
        assert await flood_check(conn, MatchCatalogue(), [e1], rule, [Seen(entry_row=e1, source=b, content_id="b-0")]) == (
            set(),
            0,
        )
        await match(conn, b, "b-0")
        assert await flood_check(conn, MatchCatalogue(), [e1], rule, [Seen(entry_row=e1, source=b, content_id="b-1")]) == (
            {e1},
            1,
        )
        assert await flood_check(conn, MatchCatalogue(), [e1], rule) == ({e1}, 0)
        assert await quarantine.count_quarantined(conn) == 1
        assert [q[0] for q in await quarantine.quarantined(conn, "list")] == ["e1"]
        await quarantine.release_quarantine(conn, "list", "e1", "lead-1", "a real viral item; act on it")
        assert await quarantine.count_quarantined(conn) == 0
        # Released: the flood a reviewer looked at no longer counts...
        assert await flood_check(conn, MatchCatalogue(), [e1], rule) == (set(), 0)
        # ...but a later one quarantines the entry again.
        for key, content in ((a, "a-new-1"), (a, "a-new-2"), (b, "b-new-1")):
            await match(conn, key, content)
        assert await flood_check(conn, MatchCatalogue(), [e1], rule, [Seen(entry_row=e1, source=b, content_id="b-new-2")]) == (
            {e1},
            1,
        )
        assert await quarantine.count_quarantined(conn) == 1

        await entry_feedback.record_wrong_match(conn, e1, "reviewer-1", "a cartoon")
        await entry_feedback.record_wrong_match(conn, e1, "reviewer-2", "")
        [feedback] = await entry_feedback.feedback(conn, "list")
        assert (feedback.entry_id, feedback.wrong_matches, feedback.notes) == ("e1", 2, "a cartoon")
