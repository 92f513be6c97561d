"""A closed-loop load generator for ``POST /v1/scan``, run as its own process.

``python -m benchmarks.loadgen URL KEY FOLDER --concurrency 8 --duration 20 --max-requests 2000``
posts the files in FOLDER round-robin from ``concurrency`` client tasks, for at most
``duration`` seconds and ``max-requests`` requests, and prints one JSON object: requests,
errors, scans per second, p50/p99 latency. Loopback only: it refuses any other host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp


async def _run(url: str, key: str, files: list[bytes], concurrency: int, duration: float, max_requests: int) -> dict[str, object]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    stop_at = time.monotonic() + duration
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "image/jpeg"}

    async def client(session: aiohttp.ClientSession, worker: int) -> None:
        nonlocal issued
        while time.monotonic() < stop_at and issued < max_requests:
            body = files[issued % len(files)]
            issued += 1
            started = time.perf_counter()
            async with session.post(
                url, params={"content_id": f"bench-{worker}-{issued}"}, data=body, headers=headers
            ) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1

    began = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(client(session, i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": issued,
        "ok": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "scans_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1) if ordered else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the load generator only talks to loopback")
    files = [p.read_bytes() for p in sorted(args.folder.iterdir()) if p.is_file()]
    result = asyncio.run(_run(args.url, args.key, files, args.concurrency, args.duration, args.max_requests))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
