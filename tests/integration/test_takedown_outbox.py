"""Platform actions from the transactional outbox to a real local webhook receiver that fails,
hangs and recovers: nothing lost, nothing applied twice, a ticket's actions in order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from detector.match import Match
from kernel import keystore
from kernel.keys import DEFAULT_TENANT_ID, Role, new_key
from takedown import decision_store, jobs, matching, outbox_store, queue_store, ticket_store
from takedown.config import TakedownConfig
from takedown.tickets import SYSTEM, Actor, DecisionInput
from takedown.workflow import Action, State
from tests.conftest import FakePlatform
from tests.metrics_reading import sample_value, scraped
from tests.waiting import eventually

CONFIG = TakedownConfig()


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def metrics() -> tuple[jobs.JobMetrics, CollectorRegistry]:
    """Job metrics on a registry of their own, returned with it so tests read them as a scrape would."""
    r = CollectorRegistry()
    m = jobs.JobMetrics(
        deliveries=Counter("d", "d", ["action", "result"], registry=r),
        outbox_pending=Gauge("p", "p", registry=r),
        outbox_failed=Gauge("f", "f", registry=r),
        outbox_oldest_pending=Gauge("o", "o", registry=r),
        tickets=Gauge("t", "t", ["state"], registry=r),
        tickets_overdue=Gauge("to", "to", registry=r),
        evidence_purged=Counter("e", "e", registry=r),
    )
    return m, r


def deliverer(
    pool: asyncpg.Pool,
    session: aiohttp.ClientSession,
    platform: FakePlatform,
    *,
    timeout_s: float = 0.5,
    max_attempts: int = 20,
    metrics: jobs.JobMetrics | None = None,
) -> jobs.OutboxDeliverer:
    config = jobs.WebhookConfig(
        url=platform.url,
        secret=platform.secret,
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
    )
    return jobs.OutboxDeliverer(pool=pool, session=session, config=config, metrics=metrics)


async def reviewer(conn: asyncpg.Connection) -> Actor:
    made = new_key()
    return Actor(key_id=await keystore.insert_key(conn, made, Role.REVIEWER, "r"), name=made.prefix)


async def actioned(conn: asyncpg.Connection, content_id: str, who: Actor, action: Action = Action.REMOVE) -> uuid.UUID:
    ticket = await matching.open_for_matches(
        conn,
        tenant_id=DEFAULT_TENANT_ID,
        scan_id=uuid.uuid4(),
        content_id=content_id,
        content_url=None,
        matches=[Match(entry_row=1, hashset="l", hashset_version=1, entry_id="1", tool="pdq", tool_version="1", distance=0)],
        api_key_id=None,
        config=CONFIG,
    )
    await conn.execute(
        "UPDATE tickets SET lease_key_id = $2, lease_key_prefix = $3, lease_expires_at = now() + interval '1 hour', state = 'in_review' WHERE id = $1",
        ticket.ticket_id,
        who.key_id,
        who.name,
    )
    await decision_store.decide(
        conn, ticket.ticket_id, who, DecisionInput(to=State.ACTIONED, action=action, explanation="x"), CONFIG, override=False
    )
    return ticket.ticket_id


async def drain(d: jobs.OutboxDeliverer, conn: asyncpg.Connection, *, until: str = "delivered", limit_s: float = 60) -> None:
    """Run delivery passes until no row is pending (the loop the service runs, without its sleeps)."""

    async def drained() -> bool:
        await d.run_once()
        return (await outbox_store.outbox_counts(conn)).pending == 0

    try:
        await eventually(drained, limit_s, interval=0.02, what="the outbox draining")
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {await outbox_store.outbox_counts(conn)}") from None


async def test_failures_and_timeouts_are_retried_until_delivered_and_applied_once(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, fake_platform: FakePlatform
) -> None:
    who = await reviewer(conn)
    ticket_id = await actioned(conn, "flaky-1", who)
    # 503, no answer at all, applied but the answer lost, 503 again, then fine.
    fake_platform.script("flaky-1", "fail", "hang", "apply_then_hang", "fail", "ok")
    m, registry = metrics()
    await drain(deliverer(pool, session, fake_platform, metrics=m), conn)
    requests, applied = fake_platform.snapshot()
    assert [r["mode"] for r in requests] == ["fail", "hang", "apply_then_hang", "fail", "ok"]
    assert len({r["key"] for r in requests}) == 1 and len({r["raw"] for r in requests}) == 1  # same key, same bytes
    assert list(applied) == [requests[0]["key"]]
    assert requests[-1]["duplicate"]  # the last attempt was recognised as already applied
    assert applied[requests[0]["key"]]["action"] == "remove" and applied[requests[0]["key"]]["ticket_id"] == str(ticket_id)
    [row] = (await ticket_store.ticket_detail(conn, ticket_id)).deliveries
    assert row["state"] == "delivered" and row["attempts"] == 5 and row["last_status"] == 200 and row["last_error"] is None
    assert sample_value(registry, "d_total", action="remove", result="retry") == 4
    assert sample_value(registry, "d_total", action="remove", result="delivered") == 1
    assert scraped(registry)[("d_total", frozenset({("action", "remove"), ("result", "retry")}))] == 4


async def test_an_action_that_runs_out_of_attempts_is_failed_visible_and_retryable(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, fake_platform: FakePlatform
) -> None:
    who = await reviewer(conn)
    ticket_id = await actioned(conn, "down-1", who)
    fake_platform.set_default("fail")
    d = deliverer(pool, session, fake_platform, max_attempts=3)
    await drain(d, conn)
    counts = await outbox_store.outbox_counts(conn)
    assert (counts.pending, counts.failed, counts.delivered) == (0, 1, 0)
    [row] = (await ticket_store.ticket_detail(conn, ticket_id)).deliveries
    assert row["state"] == "failed" and row["attempts"] == 3 and row["last_status"] == 503 and "503" in row["last_error"]
    m, registry = metrics()
    await jobs.refresh_gauges(pool, m)
    assert sample_value(registry, "f") == 1
    fake_platform.set_default("ok")
    assert await outbox_store.retry_failed(conn, ticket_id, SYSTEM) == 1
    await drain(d, conn)
    assert (await outbox_store.outbox_counts(conn)).delivered == 1
    assert len(fake_platform.snapshot()[1]) == 1


async def test_a_tickets_actions_reach_the_platform_in_order(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, fake_platform: FakePlatform
) -> None:
    alice, bob = await reviewer(conn), await reviewer(conn)
    ticket_id = await actioned(conn, "order-1", alice)
    await decision_store.appeal(conn, ticket_id, SYSTEM, "mine", CONFIG)
    await queue_store.claim_next(conn, bob, CONFIG)
    await decision_store.decide(
        conn, ticket_id, bob, DecisionInput(to=State.REINSTATED, explanation="a drawing"), CONFIG, override=False
    )
    fake_platform.script("order-1", "fail", "fail")
    await drain(deliverer(pool, session, fake_platform), conn)
    requests, applied = fake_platform.snapshot()
    assert [r["body"]["action"] for r in requests] == ["remove", "remove", "remove", "reinstate"]
    assert [b["action"] for b in applied.values()] == ["remove", "reinstate"]


async def test_concurrent_deliverers_send_each_action_once(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, fake_platform: FakePlatform
) -> None:
    who = await reviewer(conn)
    for i in range(30):
        await actioned(conn, f"many-{i}", who)
    first, second = deliverer(pool, session, fake_platform), deliverer(pool, session, fake_platform)
    while (await outbox_store.outbox_counts(conn)).pending:
        await asyncio.gather(first.run_once(), second.run_once())
    requests, applied = fake_platform.snapshot()
    assert len(requests) == 30 and len(applied) == 30 and not any(r["duplicate"] for r in requests)


async def test_a_wrong_secret_is_refused_by_the_receiver_and_retried(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, fake_platform: FakePlatform
) -> None:
    who = await reviewer(conn)
    await actioned(conn, "signed-1", who)
    wrong = jobs.OutboxDeliverer(
        pool=pool,
        session=session,
        config=jobs.WebhookConfig(url=fake_platform.url, secret="not-the-secret", backoff_base_s=0.01, backoff_cap_s=0.01),
    )
    await wrong.run_once()
    requests, applied = fake_platform.snapshot()
    assert [r["mode"] for r in requests] == ["unsigned"] and applied == {}
    assert (await outbox_store.outbox_counts(conn)).pending == 1
    await drain(deliverer(pool, session, fake_platform), conn)
    assert len(fake_platform.snapshot()[1]) == 1
