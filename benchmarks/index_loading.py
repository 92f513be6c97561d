"""Index loading figures (issue 16): cold start, warm start from HASHGUARD_INDEX_DIR, a delta, and the
longest event-loop stall during each, on a generated PDQ list in an embedded PostgreSQL.

    python -m benchmarks.index_loading [--entries 1000000] [--delta 10000]

Bounded: one list, one delta, three loads; loopback only. Prints one line per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from detector.approvals import pg as approvals_pg
from detector.snapshots import SnapshotLoader
from detector.tools.registry import ToolRegistry
from hashsets import lists
from hashsets.manifest import Kind
from hashsets.parse import parse_blocks
from hashsets.serving import SnapshotSource
from kernel.db import embedded_url, migrate, stop_embedded
from kernel.metrics import Metrics

TOOLS = ToolRegistry.load(("pdq",))


class LagProbe:
    """The longest time the event loop was late to wake a 2 ms sleeper (what a scan would wait)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.002)
            self.worst = max(self.worst, time.perf_counter() - start - 0.002)

    @contextlib.asynccontextmanager
    async def measure(self) -> AsyncIterator[LagProbe]:
        self.worst = 0.0
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def lines(rng: np.random.Generator, start: int, count: int, *, delta: bool = False) -> Iterator[str]:
    yield "op,id,hash\n" if delta else "id,hash\n"
    for block in range(start, start + count, 50_000):
        n = min(50_000, start + count - block)
        codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
        for i, code in zip(range(block, block + n), codes, strict=True):
            yield f"add,e{i},{code.tobytes().hex()}\n" if delta else f"e{i},{code.tobytes().hex()}\n"


async def put(conn: asyncpg.Connection, text: Iterator[str], kind: Kind) -> None:
    request = lists.ImportRequest(name="big", tool="pdq", source="bench", kind=kind, actor="bench")
    blocks = parse_blocks(text, TOOLS.get("pdq").parse_hex, width=32, allow_retractions=kind is Kind.DELTA)
    await lists.import_list(conn, request, blocks)


def loader(pool: asyncpg.Pool, folder: Path) -> SnapshotLoader[Any]:
    return SnapshotLoader(
        pool=pool,
        lists=SnapshotSource(),
        policy_inputs=approvals_pg.policy_inputs,
        tools=TOOLS,
        jurisdictions=("GB",),
        metrics=Metrics(),
        index_dir=folder,
    )


async def timed(probe: LagProbe, what: str, live: SnapshotLoader[Any]) -> None:
    async with probe.measure():
        started = time.perf_counter()
        _, snapshot = await live.load()
        seconds = time.perf_counter() - started
    print(
        f"{what:<28} {seconds:7.2f} s  max loop lag {probe.worst * 1000:6.1f} ms  "
        f"({live.last_changes.get('pdq')}, {snapshot.entries_by_tool().get('pdq', 0)} entries)",
        flush=True,
    )


async def warm(url: str, index_dir: Path) -> None:
    started = time.perf_counter()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    probe = LagProbe()
    await timed(probe, "warm start, new process", loader(pool, index_dir))
    print(f"  (process start to snapshot {time.perf_counter() - started:.2f} s after imports)", flush=True)
    await pool.close()


async def main(entries: int, delta: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hashguard-index-bench-"))
    try:
        url = embedded_url(folder / "pg")
        conn = await asyncpg.connect(url)
        await migrate(conn)
        await approvals_pg.allow_local(conn, tool="pdq", versions="*", reason="bench", actor="bench")
        rng = np.random.default_rng(16)
        started = time.perf_counter()
        await put(conn, lines(rng, 0, entries), Kind.FULL)
        print(f"import of {entries} entries     {time.perf_counter() - started:7.2f} s", flush=True)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        probe = LagProbe()
        index_dir = folder / "index"
        cold = loader(pool, index_dir)
        await timed(probe, "cold start (rebuild)", cold)
        await timed(probe, "warm start (file)", loader(pool, index_dir))
        await put(conn, lines(rng, entries, delta, delta=True), Kind.DELTA)
        await timed(probe, f"delta of {delta} (in place)", cold)
        await timed(probe, "warm start after it (catch-up)", loader(pool, index_dir))
        # A new process pays for mapping the file and loading the compiled kernels from numba's cache.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.index_loading", "--warm", url, str(index_dir)
        )
        await process.wait()
        await pool.close()
        await conn.close()
    finally:
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--delta", type=int, default=10_000)
    parser.add_argument("--warm", nargs=2, metavar=("URL", "INDEX_DIR"), help="only a warm start (used by the run itself)")
    args = parser.parse_args()
    if args.warm:
        asyncio.run(warm(args.warm[0], Path(args.warm[1])))
    else:
        asyncio.run(main(args.entries, args.delta))
