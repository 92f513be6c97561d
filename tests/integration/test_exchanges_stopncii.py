"""The StopNCII connector through the fetcher against its loopback stand-in: continuation tokens, a 500
mid-fetch, refused keys, expired tokens, withdrawals, and verdicts sent back through the feedback outbox."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from hashsets.exchanges import store
from hashsets.exchanges.fetcher import Fetcher
from hashsets.exchanges.stopncii import entry_id
from tests.integration.test_exchanges_ncmec import PARSE, held, rows_written
from tests.standins.stopncii import FEEDBACK_KEY, FETCH_KEY, SUBSCRIPTION, Record, StopNciiStandIn, serving


@pytest.fixture
async def stand_in() -> AsyncIterator[StopNciiStandIn]:
    service = StopNciiStandIn()
    async with serving(service):
        yield service


@pytest.fixture
async def fetcher(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, stand_in: StopNciiStandIn) -> AsyncIterator[Fetcher]:
    monkeypatch.setenv("T_SNCII_SUB", SUBSCRIPTION)
    monkeypatch.setenv("T_SNCII_FETCH", FETCH_KEY)
    monkeypatch.setenv("T_SNCII_FEEDBACK", FEEDBACK_KEY)
    config = {
        "base_url": stand_in.url,
        "subscription_key": "env:T_SNCII_SUB",
        "fetch_key": "env:T_SNCII_FETCH",
        "feedback_key": "env:T_SNCII_FEEDBACK",
        "page_size": "100",
    }
    async with pool.acquire() as conn:
        await store.add_source(
            conn, name="sncii", kind="stopncii", config=config, members=None, interval_s=60, upvotes=True, actor="t"
        )
    async with aiohttp.ClientSession() as session:
        yield Fetcher(pool=pool, session=session, parse=PARSE, batch_entries=100)


def expected(stand_in: StopNciiStandIn) -> dict[str, bytes]:
    return {entry_id("ImagePDQ", v): bytes.fromhex(v) for v in stand_in.content()}


async def test_pages_faults_and_withdrawals(pool: asyncpg.Pool, stand_in: StopNciiStandIn, fetcher: Fetcher) -> None:
    rng = random.Random(11)
    for i in range(450):
        stand_in.put(Record("ImagePDQ", rng.randbytes(32).hex(), 1000 + i // 10))
    stand_in.put(Record("Text", "not a hash", 1000))
    stand_in.faults.errors[300] = 1
    first = await fetcher.fetch("sncii")
    assert first.error is not None and first.error.kind == "unavailable" and first.pages == 3
    second = await fetcher.fetch("sncii")  # resumes with the stored token
    assert second.error is None and second.pages == 2
    async with pool.acquire() as conn:
        assert await held(conn, "sncii-pdq") == expected(stand_in)
        assert await rows_written(conn, "sncii-pdq") == 450
    # Withdrawals and new records later; the token of an interrupted run refused: the run starts again.
    for r in list(stand_in.records.values())[:40]:
        r.status, r.modified = "Withdrawn", 2000
    for _ in range(5):
        stand_in.put(Record("ImagePDQ", rng.randbytes(32).hex(), 2000))
    stand_in.faults.revoked = True
    refused = await fetcher.fetch("sncii")
    assert refused.error is not None and refused.error.kind == "auth"
    stand_in.faults.revoked = False
    third = await fetcher.fetch("sncii")
    assert third.error is None and (third.applied.added, third.applied.retracted) == (5, 40)
    async with pool.acquire() as conn:
        assert await held(conn, "sncii-pdq") == expected(stand_in)


async def test_expired_token_restarts_the_run_and_changes_nothing_twice(
    pool: asyncpg.Pool, stand_in: StopNciiStandIn, fetcher: Fetcher
) -> None:
    rng = random.Random(12)
    for i in range(250):
        stand_in.put(Record("ImagePDQ", rng.randbytes(32).hex(), 1000 + i))
    stand_in.faults.errors[200] = 1
    assert (await fetcher.fetch("sncii")).error is not None
    stand_in.faults.refuse_tokens = True  # the stored token is refused: the run starts again from its start, once
    outcome = await fetcher.fetch("sncii")
    assert outcome.error is not None and outcome.error.kind == "protocol" and outcome.applied.added == 0  # re-read, none written
    stand_in.faults.refuse_tokens = False
    assert (await fetcher.fetch("sncii")).error is None
    async with pool.acquire() as conn:
        assert await held(conn, "sncii-pdq") == expected(stand_in)
        assert await rows_written(conn, "sncii-pdq") == 250


async def test_verdicts_go_back_through_the_outbox_with_retries(
    pool: asyncpg.Pool, stand_in: StopNciiStandIn, fetcher: Fetcher
) -> None:
    value = random.Random(13).randbytes(32).hex()
    stand_in.put(Record("ImagePDQ", value, 1000))
    stand_in.put(Record("ImagePDQ", random.Random(14).randbytes(32).hex(), 1000))
    assert (await fetcher.fetch("sncii")).error is None
    async with pool.acquire() as conn:
        row = await conn.fetchval("SELECT id FROM hash_entries WHERE entry_id = $1", entry_id("ImagePDQ", value))
        entry = await store.source_of_entry_row(conn, row)
        assert entry is not None and entry.source == "sncii" and entry.tool == "pdq"
        async with conn.transaction():
            assert await store.queue_feedback(
                conn, entry, vote="down", reason="ticket 1 dismissed", ticket="ticket:1", actor="rev"
            )
            assert not await store.queue_feedback(conn, entry, vote="down", reason="again", ticket="ticket:1", actor="rev")
            assert await store.queue_feedback(conn, entry, vote="up", reason="ticket 2 actioned", ticket="ticket:2", actor="rev")
    stand_in.faults.revoked = True
    results: list[bool] = []
    assert await fetcher.deliver_feedback(lambda s, v, ok: results.append(ok)) == 0
    assert results == [False, False] and stand_in.feedback == []
    stand_in.faults.revoked = False
    async with pool.acquire() as conn:
        await conn.execute("UPDATE exchange_feedback SET next_at = now()")  # the retry's back-off, elapsed
    assert await fetcher.deliver_feedback() == 2
    sent = sorted((f["hashFeedbacks"][0]["feedbackValue"], f["hashFeedbacks"][0]["hashValue"]) for f in stand_in.feedback)  # type: ignore[index]
    assert sent == [("Blocked", value), ("NotBlocked", value)]
    async with pool.acquire() as conn:
        audit = await conn.fetch("SELECT action FROM audit_log WHERE subject = 'exchange:sncii' ORDER BY seq")
        assert [a["action"] for a in audit].count("exchange.feedback_sent") == 2
        assert [a["action"] for a in audit].count("exchange.feedback_queued") == 2
