"""Statements of reasons reach a local stand-in of the DSA Transparency Database: batched, each
exactly once through lost answers, timeouts, 500s, 429s and a restart, rejected ones kept with the
database's errors, and nothing our own schema refuses ever sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from detector.match import Match
from kernel.keys import DEFAULT_TENANT_ID
from takedown import dsa_db, dsa_jobs, dsa_store, matching, policy_store
from takedown.config import TakedownConfig
from takedown.rules import Policy
from takedown.tickets import SYSTEM
from takedown.workflow import Action
from tests.dsa_standin import TOKEN, DsaStandIn
from tests.metrics_reading import sample_value
from tests.waiting import eventually

CONFIG = TakedownConfig(dsa_territorial_scope=("DE", "FR", "NL"))


@pytest.fixture
async def standin() -> AsyncIterator[DsaStandIn]:
    s = await DsaStandIn().start()
    yield s
    await s.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def restricted(pool: asyncpg.Pool, n: int) -> list[uuid.UUID]:
    """``n`` tickets actioned automatically under a list policy: each issues a statement of reasons."""
    async with pool.acquire() as conn:
        await policy_store.set_policy(conn, SYSTEM, Policy(hashset="verified", tool="*", auto_action=True, action=Action.REMOVE))
        ids = []
        for i in range(n):
            opened = await matching.open_for_matches(
                conn,
                tenant_id=DEFAULT_TENANT_ID,
                scan_id=uuid.uuid4(),
                content_id=f"item-{i}",
                content_url=f"https://example.test/item-{i}",
                matches=[
                    Match(
                        entry_row=1, hashset="verified", hashset_version=1, entry_id="e", tool="pdq", tool_version="1", distance=0
                    )
                ],
                api_key_id=None,
                config=CONFIG,
            )
            ids.append(opened.ticket_id)
    return ids


def submitter(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn, **kw: float
) -> tuple[dsa_jobs.DsaSubmitter, CollectorRegistry]:
    r = CollectorRegistry()
    metrics = dsa_jobs.DsaMetrics(
        submissions=Counter("dsa_statements_submitted", "s", ["outcome"], registry=r),
        pending=Gauge("dsa_pending", "p", registry=r),
        failed=Gauge("dsa_failed", "f", registry=r),
        oldest_pending=Gauge("dsa_oldest", "o", registry=r),
    )
    config = dsa_jobs.DsaConfig(
        url=standin.url,
        token=TOKEN,
        timeout_s=kw.pop("timeout_s", 5.0),
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
        lease_s=kw.pop("lease_s", 0.5),
        **kw,  # type: ignore[arg-type]
    )
    return dsa_jobs.DsaSubmitter(pool=pool, session=session, config=config, metrics=metrics), r


async def states(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        return {
            r["state"]: r["n"]
            for r in await conn.fetch("SELECT state::text AS state, count(*) AS n FROM dsa_submissions GROUP BY 1")
        }


async def drain(sub: dsa_jobs.DsaSubmitter, pool: asyncpg.Pool, limit_s: float = 30.0) -> None:
    async def settled() -> bool:
        await sub.run_once()
        return (await states(pool)).get("pending", 0) == 0

    await eventually(settled, limit_s, interval=0.05, what="every statement settled")


async def test_every_statement_is_submitted_once_in_batches_of_at_most_100(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn
) -> None:
    tickets = await restricted(pool, 130)
    sub, registry = submitter(pool, session, standin)
    await drain(sub, pool)
    assert standin.posted() == [100, 30]
    assert set(standin.held) == {str(t) for t in tickets}
    one = standin.held[str(tickets[0])]
    assert one["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert one["source_type"] == "SOURCE_VOLUNTARY" and one["automated_detection"] == "Yes"
    assert one["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert one["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS" and one["territorial_scope"] == ["DE", "FR", "NL"]
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT state::text AS state, db_uuid, last_status FROM dsa_submissions WHERE puid = $1", str(tickets[0])
        )
    assert row["state"] == "submitted" and row["db_uuid"] == one["uuid"] and row["last_status"] == 201
    await sub.refresh_gauges()
    text = registry
    assert sample_value(text, "dsa_statements_submitted_total", outcome="submitted") == 130
    assert sample_value(text, "dsa_pending") == 0


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(["lost"], id="stored-then-500"),
        pytest.param(["slow"], id="stored-then-answered-too-late"),
        pytest.param(["500", "drop", "429", "slow", "500"], id="errors-before-storing-and-while-asking"),
    ],
)
async def test_lost_answers_timeouts_and_server_errors_never_file_twice(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn, faults: list[str]
) -> None:
    tickets = await restricted(pool, 3)
    standin.faults = list(faults)
    standin.slow_s = 1.5
    sub, registry = submitter(pool, session, standin, timeout_s=0.5)
    await drain(sub, pool)
    assert standin.faults == []  # every fault struck
    assert set(standin.held) == {str(t) for t in tickets}  # each exactly once (held is keyed by puid) ...
    stored_calls = [n for method, _, n in standin.calls if method == "POST"]
    # ... and never sent again once stored: the database would have refused a resend with existing_puids,
    # which the submitter would count as already_present after a POST; it asks first instead.
    assert sample_value(registry, "dsa_statements_submitted_total", outcome="retry") is not None
    if faults[0] in ("lost", "slow"):
        assert stored_calls == [3]  # the one call that stored them; then existing-puid found them
        assert sample_value(registry, "dsa_statements_submitted_total", outcome="already_present") == 3
    assert (await states(pool)) == {"submitted": 3}


async def test_a_restarted_submitter_takes_over_a_claim_and_checks_before_resending(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn
) -> None:
    await restricted(pool, 2)
    # The first process claims the batch and dies before marking anything: its call was stored.
    async with pool.acquire() as conn:
        claimed = await dsa_store.claim(conn, 100, 0.2)
    standin.held.update({c.puid: {**c.body, "uuid": str(uuid.uuid4())} for c in claimed})
    sub, _ = submitter(pool, session, standin)
    await drain(sub, pool)
    assert standin.posted() == []  # found by existing-puid, never posted again
    assert len(standin.held) == 2 and (await states(pool)) == {"submitted": 2}


async def test_the_databases_validation_errors_are_kept_and_the_rest_of_the_batch_goes(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn
) -> None:
    tickets = await restricted(pool, 3)
    bad = str(tickets[1])
    async with pool.acquire() as conn:  # a rule of the database's that our schema does not check
        await conn.execute(
            "UPDATE dsa_submissions SET body = jsonb_set(body, '{content_date}', '\"2099-01-01\"') WHERE puid = $1", bad
        )
    sub, registry = submitter(pool, session, standin)
    await drain(sub, pool)
    assert set(standin.held) == {str(tickets[0]), str(tickets[2])}
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT state::text AS state, last_status, errors::text AS errors FROM dsa_submissions WHERE puid = $1", bad
        )
    assert row["state"] == "failed" and row["last_status"] == 422
    assert "application_date" in json.loads(row["errors"])
    assert sample_value(registry, "dsa_statements_submitted_total", outcome="rejected") == 1
    await sub.refresh_gauges()
    assert sample_value(registry, "dsa_failed") == 1


async def test_a_statement_our_schema_refuses_is_never_sent(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn
) -> None:
    tickets = await restricted(pool, 2)
    bad = str(tickets[0])
    async with pool.acquire() as conn:
        await conn.execute("UPDATE dsa_submissions SET body = body - 'decision_facts' WHERE puid = $1", bad)
    sub, _ = submitter(pool, session, standin)
    await drain(sub, pool)
    assert bad not in standin.held and str(tickets[1]) in standin.held
    assert all(n == 1 for n in standin.posted())
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT state::text AS state, last_status, errors::text AS errors FROM dsa_submissions WHERE puid = $1", bad
        )
    assert row["state"] == "failed" and row["last_status"] is None
    assert "decision_facts" in json.dumps(json.loads(row["errors"]))
    # Corrected (here by hand) and queued again, it goes.
    async with pool.acquire() as conn:
        await conn.execute('UPDATE dsa_submissions SET body = body || \'{"decision_facts": "corrected"}\' WHERE puid = $1', bad)
        assert await dsa_store.retry_failed(conn) == 1
    await drain(sub, pool)
    assert standin.held[bad]["decision_facts"] == "corrected" and (await states(pool)) == {"submitted": 2}


async def test_every_issued_statement_validates_against_the_schema_we_ship(pool: asyncpg.Pool) -> None:
    await restricted(pool, 2)
    async with pool.acquire() as conn:
        bodies = [json.loads(r["body"]) for r in await conn.fetch("SELECT body::text AS body FROM dsa_submissions")]
    assert len(bodies) == 2 and all(dsa_db.problems(b) == {} for b in bodies)


async def test_a_batch_refused_for_puids_the_database_holds_counts_those_as_done(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, standin: DsaStandIn
) -> None:
    tickets = await restricted(pool, 3)
    # Filed by other means (the database's web form) before hashguard's first attempt.
    standin.held[str(tickets[1])] = {"puid": str(tickets[1]), "uuid": "filed-by-hand"}
    sub, registry = submitter(pool, session, standin)
    await drain(sub, pool)
    assert standin.posted() == [3, 2]  # refused whole (existing_puids), then the other two at once
    assert standin.held[str(tickets[1])]["uuid"] == "filed-by-hand"
    assert sample_value(registry, "dsa_statements_submitted_total", outcome="already_present") == 1
    assert sample_value(registry, "dsa_statements_submitted_total", outcome="submitted") == 2
    assert (await states(pool)) == {"submitted": 3}
