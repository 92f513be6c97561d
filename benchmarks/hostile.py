"""The worst case: server memory and ordinary scan latency while hostile uploads run.

``python -m benchmarks.hostile --duration 30`` starts a real ``hashguard serve`` (embedded
PostgreSQL in a temporary folder, 2 hash workers in threads, every other setting at its
default) on a free loopback port with a synthetic 1,000-entry PDQ list, then:

1. **baseline**: one client scans ordinary 1080p JPEGs back to back for ``--duration`` s;
2. **hostile**: the same client again, while 4 more clients upload hostile files back to back:
   thin PNGs (1 x 100,000,000 and 100,000,000 x 1), images exactly at the pixel limit
   (a 10000x10000 RGB PNG and JPEG, a 4000x25000 greyscale PNG), and lying headers
   (a PNG whose height was raised 2%, a JPEG declaring 10000x10000 over 64x64 of data).

It reports the ordinary scans' median and p99 latency in each phase, what the hostile uploads
got (status and error code), and the server process's peak resident memory (``VmHWM`` from
``/proc/PID/status``, reset between phases through ``/proc/PID/clear_refs``), and writes
``benchmarks/results/hostile.md``. Loopback only; files are drawn here.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

from benchmarks.machine import commit, describe
from benchmarks.serving import free_port, hashguard_cli, wait_ready
from detector.synthetic import draw, encode

RESULTS = Path(__file__).parent / "results" / "hostile.md"

# Decode-and-hash of one file in a fresh process: seconds, peak resident MiB, how it ended.
_STANDALONE = """
import sys, time
from detector.decode import HashingPath
from detector.hashjob import HashJob, hash_upload, prepare_worker
from detector.tools.imagehashes import DHashTool, PHashTool
from detector.tools.pdq import PdqTool
prepare_worker()
data = open(sys.argv[1], "rb").read()
started = time.perf_counter()
try:
    hash_upload(HashJob(data=data, max_pixels=100_000_000, hashing=HashingPath(sys.argv[2]), tools=(PdqTool(), PHashTool(), DHashTool())))
    end = "hashed"
