"""Images per second per core of ``hashguard backfill``, against ``hashguard serve`` as a process.

    python -m benchmarks.backfill [--images 240] [--seed 5] [--workers 1,2] [--out benchmarks/results/backfill.md]

The catalogue: ``--images`` 1080p JPEGs (quality 90) of the scikit-image photos (benchmarks.corpus,
centre-cropped and resized, with sensor-like grain after the first round so no two files are alike);
the service's PDQ list holds two of the photos, so every image made from them matches. Each run is the command a platform would type: a fresh
checkpoint, every installed tool, 1,000-item lookups, wall time from start to exit (process and
worker start-up included). Beside it, the peer: the same files hashed by ``detector.hashjob.hash_upload``
in one plain loop in one process, no lookups, which is what a single-threaded script achieves.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import PHOTOS, fit, grain, photo
from benchmarks.machine import commit, describe
from benchmarks.serving import free_port, wait_ready
from detector.decode import HashingPath
from detector.hashjob import HashJob, hash_upload
from detector.tools.registry import ToolRegistry

SIZE = (1920, 1080)


def make_catalogue(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = [fit(photo(name), SIZE).convert("RGB") for name in PHOTOS]
    paths = []
    for i in range(count):
        image = sources[i % len(sources)]
        if (i // len(sources)) % 2 or i >= len(sources):
            image = grain(image, seed * 1_000_003 + i)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        path = folder / f"{i // 100:03d}" / f"img-{i:05d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def hash_loop(paths: list[Path]) -> float:
    """Seconds to hash every file with every tool in one process (the peer)."""
    tools = tuple(ToolRegistry.load())
    started = time.perf_counter()
    for path in paths:
        hash_upload(HashJob(data=path.read_bytes(), max_pixels=50_000_000, hashing=HashingPath.FAST, tools=tools))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.backfill " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = describe()
    worker_counts = [int(w) for w in args.workers.split(",")]
    started_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hashguard-backfill-bench-") as tmp_name:
        tmp = Path(tmp_name)
        paths = make_catalogue(tmp / "catalogue", args.images, args.seed)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")},
            "HASHGUARD_DATA_DIR": str(tmp / "data"),
            "HASHGUARD_LOG_LEVEL": "WARNING",
            "HASHGUARD_RATE_PER_S": "0",
        }

        def cli(*a: str) -> str:
            return subprocess.run(
                [sys.executable, "-m", "hashguard.cli", *a], env=env, capture_output=True, text=True, check=True
            ).stdout

        cli("migrate")
        for tool in ToolRegistry.load().names():
            cli("tools", "allow-local", tool, "--reason", "benchmark", "--actor", "benchmark")
        # The list holds the first two photos: every image made from them (grain or not) is a match.
        listed = paths[:2]
        expected = sum(1 for i in range(len(paths)) if i % len(PHOTOS) < 2)
        hashes = [
            line.split('"hash": "')[1].split('"')[0] for line in cli("hash", "--tool", "pdq", *map(str, listed)).splitlines()
        ]
        (tmp / "list.csv").write_text("id,hash\n" + "".join(f"e{i},{h}\n" for i, h in enumerate(hashes)))
        cli("hashsets", "import", str(tmp / "list.csv"), "--name", "bench", "--tool", "pdq", "--allow-unsigned")
        (tmp / "key").write_text(cli("keys", "create", "--role", "platform").strip())
        port = free_port()
        with (tmp / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "hashguard.cli", "serve", "--port", str(port), "--quiet"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        results: list[tuple[str, int, float, int]] = []
        try:
            wait_ready(f"http://127.0.0.1:{port}", server, 300, poll_s=0.2)
            loop_s = hash_loop(paths)
            results.append(("one process, a plain loop (peer; no lookups)", 1, loop_s, 0))
            print(f"plain loop: {loop_s:.1f} s", flush=True)
            for workers in worker_counts:
                out = tmp / f"matches-{workers}.csv"
                began = time.perf_counter()
                cli(
                    "backfill",
                    str(tmp / "catalogue"),
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--key-file",
                    str(tmp / "key"),
                    "--out",
                    str(out),
                    "--workers",
                    str(workers),
                    "--quiet",
                )
                took = time.perf_counter() - began
                with out.open(newline="") as f:
                    matched = len({r["content_id"] for r in csv.DictReader(f)})
                if matched != expected:
                    raise RuntimeError(f"{workers} workers: {matched} images matched, expected {expected}")
                results.append((f"hashguard backfill --workers {workers}", workers, took, matched))
                print(f"backfill, {workers} workers: {took:.1f} s, {matched} matched", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    tools = ", ".join(ToolRegistry.load().names())
    lines = [
        "# hashguard backfill: images per second per core",
        "",
        f"Command: `{command.strip()}`. Seed {args.seed}; commit {commit()}.",
        f"Machine: {machine}.",
        f"Catalogue: {args.images} JPEGs of 1920x1080 (quality 90) made from the scikit-image photos; a PDQ list holds two"
        f" of the photos, so {expected} images match. Every installed tool hashes every image ({tools}). Service: `hashguard serve` as its own process"
        f" on loopback, embedded PostgreSQL. Run took {time.monotonic() - started_all:.0f} s; load average at the end"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "Wall time includes starting the command and its hashing processes, and every lookup; the peer hashes only.",
        "",
        "| run | processes | wall time (s) | images/s | images/s per process | matched |",
        "|---|---|---|---|---|---|",
    ]
    for label, workers, took, matched in results:
        rate = args.images / took
        lines.append(
            f"| {label} | {workers} | {took:.1f} | {rate:.1f} | {rate / workers:.1f} | {matched if workers and matched else '-'} |"
        )
    rates = {w: args.images / t for label, w, t, _ in results if label.startswith("hashguard")}
    if 1 in rates and len(rates) > 1:
        best = max(rates)
        lines += [
            "",
            f"- {best} processes: {rates[best] / rates[1]:.2f}× the images/s of one ({statistics.mean(rates.values()):.1f} mean).",
        ]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
