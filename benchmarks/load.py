"""Load figures: a real ``hashguard serve`` holding a 10,000,000-entry PDQ list, driven at fixed rates by
``benchmarks.loadgen`` in a separate process on loopback.

    python -m benchmarks.load [--entries 10000000] [--seed 7] [--data-dir /tmp/hashguard-load-10m]
                              [--duration 20] [--scan-rate 20] [--lookup-rate 100] [--batch-rate 0.5]

The list is synthetic (random 256-bit values from the seed, a signed CSV, imported with
``hashguard hashsets import``): hashes of nothing. The data dir (its embedded PostgreSQL, the key,
what was prepared) is kept and reused by the next run with the same entries and seed, since a 10M
import takes minutes on a shared machine; its import time is recorded when it is made.

Three phases, one after the other, each ``duration`` seconds at a fixed rate (open loop) after 2 s of
warm-up: ``POST /v1/scan`` with 1920x1080 JPEGs drawn here (``detector.synthetic``), ``POST
/v1/lookup`` with one PDQ hash (1% of them exact copies of list entries, the rest random, i.e. no
match), and ``POST /v1/lookup`` with batches of 1,000 random hashes. Requests per second, p50/p99
latency and errors per phase go to benchmarks/results/load.md with the seed, the machine, the load
average before and after each phase, the commit and the command. Loopback only.

Why our own client and not locust: it is not installed here, and a fixed-rate open loop on asyncio is
about 100 lines (benchmarks/loadgen.py), costs little CPU on a machine where the server needs both
cores, and keeps a slow server visible as latency instead of as a lower request rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.hashsets_import import _BLOCK, write_list
from benchmarks.machine import commit, describe
from benchmarks.serving import free_port, wait_ready
from detector.synthetic import draw, encode
from hashsets import signing
from hashsets.manifest import Kind, build_manifest, sign_manifest
from hashsets.parse import ListFormat
from kernel.keys import PREFIX_LENGTH

RESULTS = Path(__file__).parent / "results" / "load.md"
ISSUER = "Load Benchmark Issuer (synthetic)"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(HASHGUARD_DATA_DIR=str(data_dir / "data"), HASHGUARD_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    return env


def _hashguard(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hashguard.cli", *args], env=env, text=True, check=True, stdout=subprocess.PIPE)
    return done.stdout


def prepare(data_dir: Path, entries: int, seed: int) -> dict[str, object]:
    """The data dir with the list imported and a platform key, made once and reused."""
    marker = data_dir / "prepared.json"
    if marker.exists():
        info: dict[str, object] = json.loads(marker.read_text())
        if info["entries"] == entries and info["seed"] == seed:
            print(f"reusing {data_dir}: {entries} entries imported in {info['import_s']} s on {info['prepared_at']}")
            return info
        raise SystemExit(
            f"{data_dir} holds another list ({info['entries']} entries, seed {info['seed']}): pick another --data-dir"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # the embedded server may run as its own user
    env = _env(data_dir)
    list_path = data_dir / "bench.csv"
    started = time.perf_counter()
    sha = write_list(list_path, entries, seed)
    print(f"wrote {list_path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")
    pair = signing.generate()
    manifest = sign_manifest(
        build_manifest(
            issuer=ISSUER,
            list_name="load-synthetic",
            tool="pdq",
            version="1",
            kind=Kind.FULL,
            created=datetime.now(UTC),
            entries=entries,
            sha256=sha,
            format=ListFormat.CSV,
        ),
        pair.private_pem,
    )
    manifest_path = data_dir / "bench.manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    _hashguard(env, "migrate")
    _hashguard(env, "hashsets", "trust", ISSUER, pair.public_text)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    print(_hashguard(env, "hashsets", "import", str(list_path), "--manifest", str(manifest_path)).strip())
    import_s = round(time.perf_counter() - started, 1)
    _hashguard(env, "tools", "allow-local", "pdq", "--reason", "load benchmark (synthetic list)")
    key = _hashguard(env, "keys", "create", "--role", "platform", "--label", "load benchmark").strip()
    list_path.unlink()
    info = {
        "entries": entries,
        "seed": seed,
        "import_s": import_s,
        "import_load": f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        "prepared_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "commit": commit(),
        "key": key,
    }
    marker.write_text(json.dumps(info))
    marker.chmod(0o600)
    print(f"imported {entries} entries in {import_s} s (load {info['import_load']})")
    return info


def listed_hashes(entries: int, seed: int, count: int) -> list[str]:
    """The first ``count`` entries' values, drawn again from the seed the way ``write_list`` drew them."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, size=(min(_BLOCK, entries), 32), dtype=np.uint8)
    return [bytes(v).hex() for v in values[:count]]


