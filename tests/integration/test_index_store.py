"""Built indexes on disk (issue 16): a restart maps the file, a stale file is caught up by deltas,
a damaged one is refused and rebuilt, and processes starting together build once."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from pathlib import Path
from typing import Any

import asyncpg

from detector import index_store
from detector.index_file import MAGIC
from hashsets.manifest import Kind
from tests.integration.test_index_deltas import (
    allow_tools,
    answers,
    delta,
    full,
    loader,
    probes_for,
    put,
    reference,
)


def names(folder: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


def flip_a_data_byte(folder: Path) -> None:
    """Damage the stored PDQ index: one byte of its codes flipped (the header stays valid)."""
    [path] = folder.glob("pdq.*.index")
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "little")
    header = json.loads(data[len(MAGIC) + 8 : len(MAGIC) + 8 + header_len])
    data_start = -(-(len(MAGIC) + 8 + header_len) // 64) * 64
    data[data_start + header["arrays"]["0.words"]["offset"] + 5] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_restart_maps_the_file_and_a_stale_one_is_caught_up(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await allow_tools(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 60))))
        await put(conn, "m", "md5", full("md5", list(range(0, 10))))
    first = loader(pool, tmp_path)
    await first.load()
    assert first.last_changes == {"pdq": "rebuild", "md5": "rebuild"}
    written = names(tmp_path, "pdq.*")
    assert len(written) == 2  # the index and its rows
    restarted = loader(pool, tmp_path)
    _, snap = await restarted.load()
    assert restarted.last_changes == {"pdq": "file", "md5": "file"}
    assert answers(snap, probes_for(range(70))) == answers(await reference(pool), probes_for(range(70)))
    # A delta committed while stopped: the next start maps the file and reads only the delta.
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", delta("pdq", [100, 101], [1, 2]), Kind.DELTA)
    again = loader(pool, tmp_path)
    _, snap = await again.load()
    assert again.last_changes == {"pdq": "catch-up", "md5": "file"}
    assert answers(snap, probes_for(range(105))) == answers(await reference(pool), probes_for(range(105)))
    assert names(tmp_path, "pdq.*") == written  # caught up in memory, the file kept
    # A full replacement: that tool is rebuilt, its old file replaced.
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(200, 220))))
    after = loader(pool, tmp_path)
    _, snap = await after.load()
    assert after.last_changes == {"pdq": "rebuild", "md5": "file"}
    assert names(tmp_path, "pdq.*") != written and len(names(tmp_path, "pdq.*")) == 2
    assert answers(snap, probes_for(range(225))) == answers(await reference(pool), probes_for(range(225)))


async def test_a_damaged_file_is_refused_and_rebuilt(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await allow_tools(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 60))))
    await loader(pool, tmp_path).load()
    flip_a_data_byte(tmp_path)
    restarted = loader(pool, tmp_path)
    _, snap = await restarted.load()
    assert restarted.last_changes["pdq"] == "rebuild"
    assert restarted._metrics.index_file_refused._value.get() == 1
    assert answers(snap, probes_for(range(60))) == answers(await reference(pool), probes_for(range(60)))
    third = loader(pool, tmp_path)
    await third.load()
    assert third.last_changes["pdq"] == "file"  # the rebuilt file is good


def _start_worker(url: str, folder: str, out: Any) -> None:
    async def run() -> str:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            live = loader(pool, Path(folder))
            await live.load()
            return live.last_changes["pdq"]
        finally:
            await pool.close()

    out.put(asyncio.run(run()))


async def test_workers_starting_together_build_once(pool: asyncpg.Pool, migrated_database_url: str, tmp_path: Path) -> None:
    await allow_tools(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 300))))
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=_start_worker, args=(migrated_database_url, str(tmp_path), out)) for _ in range(3)]
    for w in workers:
        w.start()
    results = sorted(await asyncio.get_running_loop().run_in_executor(None, lambda: [out.get(timeout=120) for _ in workers]))
    for w in workers:
        w.join(30)
    assert results == ["file", "file", "rebuild"]
    assert len(names(tmp_path, "pdq.*.index")) == 1
    assert index_store.bytes_held(tmp_path) > 0
