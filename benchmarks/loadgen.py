"""A load generator for hashguard's endpoints, run as its own process. Loopback only: it refuses any other host.

Closed loop (the default): ``python -m benchmarks.loadgen URL KEY FOLDER --concurrency 8 --duration 20
--max-requests 2000`` posts the files in FOLDER round-robin from ``concurrency`` client tasks, for at
most ``duration`` seconds and ``max-requests`` requests, and prints one JSON object: requests,
errors, scans per second, p50/p99 latency.

Open loop, a fixed rate: ``... --rate 20 --duration 20 [--warmup 2] [--content-type application/json]``
starts request i at exactly ``i / rate`` seconds whether or not earlier ones have been answered (at
most ``--max-in-flight`` at once; a request that would pass that is counted as ``client_skipped``), so
a slow server shows as latency and errors rather than as a politely lower rate. Latency runs from the
moment a request was due to the last byte of its answer. Requests of the first ``warmup`` seconds are
sent but not counted.
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


def _percentile(ordered: list[float], q: float) -> float | None:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 1) if ordered else None


async def open_loop(
    url: str,
    key: str,
    files: list[bytes],
    *,
    rate: float,
    duration: float,
    warmup: float,
    content_type: str,
    max_in_flight: int,
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    in_flight = 0
    counted = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession, n: int, due: float, count: bool) -> None:
        nonlocal in_flight
        status = "transport_error"
        try:
            # An upload names its content in the query; a JSON body carries its own content_id.
            params = None if content_type == "application/json" else {"content_id": f"load-{n}"}
            async with session.post(url, params=params, data=files[n % len(files)], headers=headers) as r:
                await r.read()
                status = str(r.status)
        except (aiohttp.ClientError, TimeoutError):
            pass
        finally:
            in_flight -= 1
        if count:
            statuses[status] = statuses.get(status, 0) + 1
            if status.startswith("2"):
                latencies.append(time.perf_counter() - due)

    total = int((warmup + duration) * rate)
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        began = time.perf_counter()
        for n in range(total):
            due = began + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            count = n >= warmup * rate
            counted += count
            if in_flight >= max_in_flight:
                if count:
                    statuses["client_skipped"] = statuses.get("client_skipped", 0) + 1
                continue
            in_flight += 1
            task = asyncio.create_task(one(session, n, due, count))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        # Rates over the counted window: from the first counted request's due time to the last answer.
        elapsed = max(duration, time.perf_counter() - began - warmup)
    ordered = sorted(latencies)
    ok = len(ordered)
    return {
        "rate": rate,
        "seconds": round(elapsed, 2),
        "requests": counted,
        "ok": ok,
        "answers_per_s": round(ok / elapsed, 2),
        "errors": {k: v for k, v in sorted(statuses.items()) if not k.startswith("2")},
        "p50_ms": _percentile(ordered, 0.50),
        "p99_ms": _percentile(ordered, 0.99),
        "max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--rate", type=float, help="open loop: requests started per second")
    parser.add_argument("--warmup", type=float, default=0.0, help="open loop: seconds sent first and not counted")
    parser.add_argument("--content-type", default="image/jpeg")
    parser.add_argument("--max-in-flight", type=int, default=256)
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the load generator only talks to loopback")
    files = [p.read_bytes() for p in sorted(args.folder.iterdir()) if p.is_file()]
    if args.rate:
        result = asyncio.run(
            open_loop(
                args.url,
                args.key,
                files,
                rate=args.rate,
                duration=args.duration,
                warmup=args.warmup,
                content_type=args.content_type,
                max_in_flight=args.max_in_flight,
            )
        )
    else:
        result = asyncio.run(_run(args.url, args.key, files, args.concurrency, args.duration, args.max_requests))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