def write_payloads(folder: Path, entries: int, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed + 1)
    scans, single, batch = folder / "scan", folder / "lookup", folder / "batch"
    for f in (scans, single, batch):
        f.mkdir(parents=True, exist_ok=True)
        for old in f.iterdir():
            old.unlink()
    for i in range(16):  # 1080p pictures, drawn, not photographs
        (scans / f"{i:02d}.jpg").write_bytes(encode(draw(1000 + i, size=(1920, 1080)), "JPEG", quality=85))
    listed = listed_hashes(entries, seed, 20)
    for i in range(2000):
        value = listed[i // 100] if i % 100 == 0 else rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()
        (single / f"{i:04d}.json").write_text(json.dumps({"content_id": f"load-l{i}", "hashes": {"pdq": value}}))
    for i in range(8):
        values = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
        items = [{"content_id": f"load-b{i}-{j}", "hashes": {"pdq": bytes(v).hex()}} for j, v in enumerate(values)]
        (batch / f"{i}.json").write_text(json.dumps({"items": items}))
    return {"scan": scans, "lookup": single, "batch": batch}


def _rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hashguard-load-10m"))
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--scan-rate", type=float, default=20.0)
    parser.add_argument("--lookup-rate", type=float, default=100.0)
    parser.add_argument("--batch-rate", type=float, default=0.5)
    parser.add_argument("--prepare-only", action="store_true", help="import the list into the data dir and stop")
    parser.add_argument("--no-record", action="store_true", help="print the figures without writing load.md")
    args = parser.parse_args()
    command = "python -m benchmarks.load " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    machine = describe()
    print(f"seed {args.seed}, {args.entries} entries; {machine}")
    info = prepare(args.data_dir, args.entries, args.seed)
    if args.prepare_only:
        return 0
    # The benchmark measures the service, not the key's rate limit (HASHGUARD_RATE_PER_S would turn the
    # batch phase into 429s): the benchmark's key is unlimited, which an operator can grant any key.
    _hashguard(
        _env(args.data_dir), "keys", "limit", str(info["key"])[:PREFIX_LENGTH], "--rate", "0", "--reason", "load benchmark"
    )
    payloads = write_payloads(args.data_dir / "payloads", args.entries, args.seed)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(args.data_dir)
    log_path = args.data_dir / "serve.log"
    started = time.perf_counter()
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "hashguard.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    phases: list[tuple[str, dict[str, object], str]] = []
    try:
        try:
            wait_ready(url, server, 900, poll_s=1)
        except RuntimeError as exc:
            raise SystemExit(f"{exc}; see {log_path}") from None
        ready_s = round(time.perf_counter() - started, 1)
        rss_ready = _rss_mb(server.pid)
        print(f"ready in {ready_s} s holding {args.entries} entries; server RSS {rss_ready} MB")
        # One request of each kind first, untimed: the first search compiles the index's kernels.
        for name, path, ctype in (
            ("scan", "/v1/scan?content_id=warm", "image/jpeg"),
            ("batch", "/v1/lookup", "application/json"),
        ):
            body = sorted(payloads[name].iterdir())[0].read_bytes()
            warm = urllib.request.Request(
                url + path, data=body, headers={"Authorization": f"Bearer {info['key']}", "Content-Type": ctype}
            )
            with urllib.request.urlopen(warm, timeout=300) as answer:
                answer.read()
        plan = [
            ("POST /v1/scan, 1920x1080 JPEG", "scan", "/v1/scan", args.scan_rate, "image/jpeg"),
            ("POST /v1/lookup, 1 hash (1% listed)", "lookup", "/v1/lookup", args.lookup_rate, "application/json"),
            ("POST /v1/lookup, batch of 1,000 hashes", "batch", "/v1/lookup", args.batch_rate, "application/json"),
        ]
        for title, name, path, rate, ctype in plan:
            before = os.getloadavg()[0]
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.loadgen",
                    url + path,
                    str(info["key"]),
                    str(payloads[name]),
                    "--rate",
                    str(rate),
                    "--duration",
                    str(args.duration),
                    "--warmup",
                    "2",
                    "--content-type",
                    ctype,
                ],
                text=True,
                check=True,
                stdout=subprocess.PIPE,
            ).stdout
            result = json.loads(out)
            load = f"{before:.1f} -> {os.getloadavg()[0]:.1f}"
            print(title, result, "load", load)
            phases.append((title, result, load))
        rss_after = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    if not args.no_record:
        record(args, info, machine, command, ready_s, rss_ready, rss_after, phases)
    return 0


def record(
    args: argparse.Namespace,
    info: dict[str, object],
    machine: str,
    command: str,
    ready_s: float,
    rss_ready: float,
    rss_after: float,
    phases: list[tuple[str, dict[str, object], str]],
) -> None:
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.entries:,} PDQ entries, seed {args.seed}",
        "",
        f"- command: `{command}`",
        f"- commit: {commit()}",
        f"- machine: {machine}; {platform.machine()}",
        f"- list: {args.entries:,} synthetic entries, imported in {info['import_s']} s (load {info['import_load']}) on"
        f" {info['prepared_at']}; the service was ready {ready_s} s after start, server RSS {rss_ready:.0f} MB then,"
        f" {rss_after:.0f} MB after the run",
        f"- each phase: open loop at a fixed rate for {args.duration:g} s after 2 s of warm-up (not counted);"
        " latency from the moment a request was due to the last byte of its answer",
        "",
        "| phase | rate/s | requests | 2xx/s | p50 ms | p99 ms | max ms | errors | load avg before -> after |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for title, r, load in phases:
        errors = ", ".join(f"{k}: {v}" for k, v in dict(r["errors"]).items()) or "none"  # type: ignore[call-overload]
        lines.append(
            f"| {title} | {r['rate']} | {r['requests']} | {r['answers_per_s']} | {r['p50_ms']} | {r['p99_ms']} |"
            f" {r['max_ms']} | {errors} | {load} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    header = "# Load: a real `hashguard serve` holding a large PDQ list, fixed-rate load from another process\n\n"
    text = RESULTS.read_text() if RESULTS.exists() else header
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
