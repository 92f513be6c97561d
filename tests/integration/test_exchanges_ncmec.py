"""The NCMEC connector and the fetcher against a loopback stand-in speaking the real XML, on the real database.

After every fault: each list equals the source's content exactly, no page was applied twice (every
entry row was written once), and the fetch went on past the bad page.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from detector.tools.registry import discover as discover_tools
from hashsets import entries, lists
from hashsets.exchanges import store
from hashsets.exchanges.fetcher import Fetcher, hash_parser
from tests.standins.ncmec_hashsharing import PASSWORD, USER, Entry, NcmecStandIn, serving
from tests.waiting import eventually

PARSE = hash_parser({name: tool.parse_hex for name, tool in discover_tools().items()})


def synthetic(n: int, *, at: int, rng: random.Random, member: str = "42", spread: int = 30) -> list[Entry]:
    return [
        Entry(
            member=member,
            id=f"img{rng.getrandbits(48):x}",
            at=at - rng.randrange(spread) if spread else at,
            fingerprints={"pdq": rng.randbytes(32).hex(), "md5": rng.randbytes(16).hex()},
            classification=rng.choice(["A1", "A2", "B1", None]),
        )
        for _ in range(n)
    ]


async def held(conn: asyncpg.Connection, name: str) -> dict[str, bytes]:
    """entry id -> hash of what the detector would load from list ``name`` now."""
    found = [v for v in await lists.active_versions(conn) if v.name == name]
    if not found:
        return {}
    async with conn.transaction():
        rows = [r async for chunk in entries.stream_entries(conn, found[0]) for r in chunk]
    ids = {
        r["id"]: r["entry_id"]
        for r in await conn.fetch("SELECT id, entry_id FROM hash_entries WHERE id = ANY($1)", [i for i, _ in rows])
    }
    out = {ids[i]: value for i, value in rows}
    assert len(out) == len(rows), "an entry id is held twice"
    return out


async def rows_written(conn: asyncpg.Connection, name: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM hash_entries e JOIN hashset_versions v ON v.id = e.version_id JOIN hashsets h ON h.id = v.hashset_id"
            " WHERE h.name = $1",
            name,
        )
    )


async def assert_equal(
    conn: asyncpg.Connection, stand_in: NcmecStandIn, name: str = "ncmec", members: set[str] | None = None
) -> None:
    for tag in ("pdq", "md5"):
        assert await held(conn, f"{name}-{tag}") == stand_in.content(tag, members)


@pytest.fixture
async def stand_in() -> AsyncIterator[NcmecStandIn]:
    service = NcmecStandIn(page_size=1000)
    async with serving(service):
        yield service


@pytest.fixture
async def fetcher(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fetcher]:
    monkeypatch.setenv("TEST_NCMEC_USER", USER)
    monkeypatch.setenv("TEST_NCMEC_PASSWORD", PASSWORD)
    async with aiohttp.ClientSession() as session:
        yield Fetcher(pool=pool, session=session, parse=PARSE, batch_entries=1000)


async def add(pool: asyncpg.Pool, stand_in: NcmecStandIn, name: str = "ncmec", members: list[str] | None = None) -> None:
    config = {
        "environment": stand_in.url,
        "username": "env:TEST_NCMEC_USER",
        "password": "env:TEST_NCMEC_PASSWORD",
        "settle_s": "0",
    }
    async with pool.acquire() as conn:
        await store.add_source(
            conn, name=name, kind="ncmec", config=config, members=members, interval_s=60, upvotes=True, actor="tests"
        )


async def checkpoint(pool: asyncpg.Pool, name: str = "ncmec") -> dict[str, Any]:
    async with pool.acquire() as conn:
        src = await store.source(conn, name)
    assert src.checkpoint is not None
    return src.checkpoint


async def next_second(after: int) -> None:
    """The source's clock has passed ``after`` (a new window can start there)."""

    async def passed() -> bool:
        return int(time.time()) > after

    await eventually(passed, 5, what="the next second")