except Exception as exc:
    end = getattr(exc, "code", None) or type(exc).__name__
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(time.perf_counter() - started, peak / 1024, end)
"""
# The same measurement on main before this work (commit f7f3a76, 2026-12-02 03:28 UTC, load average about 4):
# the thin PNGs ended in MemoryError, which the service answered 500.
BEFORE = {
    ("png 1x100,000,000", "fast"): "20.42 s, 4,995 MiB, MemoryError (500)",
    ("png 1x100,000,000", "reference"): "15.06 s, 3,755 MiB, MemoryError (500)",
    ("png 100,000,000x1", "fast"): "0.03 s, 34 MiB, MemoryError (500)",
    ("png 100,000,000x1", "reference"): "0.02 s, 35 MiB, MemoryError (500)",
    ("png 10000x10000 RGB (at the limit)", "fast"): "1.84 s, 513 MiB, hashed",
    ("png 10000x10000 RGB (at the limit)", "reference"): "11.10 s, 2,992 MiB, hashed",
}


def standalone(files: dict[str, tuple[bytes, str]], folder: Path) -> list[str]:
    """Before/after rows: each of ``BEFORE``'s files decoded and hashed alone in a fresh process."""
    rows = ["| file | path | before (main, f7f3a76) | after |", "|---|---|---|---|"]
    for name, path in BEFORE:
        target = folder / "standalone.bin"
        target.write_bytes(files[name][0])
        out = subprocess.run(
            [sys.executable, "-c", _STANDALONE, str(target), path], capture_output=True, text=True, timeout=600, check=True
        ).stdout.split()
        rows.append(f"| {name} | {path} | {BEFORE[name, path]} | {float(out[0]):.2f} s, {float(out[1]):,.0f} MiB, {out[2]} |")
    return rows


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def flat_png(width: int, height: int, colour: int = 2) -> bytes:
    """A valid PNG of one grey level (RGB or, ``colour=0``, greyscale), compressed as it is streamed."""
    channels = 3 if colour == 2 else 1
    row = b"\x00" + b"\x80" * (width * channels)
    rows_per_block = max(1, (1 << 20) // len(row))
    compressor = zlib.compressobj(9)
    parts, left = [], height
    block = row * rows_per_block
    while left:
        n = min(left, rows_per_block)
        parts.append(compressor.compress(block if n == rows_per_block else row * n))
        left -= n
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def raised_height(png: bytes) -> bytes:
    out = bytearray(png)
    (height,) = struct.unpack(">I", out[20:24])
    out[20:24] = struct.pack(">I", height * 102 // 100)
    out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    return bytes(out)


def jpeg_claiming(width: int, height: int) -> bytes:
    out = bytearray(encode(draw(51, (64, 64)), "JPEG"))
    sof = out.index(b"\xff\xc0")
    out[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def hostile_files() -> dict[str, tuple[bytes, str]]:
    """Name -> (body, content type) of each hostile upload."""
    big = Image.fromarray(np.random.default_rng(5).integers(0, 256, (1250, 1250, 3), np.uint8)).resize((10000, 10000))
    jpeg = io.BytesIO()
    big.save(jpeg, "JPEG", quality=75)
    del big
    return {
        "png 1x100,000,000": (flat_png(1, 100_000_000), "image/png"),
        "png 100,000,000x1": (flat_png(100_000_000, 1), "image/png"),
        "png 10000x10000 RGB (at the limit)": (flat_png(10_000, 10_000), "image/png"),
        "jpeg 10000x10000 (at the limit)": (jpeg.getvalue(), "image/jpeg"),
        "png 4000x25000 grey (at the limit)": (flat_png(4_000, 25_000, colour=0), "image/png"),
        "png 1920x1080, height raised 2%": (raised_height(encode(draw(52, (1920, 1080)))), "image/png"),
        "jpeg 10000x10000 header over 64x64": (jpeg_claiming(10_000, 10_000), "image/jpeg"),
    }


def ordinary_files() -> list[bytes]:
    return [encode(draw(60 + i, (1920, 1080)), "JPEG", quality=85) for i in range(6)]


def _status_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith(field_name)))


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")


@dataclass(slots=True)
class Phase:
    latencies: list[float] = field(default_factory=list)
    ordinary_errors: Counter[str] = field(default_factory=Counter)
    hostile: dict[str, Counter[str]] = field(default_factory=dict)
    hostile_seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_mib: float = 0.0


async def _post(session: aiohttp.ClientSession, url: str, key: str, body: bytes, ctype: str, cid: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    async with session.post(
        url, params={"content_id": cid}, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": ctype}
    ) as response:
        payload = await response.json(content_type=None)
    code = "" if response.status == 200 else str(payload.get("error", {}).get("code", ""))
    return response.status, code, time.perf_counter() - started


async def _phase(
    base: str, key: str, duration: float, ordinary: list[bytes], hostile: dict[str, tuple[bytes, str]] | None
) -> Phase:
    phase = Phase()
    stop = time.monotonic() + duration
    url = f"{base}/v1/scan"

    async def ordinary_client(session: aiohttp.ClientSession) -> None:
        n = 0
        while time.monotonic() < stop:
            status, code, seconds = await _post(session, url, key, ordinary[n % len(ordinary)], "image/jpeg", f"ordinary-{n}")
            n += 1
            if status == 200:
                phase.latencies.append(seconds)
            else:
                phase.ordinary_errors[f"{status} {code}"] += 1

    async def hostile_client(session: aiohttp.ClientSession, offset: int) -> None:
        assert hostile is not None
        names = sorted(hostile)
        n = offset
        while time.monotonic() < stop:
            name = names[n % len(names)]
            body, ctype = hostile[name]
            n += 1
            try:
                status, code, seconds = await _post(session, url, key, body, ctype, f"hostile-{offset}-{n}")
            except aiohttp.ClientError as exc:
                status, code, seconds = 0, type(exc).__name__, 0.0
            phase.hostile.setdefault(name, Counter())[f"{status} {code}".strip()] += 1
            phase.hostile_seconds.setdefault(name, []).append(seconds)

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [ordinary_client(session)]
        if hostile is not None:
            clients += [hostile_client(session, i) for i in range(4)]
        await asyncio.gather(*clients)
    return phase


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.hostile " + " ".join(argv if argv is not None else sys.argv[1:])
    header = [
        "# Hostile uploads: peak server memory and ordinary scan latency",
        "",
        f"- command: `{command.strip()}`",
        "- seed: fixed (drawn pictures 51, 52, 60-65; numpy seed 5)",
        f"- commit: {commit()}",
        f"- machine: {describe()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]
    print("\n".join(header), flush=True)
    ordinary, hostile = ordinary_files(), hostile_files()
    with tempfile.TemporaryDirectory(prefix="hashguard-hostile-") as tmp:
        before_after = standalone(hostile, Path(tmp))
        rng = np.random.default_rng(1)
        hashes = Path(tmp) / "list.txt"
        hashes.write_text("".join(rng.bytes(32).hex() + "\n" for _ in range(1000)))  # synthetic, nothing real
        env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
        env.update(HASHGUARD_DATA_DIR=str(Path(tmp) / "data"), HASHGUARD_HASH_WORKERS="2", HASHGUARD_LOG_LEVEL="WARNING")
        key = hashguard_cli(env, "keys", "create", "--role", "platform", "--label", "hostile-benchmark").split()[0]
        hashguard_cli(env, "hashsets", "import", str(hashes), "--name", "synthetic", "--tool", "pdq", "--allow-unsigned")
        hashguard_cli(env, "tools", "allow-local", "pdq", "--reason", "benchmark on synthetic data")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "hashguard.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, server, 120)
            asyncio.run(_phase(base, key, 3, ordinary, None))  # warm-up: imports, caches, first connections
            idle_mib = _status_kib(server.pid, "VmRSS") / 1024
            _reset_peak(server.pid)
            baseline = asyncio.run(_phase(base, key, args.duration, ordinary, None))
            baseline.peak_mib = _status_kib(server.pid, "VmHWM") / 1024
            _reset_peak(server.pid)
            attacked = asyncio.run(_phase(base, key, args.duration, ordinary, hostile))
            attacked.peak_mib = _status_kib(server.pid, "VmHWM") / 1024
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=60)

    lines = [
        *header,
        "",
        "Service: `hashguard serve`, 2 hash workers (threads), fast hashing path, HASHGUARD_MAX_PIXELS 100,000,000,",
        "HASHGUARD_DECODE_MEMORY_MB 512 and HASHGUARD_DECODE_MEMORY_TOTAL_MB 1024 (the defaults), a 1,000-entry",
        "synthetic PDQ list. One client scans 1080p JPEGs back to back; in the hostile phase 4 more clients upload",
        "the hostile files back to back (each starting at a different file). Memory is the server process's peak",
        "resident set (VmHWM) during the phase; the embedded PostgreSQL runs in its own processes and is not counted.",
        "",
        f"Server resident memory after warm-up: {idle_mib:.0f} MiB; still running at the end: {'yes' if alive else 'NO'}.",
        "",
        "## Ordinary scans",
        "",
        "| phase | scans | median ms | p99 ms | max ms | errors | server peak MiB |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for label, phase in (("baseline (no hostile uploads)", baseline), ("with 4 hostile uploaders", attacked)):
        errors = ", ".join(f"{k}: {v}" for k, v in phase.ordinary_errors.items()) or "none"
        lines.append(
            f"| {label} | {len(phase.latencies)} | {_p(phase.latencies, 0.5):.1f} | {_p(phase.latencies, 0.99):.1f}"
            f" | {max(phase.latencies, default=0) * 1000:.1f} | {errors} | {phase.peak_mib:.0f} |"
        )
    lines += [
        "",
        "## Hostile uploads (hostile phase)",
        "",
        "| file | bytes | uploads | answers | median s | max s |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name in sorted(hostile):
        answers = attacked.hostile.get(name, Counter())
        seconds = attacked.hostile_seconds.get(name, [])
        lines.append(
            f"| {name} | {len(hostile[name][0]):,} | {sum(answers.values())} | {', '.join(f'{k} x{v}' for k, v in sorted(answers.items()))}"
            f" | {statistics.median(seconds) if seconds else float('nan'):.2f} | {max(seconds, default=0):.2f} |"
        )
    lines += [
        "",
        "## One file alone, before and after (decode and hash with every tool, in a fresh process)",
        "",
        "Peak is the process's resident-set high-water mark (VmHWM, including about 35 MiB of interpreter and imports).",
        "",
        *before_after,
    ]
    text = "\n".join(lines) + "\n"
    args.output.write_text(text)
    print(text)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
