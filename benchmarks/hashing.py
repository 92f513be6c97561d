"""Hashing speed and fidelity: reference implementations vs hashguard's fast path vs the decode floor.

    python -m benchmarks.hashing [--seed 1] [--repeat 3] [--quick] [--no-service]

For every corpus image (benchmarks/corpus.py: photos bundled in scikit-image, their grainy
twins and drawn pictures, as JPEG/PNG/WebP at 640x480, 1920x1080 and 4000x3000) it times

* floor: Pillow decoding the pixels the fast path needs, and nothing else (JPEG: the
  reduced-size draft decode; PNG and WebP have no reduced decode, so the full decode);
* fast: ``HashingPath.FAST`` (decode + hash), PDQ alone and all three perceptual tools;
* reference: ``HashingPath.REFERENCE`` (full decode + pdqhash / imagehash), the same two ways;

and the Hamming distance between fast and reference hashes per tool (fidelity). Then hashing
throughput through threads vs processes, and the service end to end: ``hashguard serve`` on a
free loopback port with 2 hash workers, driven by ``benchmarks.loadgen`` in another process,
once per hashing path and pool kind (threads, processes). Medians and ratios, since the machine is shared and noisy.
Results go to benchmarks/results/hashing.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from benchmarks.corpus import Item, build
from benchmarks.machine import commit, describe
from benchmarks.serving import free_port, hashguard_cli, wait_ready
from detector.decode import HashingPath, Media, reduction
from detector.hashjob import HashJob, hash_upload, prepare_worker
from detector.tools.base import HashTool
from detector.tools.imagehashes import DHashTool, PHashTool
from detector.tools.pdq import PdqTool

RESULTS = Path(__file__).parent / "results" / "hashing.md"
CACHE = Path(tempfile.gettempdir()) / "hashguard-bench-corpus"
TOOLS: tuple[HashTool, ...] = (PdqTool(), PHashTool(), DHashTool())


def distance(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def floor_decode(data: bytes) -> None:
    """Pillow's decode of exactly the pixels the fast path needs, nothing more."""
    image = Image.open(io.BytesIO(data))
    scale = reduction(*image.size)
    if image.format == "JPEG" and scale > 1:
        image.draft("L", (image.size[0] // scale, image.size[1] // scale))
    image.load()


def hash_all(data: bytes, path: HashingPath, tools: tuple[HashTool, ...]) -> dict[str, bytes]:
    media = Media(data=data, max_pixels=200_000_000, hashing=path)
    media.decode()
    return {t.name: t.hash(media).value for t in tools}


@dataclass(frozen=True, kw_only=True, slots=True)
class Measured:
    item: Item
    floor_ms: float
    fast_pdq_ms: float
    fast_all_ms: float
    ref_pdq_ms: float
    ref_all_ms: float
    distances: dict[str, int]


def measure(item: Item, repeat: int) -> Measured:
    pdq = TOOLS[:1]
    fast = hash_all(item.data, HashingPath.FAST, TOOLS)
    ref = hash_all(item.data, HashingPath.REFERENCE, TOOLS)
    return Measured(
        item=item,
        floor_ms=median_ms(lambda: floor_decode(item.data), repeat),
        fast_pdq_ms=median_ms(lambda: hash_all(item.data, HashingPath.FAST, pdq), repeat),
        fast_all_ms=median_ms(lambda: hash_all(item.data, HashingPath.FAST, TOOLS), repeat),
        ref_pdq_ms=median_ms(lambda: hash_all(item.data, HashingPath.REFERENCE, pdq), max(1, repeat // 3)),
        ref_all_ms=median_ms(lambda: hash_all(item.data, HashingPath.REFERENCE, TOOLS), max(1, repeat // 3)),
        distances={t.name: distance(fast[t.name], ref[t.name]) for t in TOOLS},
    )


def speed_table(rows: list[Measured]) -> list[str]:
    groups: dict[tuple[str, tuple[int, int]], list[Measured]] = defaultdict(list)
    for row in rows:
        groups[(row.item.format, row.item.size)].append(row)
    lines = [
        "| format | size | images | floor ms | fast PDQ ms | fast all ms | reference PDQ ms | reference all ms |"
        " fast PDQ / floor | fast all / floor | reference / fast (PDQ) | reference / fast (all) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (fmt, size), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1][0])):

        def med(attr: str, group: list[Measured] = group) -> float:
            return float(statistics.median(getattr(r, attr) for r in group))

        def ratio(a: str, b: str, group: list[Measured] = group) -> float:
            return float(statistics.median(getattr(r, a) / getattr(r, b) for r in group))

        lines.append(
            f"| {fmt} | {size[0]}x{size[1]} | {len(group)} | {med('floor_ms'):.1f} | {med('fast_pdq_ms'):.1f} | {med('fast_all_ms'):.1f}"
            f" | {med('ref_pdq_ms'):.1f} | {med('ref_all_ms'):.1f} | {ratio('fast_pdq_ms', 'floor_ms'):.2f}x"
            f" | {ratio('fast_all_ms', 'floor_ms'):.2f}x | {ratio('ref_pdq_ms', 'fast_pdq_ms'):.1f}x | {ratio('ref_all_ms', 'fast_all_ms'):.1f}x |"
        )
    return lines


def fidelity_table(rows: list[Measured]) -> list[str]:
    lines = [
        "| tool | bits | images | p50 | p99 | max | worst size/format (max) | images with 0 bits |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for tool in TOOLS:
        values = [r.distances[tool.name] for r in rows]
        by_group: dict[str, int] = defaultdict(int)
        for r in rows:
            key = f"{r.item.size[0]}x{r.item.size[1]} {r.item.format}"
            by_group[key] = max(by_group[key], r.distances[tool.name])
        worst = max(by_group.items(), key=lambda kv: kv[1])
        lines.append(
            f"| {tool.name} | {tool.bits} | {len(values)} | {np.percentile(values, 50):.0f} | {np.percentile(values, 99):.1f}"
            f" | {max(values)} | {worst[0]} ({worst[1]}) | {sum(v == 0 for v in values)} |"
        )
    return lines


def _init_thread_worker() -> None:
    threadpool_limits(limits=1)


def pool_scaling(items: list[Item], rounds: int) -> list[str]:
    """Images per second hashed (all three tools, fast path) by 1 thread, 2 threads and 2 processes.

    The machine is shared, so the three executors take turns for ``rounds`` rounds and each
    reports its median round: a burst of someone else's work then costs every executor alike.
    """
    jobs = [HashJob(data=i.data, max_pixels=200_000_000, hashing=HashingPath.FAST, tools=TOOLS) for i in items]
    executors: dict[tuple[str, int], Executor] = {
        ("threads", 1): ThreadPoolExecutor(1),
        ("threads", 2): ThreadPoolExecutor(2),
        ("processes", 2): ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=prepare_worker),
    }
    rates: dict[tuple[str, int], list[float]] = defaultdict(list)
    for executor in executors.values():
        list(executor.map(hash_upload, jobs[:4]))  # warm up (and start the processes)
    for _ in range(rounds):
        for key, executor in executors.items():
            started = time.perf_counter()
            list(executor.map(hash_upload, jobs))
            rates[key].append(len(jobs) / (time.perf_counter() - started))
    for executor in executors.values():
        executor.shutdown()
    baseline = statistics.median(rates[("threads", 1)])
    lines = ["| executor | workers | images/s (median of rounds) | vs 1 thread | rounds |", "|---|---:|---:|---:|---|"]
    for (kind, workers), values in rates.items():
        rate = statistics.median(values)
        lines.append(f"| {kind} | {workers} | {rate:.1f} | {rate / baseline:.2f}x | {', '.join(f'{v:.0f}' for v in values)} |")
    return lines


def service_throughput(items: list[Item], seed: int, duration: float, max_requests: int, concurrency: int) -> list[str]:
    """Scans per second and latency of ``hashguard serve`` (2 hash workers) per hashing path and pool kind."""
    lines = [
        "| hashing | pool | workers | concurrency | requests | scans/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-") as tmp:
        folder = Path(tmp) / "uploads"
        folder.mkdir()
        for index, item in enumerate(items):
            (folder / f"{index:03d}.jpg").write_bytes(item.data)
        hashes = Path(tmp) / "list.txt"
        # A small synthetic list: random 256-bit values, nothing real.
        hashes.write_text("".join(rng.bytes(32).hex() + "\n" for _ in range(1000)))
        env = {
            **os.environ,
            "HASHGUARD_DATA_DIR": str(Path(tmp) / "data"),
            "HASHGUARD_HASH_WORKERS": "2",
            "HASHGUARD_LOG_LEVEL": "WARNING",
        }
        env.pop("HASHGUARD_DATABASE_URL", None)
        key = hashguard_cli(env, "keys", "create", "--role", "platform", "--label", "benchmark").split()[0]
        hashguard_cli(env, "hashsets", "import", str(hashes), "--name", "synthetic", "--tool", "pdq", "--allow-unsigned")
        # No regulator approval exists in a benchmark's fresh database: allow pdq locally, as such.
        hashguard_cli(env, "tools", "allow-local", "pdq", "--reason", "benchmark on synthetic data")
        for path, kind in (("reference", "threads"), ("reference", "processes"), ("fast", "threads"), ("fast", "processes")):
            port = free_port()
            server_env = {**env, "HASHGUARD_HASHING": path, "HASHGUARD_HASH_POOL": kind}
            server = subprocess.Popen(
                [sys.executable, "-m", "hashguard.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                env=server_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                wait_ready(base, server, 60)
                args = [sys.executable, "-m", "benchmarks.loadgen", f"{base}/v1/scan", key, str(folder)]
                # Warm-up, then the measured run.
                warm = [*args, "--concurrency", str(concurrency), "--duration", "3", "--max-requests", "20"]
                subprocess.run(warm, check=True, capture_output=True, timeout=120)
                options = ["--concurrency", str(concurrency), "--duration", str(duration), "--max-requests", str(max_requests)]
                out = subprocess.run([*args, *options], check=True, capture_output=True, text=True, timeout=duration + 120).stdout
                result = json.loads(out)
                lines.append(
                    f"| {path} | {kind} | 2 | {concurrency} | {result['requests']} | {result['scans_per_s']} | {result['p50_ms']}"
                    f" | {result['p99_ms']} | {result['errors'] or 'none'} |"
                )
                print(lines[-1], flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per image for fast and floor (reference: a third)")
    parser.add_argument("--quick", action="store_true", help="6 photos instead of 17, for a fast look")
    parser.add_argument("--no-service", action="store_true", help="skip the end-to-end service run")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per hashing path")
    parser.add_argument("--max-requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the thread/process comparison")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    threadpool_limits(limits=1)  # one job per CPU is the model; BLAS threads on top only contend

    command = "python -m benchmarks.hashing " + " ".join(argv if argv is not None else sys.argv[1:])
    header = [
        f"- command: `{command.strip()}`",
        f"- seed: {args.seed}",
        f"- commit: {commit()}",
        f"- machine: {describe()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]
    print("\n".join(header), flush=True)
    from benchmarks.corpus import PHOTOS

    photos = PHOTOS[::3] if args.quick else PHOTOS
    items = build(args.seed, photos=photos, cache=CACHE)
    print(f"corpus: {len(items)} images (cached in {CACHE})", flush=True)

    rows = []
    for index, item in enumerate(items):
        rows.append(measure(item, args.repeat))
        if index % 20 == 0:
            print(f"  {index + 1}/{len(items)} {item.label}: {rows[-1].distances}", flush=True)
    speed = speed_table(rows)
    fidelity = fidelity_table(rows)
    print("\n".join([*speed, "", *fidelity]), flush=True)

    jpegs_1080 = [i for i in items if i.format == "JPEG" and i.size == (1920, 1080)]
    scaling = pool_scaling(jpegs_1080, rounds=args.rounds)
    print("\n".join(scaling), flush=True)
    service: list[str] = []
    if not args.no_service:
        try:
            service = service_throughput(jpegs_1080, args.seed, args.duration, args.max_requests, args.concurrency)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:  # keep the tables measured so far
            service = [f"The service run failed: {exc!r}"]
            print(service[0], flush=True)

    out = ["# Hashing: reference vs fast path vs decode floor", "", *header, "", "## Speed (median per image)", "", *speed]
    out += ["", "## Fidelity: Hamming distance fast vs reference", "", *fidelity]
    out += ["", "## Hashing throughput, 1080p JPEG, all three perceptual tools, fast path", "", *scaling]
    if service:
        out += ["", "## Service: POST /v1/scan with 1080p JPEGs, load generator in another process on loopback", "", *service]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # The interpretation is hand-written and names the run it reads; it is not pasted under new figures.
    out += ["", f"Reading: {args.output.with_suffix('.notes.md').name} (hand-written, for the run it names)."]
    args.output.write_text("\n".join(out) + "\n")
    print(f"wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