async def test_fills_lists_unordered_then_applies_changes_and_deletions(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    rng = random.Random(1)
    for e in synthetic(2500, at=int(time.time()) - 60, rng=rng):
        stand_in.put(e)
    await add(pool, stand_in)
    first = await fetcher.fetch("ncmec")
    assert first.error is None and first.pages == 3 and first.applied.added == 5000
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)
    # Changes arrive later: some entries deleted, some with a new hash, a few new ones.
    cp = await checkpoint(pool)
    at = int(cp["from"])
    keys = sorted(stand_in.entries)
    for key in keys[:100]:
        stand_in.entries[key].deleted, stand_in.entries[key].at = True, at
    for key in keys[100:150]:
        stand_in.entries[key].fingerprints["pdq"], stand_in.entries[key].at = rng.randbytes(32).hex(), at
    for e in synthetic(20, at=at, rng=rng, spread=0):
        stand_in.put(e)
    stand_in.changed()
    await next_second(at)
    second = await fetcher.fetch("ncmec")
    assert second.error is None
    assert (second.applied.added, second.applied.retracted) == (20 * 2 + 50, 100 * 2 + 50)
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)
        # Nothing new: a third fetch writes no version.
        versions = await conn.fetchval("SELECT count(*) FROM hashset_versions")
        await next_second(int((await checkpoint(pool))["from"]))
        third = await fetcher.fetch("ncmec")
        assert third.error is None and third.applied.added == third.applied.retracted == 0
        assert await conn.fetchval("SELECT count(*) FROM hashset_versions") == versions
        audit = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'hashset.import'")
        assert audit == versions


async def test_cursed_second_more_entries_than_a_page_in_one_timestamp(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    for e in synthetic(2300, at=int(time.time()) - 30, rng=random.Random(2), spread=0):
        stand_in.put(e)
    await add(pool, stand_in)
    outcome = await fetcher.fetch("ncmec")
    assert outcome.error is None and outcome.pages == 3
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)
        assert await rows_written(conn, "ncmec-pdq") == 2300


async def test_malformed_page_is_quarantined_skipped_and_read_again_later(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    for e in synthetic(3000, at=int(time.time()) - 60, rng=random.Random(3)):
        stand_in.put(e)
    stand_in.faults.malformed[1001] = 1
    await add(pool, stand_in)
    first = await fetcher.fetch("ncmec")
    assert first.error is None and first.applied.failed_pages == 1 and first.pages == 3  # went on past it
    async with pool.acquire() as conn:
        assert len(await held(conn, "ncmec-pdq")) == 2000
        src = await store.source(conn, "ncmec")
        assert src.quarantined == 1 and src.checkpoint is not None and "paging" not in src.checkpoint
        [q] = await store.quarantined(conn, src.id)
        assert q["scope"] == "page" and "start=1001" in q["position"] and "XML" in q["reason"]
    second = await fetcher.fetch("ncmec")  # reads the quarantined page again first
    assert second.retried_pages == 1
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)
        assert (await store.source(conn, "ncmec")).quarantined == 0
        assert await rows_written(conn, "ncmec-pdq") == 3000


