"""HashPool: hashing in worker processes, matching here, errors come back as errors (never a verdict)."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from detector.decode import HashingPath
from detector.errors import CorruptMedia
from detector.hashjob import HashJob, hash_upload
from detector.scan import HashPool
from detector.synthetic import draw, encode
from detector.tools.pdq import PdqTool


def _die() -> None:
    os._exit(1)  # a worker killed mid-job, as a decoder crash or the OOM killer would


async def test_process_pool_hashes_reports_errors_and_survives_a_dead_worker() -> None:
    pool = HashPool(1, timeout_s=60, processes=True)
    try:
        job = HashJob(data=encode(draw(1)), max_pixels=10_000_000, hashing=HashingPath.FAST, tools=(PdqTool(),))
        results = await pool.run(hash_upload, job)
        assert results == hash_upload(job)  # the same answer as in this process
        with pytest.raises(CorruptMedia):
            await pool.run(
                hash_upload, HashJob(data=job.data[:500], max_pixels=10_000_000, hashing=HashingPath.FAST, tools=(PdqTool(),))
            )
        with pytest.raises(BrokenProcessPool):
            await pool.run(_die)
        assert (await pool.run(hash_upload, job))["pdq"] == results["pdq"]  # a fresh pool took over
        assert await pool.run_here(sum, [1, 2, 3]) == 6  # closures and local state: a thread here
    finally:
        pool.close()


async def test_thread_pool_runs_the_same_jobs() -> None:
    pool = HashPool(2, timeout_s=60)
    try:
        job = HashJob(data=encode(draw(2)), max_pixels=10_000_000, hashing=HashingPath.FAST, tools=(PdqTool(),))
        assert await pool.run(hash_upload, job) == hash_upload(job)
        with pytest.raises(CorruptMedia):
            await pool.run(hash_upload, HashJob(data=job.data[:500], max_pixels=10_000_000, hashing=HashingPath.FAST, tools=()))
    finally:
        pool.close()


async def test_memory_budget_holds_large_decodes_back_and_lets_small_ones_through() -> None:
    """Hostile uploads cannot add up past the total; ordinary ones never wait behind them."""
    import asyncio

    from detector.scan import MemoryBudget

    budget = MemoryBudget(total=1000, small=50)
    first = await budget.acquire(600)
    second = asyncio.ensure_future(budget.acquire(600))  # would make 1200: waits
    third = asyncio.ensure_future(budget.acquire(300))  # fits, but arrived after a waiting large one: waits its turn
    await asyncio.sleep(0)  # one turn of the loop, so both reach their wait (not a timed wait)
    assert not second.done() and not third.done() and budget.used == 600
    assert await budget.acquire(40) == 40  # small: never waits
    assert budget.used == 640
    budget.release(40)
    budget.release(first)
    assert await second == 600 and await third == 300 and budget.used == 900
    late = asyncio.ensure_future(budget.acquire(500))
    await asyncio.sleep(0)
    late.cancel()  # a scan that timed out while waiting leaves nothing behind
    with pytest.raises(asyncio.CancelledError):
        await late
    budget.release(600)
    budget.release(300)
    assert budget.used == 0
    assert await budget.acquire(5000) == 1000  # above the total: counted as the total, runs alone
