"""The ThreatExchange connector through the fetcher against its Graph API stand-in: cursors, a 500 mid-fetch,
a revoked token, deletions; the access token never reaches the database."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from hashsets.exchanges import store
from hashsets.exchanges.fetcher import Fetcher
from tests.integration.test_exchanges_ncmec import PARSE, held, rows_written
from tests.standins.threatexchange import TOKEN, ThreatExchangeStandIn, Update, serving
from tests.waiting import eventually


@pytest.fixture
async def stand_in() -> AsyncIterator[ThreatExchangeStandIn]:
    service = ThreatExchangeStandIn()
    async with serving(service):
        yield service


async def test_cursors_faults_and_deletions(
    pool: asyncpg.Pool, stand_in: ThreatExchangeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_TE_TOKEN", TOKEN)
    config = {"base_url": stand_in.url, "access_token": "env:T_TE_TOKEN", "privacy_group": stand_in.group, "page_size": "100"}
    async with pool.acquire() as conn:
        await store.add_source(
            conn, name="te", kind="threatexchange", config=config, members=None, interval_s=60, upvotes=False, actor="t"
        )
    rng = random.Random(16)
    now = int(time.time())
    for i in range(350):
        stand_in.put(Update(id=i, type="HASH_PDQ", indicator=rng.randbytes(32).hex(), last_updated=now - 500 + i))
    stand_in.put(Update(id=999, type="HASH_URL", indicator="https://example.org", last_updated=now - 10))
    stand_in.faults.errors[200] = 1
    async with aiohttp.ClientSession() as session:
        fetcher = Fetcher(pool=pool, session=session, parse=PARSE, batch_entries=100)
        first = await fetcher.fetch("te")
        assert first.error is not None and first.error.kind == "unavailable" and first.pages == 2
        async with pool.acquire() as conn:
            stored = await conn.fetchval("SELECT checkpoint::text FROM exchange_sources WHERE name = 'te'")
            assert "after=200" in stored and TOKEN not in stored and "access_token" not in stored
        assert (await fetcher.fetch("te")).error is None
        async with pool.acquire() as conn:
            assert await held(conn, "te-pdq") == {k: bytes.fromhex(v) for k, v in stand_in.content().items()}
            assert await rows_written(conn, "te-pdq") == 350
        for i in range(20):
            stand_in.put(Update(id=i, type="HASH_PDQ", indicator="", last_updated=int(time.time()), should_delete=True))
        stand_in.faults.revoked = True
        assert (refused := await fetcher.fetch("te")).error is not None and refused.error.kind == "auth"
        stand_in.faults.revoked = False

        async with pool.acquire() as conn:
            start = int((await store.source(conn, "te")).checkpoint["start"])  # type: ignore[index]

        async def window_open() -> bool:  # the next window [start, now) holds the deletions
            return int(time.time()) > start + 1

        await eventually(window_open, 5, what="the next second")
        outcome = await fetcher.fetch("te")
        assert outcome.error is None and outcome.applied.retracted == 20
        async with pool.acquire() as conn:
            assert await held(conn, "te-pdq") == {k: bytes.fromhex(v) for k, v in stand_in.content().items()}