async def test_malformed_entry_is_quarantined_and_the_rest_applied(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    made = synthetic(50, at=int(time.time()) - 60, rng=random.Random(4))
    for e in made:
        stand_in.put(e)
    stand_in.faults.bad_entry.add(made[7].key)
    await add(pool, stand_in)
    outcome = await fetcher.fetch("ncmec")
    assert outcome.error is None and outcome.applied.problems == 1
    expected = stand_in.content("pdq")
    del expected[made[7].key]
    async with pool.acquire() as conn:
        assert await held(conn, "ncmec-pdq") == expected
        [q] = await store.quarantined(conn, (await store.source(conn, "ncmec")).id)
        assert q["scope"] == "entry" and q["reason"] == "the entry has no id"
        assert made[7].fingerprints["pdq"] not in json.dumps([dict(q)], default=str)


async def test_500_mid_fetch_then_resume_with_the_same_window(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    for e in synthetic(3500, at=int(time.time()) - 60, rng=random.Random(5)):
        stand_in.put(e)
    stand_in.faults.errors[2001] = 1
    await add(pool, stand_in)
    first = await fetcher.fetch("ncmec")
    assert first.error is not None and first.error.kind == "unavailable" and first.pages == 2
    cp = await checkpoint(pool)
    assert "start=2001" in cp["paging"]["next"]
    async with pool.acquire() as conn:
        src = await store.source(conn, "ncmec")
        assert src.last_error_kind == "unavailable"
    second = await fetcher.fetch("ncmec")
    assert second.error is None
    # The resume asked for the same window: the stored paging link, with the first request's from and to.
    first_request = next(r for r in stand_in.requests if r.startswith("/hashsharing/v2/entries?"))
    resumed = [r for r in stand_in.requests if "start=2001" in r]
    assert len(resumed) == 2 and all(r.split("&start=")[0] == resumed[0].split("&start=")[0] for r in resumed)
    assert first_request.split("from=")[1].split("&")[0] in resumed[0]
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)
        assert await rows_written(conn, "ncmec-pdq") == 3500
        assert (await store.source(conn, "ncmec")).last_error_kind is None


async def test_revoked_credential_stops_without_change_then_recovers(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    for e in synthetic(10, at=int(time.time()) - 60, rng=random.Random(6)):
        stand_in.put(e)
    stand_in.faults.revoked = True
    await add(pool, stand_in)
    outcome = await fetcher.fetch("ncmec")
    assert outcome.error is not None and outcome.error.kind == "auth"
    async with pool.acquire() as conn:
        src = await store.source(conn, "ncmec")
        assert src.checkpoint is None and src.last_error_kind == "auth" and PASSWORD not in (src.last_error or "")
        assert await held(conn, "ncmec-pdq") == {}
    stand_in.faults.revoked = False
    assert (await fetcher.fetch("ncmec")).error is None
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)


async def test_crash_between_page_and_commit_resumes_exactly(
    pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher
) -> None:
    for e in synthetic(3000, at=int(time.time()) - 60, rng=random.Random(7)):
        stand_in.put(e)
    await add(pool, stand_in)
    calls = 0

    def crashing(tool: str, text: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2500:  # in the middle of the second page's transaction
            raise RuntimeError("the process died here")
        return PARSE(tool, text)

    crashy = Fetcher(pool=pool, session=fetcher.session, parse=crashing, batch_entries=1000)
    with pytest.raises(RuntimeError):
        await crashy.fetch("ncmec")
    async with pool.acquire() as conn:
        assert len(await held(conn, "ncmec-pdq")) == 1000  # the first page committed, the second rolled back whole
        assert await rows_written(conn, "ncmec-pdq") == 1000
    assert (await fetcher.fetch("ncmec")).error is None
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in)
        assert await rows_written(conn, "ncmec-pdq") == 3000


async def test_member_filter_and_one_fetch_per_source(pool: asyncpg.Pool, stand_in: NcmecStandIn, fetcher: Fetcher) -> None:
    rng = random.Random(8)
    for member in ("42", "43"):
        for e in synthetic(30, at=int(time.time()) - 60, rng=rng, member=member):
            stand_in.put(e)
    await add(pool, stand_in, members=["43"])
    async with pool.acquire() as holder:
        src = await store.source(holder, "ncmec")
        assert await store.try_lock(holder, src.id)  # as another replica fetching it now
        assert (await fetcher.fetch("ncmec")).locked_elsewhere
        await store.unlock(holder, src.id)
    outcome = await fetcher.fetch("ncmec")
    assert outcome.applied.filtered == 30
    async with pool.acquire() as conn:
        await assert_equal(conn, stand_in, members={"43"})
