"""Statements of reasons per second from the outbox to a DSA Transparency Database stand-in on loopback.

    python -m benchmarks.dsa_submission [--statements 2000] [--rounds 3] [--seed 5]

Embedded PostgreSQL in a temporary folder; ``--statements`` restrictions issued through the real
store (a list policy actions each match, which issues its statement and queues it); then the
submitter (``takedown.dsa_jobs``) drains the queue to the stand-in (tests/dsa_standin.py) at the
database's real limits (200 calls/s, 12,000/min), once in batches of 100 (the multi-statement
endpoint) and once a statement a call (the peer: what one call per statement would give), each
``--rounds`` times, the queue reset to pending between runs. Prints wall time, statements per
second and calls per run, their medians, and the ratio. Writes benchmarks/results/dsa_submission.md.
The seed orders the statements' content ids; the figures do not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

from benchmarks.machine import commit, describe
from detector.match import Match
from kernel.db import create_pool, embedded_url, migrate, stop_embedded
from kernel.keys import DEFAULT_TENANT_ID
from takedown import dsa_jobs, matching, policy_store
from takedown.config import TakedownConfig
from takedown.rules import Policy
from takedown.tickets import SYSTEM
from takedown.workflow import Action
from tests.dsa_standin import TOKEN, DsaStandIn

RESULTS = Path(__file__).parent / "results" / "dsa_submission.md"


async def seed(pool: asyncpg.Pool, n: int, rng: random.Random) -> None:
    async with pool.acquire() as conn:
        await policy_store.set_policy(conn, SYSTEM, Policy(hashset="verified", tool="*", auto_action=True, action=Action.REMOVE))
        for i in rng.sample(range(n), n):
            await matching.open_for_matches(
                conn,
                tenant_id=DEFAULT_TENANT_ID,
                scan_id=uuid.uuid4(),
                content_id=f"item-{i}",
                content_url=None,
                matches=[
                    Match(
                        entry_row=1, hashset="verified", hashset_version=1, entry_id="e", tool="pdq", tool_version="1", distance=0
                    )
                ],
                api_key_id=None,
                config=TakedownConfig(),
            )


async def drain(pool: asyncpg.Pool, batch: int, n: int) -> tuple[float, int, list[float]]:
    standin = await DsaStandIn().start()
    try:
        async with aiohttp.ClientSession() as session:
            sub = dsa_jobs.DsaSubmitter(
                pool=pool, session=session, config=dsa_jobs.DsaConfig(url=standin.url, token=TOKEN, batch=batch, poll_s=0.01)
            )
            passes: list[float] = []  # seconds per pass: claim, check, send, mark one batch
            started = time.perf_counter()
            while len(standin.held) < n:
                begun = time.perf_counter()
                if await sub.run_once() == 0:
                    await asyncio.sleep(0.01)
                else:
                    passes.append(time.perf_counter() - begun)
            return time.perf_counter() - started, sub.calls, passes
    finally:
        await standin.stop()
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE dsa_submissions SET state = 'pending', attempts = 0, next_attempt_at = now(), db_uuid = NULL"
            )


async def run(n: int, rounds: int, seed_: int) -> dict[int, list[tuple[float, int, list[float]]]]:
    with tempfile.TemporaryDirectory(prefix="hashguard-dsa-bench-") as tmp:
        folder = Path(tmp)
        url = embedded_url(folder)
        try:
            pool = await create_pool(url, 4)
            try:
                async with pool.acquire() as conn:
                    await migrate(conn)
                await seed(pool, n, random.Random(seed_))
                results: dict[int, list[tuple[float, int, list[float]]]] = {100: [], 1: []}
                for _ in range(rounds):
                    for batch in (100, 1):
                        results[batch].append(await drain(pool, batch, n))
                return results
            finally:
                await pool.close()
        finally:
            stop_embedded(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    machine, started = describe(), datetime.now(UTC)
    results = asyncio.run(run(args.statements, args.rounds, args.seed))
    rate = {b: [args.statements / s for s, _, _ in runs] for b, runs in results.items()}
    lines = [
        "# Statements of reasons to the DSA Transparency Database (stand-in on loopback)",
        "",
        f"- command: `python -m benchmarks.dsa_submission --statements {args.statements} --rounds {args.rounds} --seed {args.seed}`",
        f"- seed {args.seed}; commit {commit()}; run {started.isoformat(timespec='seconds')}",
        f"- machine: {machine}",
        "- rate limits as the real database's: 200 calls/s, 12,000 calls/min (sliding windows)",
        "",
        "| batch | round | seconds | statements/s | calls | pass median ms | pass p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch, runs in results.items():
        for i, (seconds, calls, passes) in enumerate(runs, 1):
            ms = sorted(p * 1000 for p in passes)
            p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
            lines.append(
                f"| {batch} | {i} | {seconds:.2f} | {args.statements / seconds:.0f} | {calls} | {statistics.median(ms):.1f} | {p99:.1f} |"
            )
    m100, m1 = statistics.median(rate[100]), statistics.median(rate[1])
    lines += [
        "",
        "A pass claims one batch, checks it against the schema, sends it and marks it; with one statement a call,"
        " passes include the wait for the rate limit.",
        "",
        f"Median statements/s: batches of 100: {m100:.0f}; one a call: {m1:.0f}; ratio {m100 / m1:.1f}x.",
        f"Calls made: {results[100][0][1]} for batches of 100, {results[1][0][1]} for one a call (the rate limit allows"
        " at most 200 calls in any second). Each run claims, checks against the schema, sends and marks every statement.",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
