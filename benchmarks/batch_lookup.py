"""Time of a 1,000-item /v1/lookup batch over HTTP, with no matches and with 500, against ``hashguard serve`` as a process.

    python -m benchmarks.batch_lookup [--batches 7] [--seed 3] [--baseline main] [--out benchmarks/results/batch_lookup.md]

Lists 500 random balanced PDQ hashes (one list). Each "500 matches" batch holds the 500 listed
hashes (distinct content ids, so each match opens its own ticket) and 500 hashes that match
nothing; each "no matches" batch holds 1,000 hashes that match nothing. The two kinds alternate,
after one warm-up batch of each. With ``--baseline REF`` a second service runs that commit's code
(``git archive`` into a temporary folder, put first on ``PYTHONPATH``) beside this one, and the
batches alternate between the two, so both sides share the run, the machine and its load.
The table in ``--out`` is written by this script.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import commit, describe
from benchmarks.serving import free_port, wait_ready

_REPO = Path(__file__).parents[1]


def balanced(rng: random.Random) -> str:
    ones = rng.sample(range(256), 128)
    return sum(1 << i for i in ones).to_bytes(32, "big").hex()


@dataclass
class Side:
    label: str
    source: Path  # the folder whose hashguard runs (first on PYTHONPATH, and the working directory)
    times: dict[str, list[float]] = field(default_factory=lambda: {"none": [], "half": []})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def baseline_tree(ref: str) -> Iterator[tuple[str, Path]]:
    """The code of ``ref`` in a temporary folder (no git state is changed); yields (commit, folder)."""
    full = subprocess.run(["git", "rev-parse", ref], cwd=_REPO, capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", full], cwd=_REPO, capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="hashguard-baseline-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield full, Path(tmp)


@contextmanager
def service(side: Side, seed: int) -> Iterator[tuple[str, str, list[str]]]:
    """``hashguard serve`` of ``side`` with its own data folder and embedded PostgreSQL; yields (url, key, listed hashes)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="hashguard-batch-") as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_") and k != "PYTHONPATH"},
            "PYTHONPATH": str(side.source),
            "HASHGUARD_DATA_DIR": tmp,
            "HASHGUARD_TOOLS": "pdq",
            "HASHGUARD_LOG_LEVEL": "WARNING",
            "HASHGUARD_RATE_PER_S": "0",  # the limit is not what is timed here
        }

        def cli(*a: str) -> str:
            return subprocess.run(
                [sys.executable, "-m", "hashguard.cli", *a], env=env, cwd=side.source, capture_output=True, text=True, check=True
            ).stdout

        listed = [balanced(rng) for _ in range(500)]
        (Path(tmp) / "l.csv").write_text("id,hash\n" + "".join(f"e{i},{h}\n" for i, h in enumerate(listed)))
        cli("migrate")
        cli("tools", "allow-local", "pdq", "--reason", "benchmark", "--actor", "benchmark")
        cli("hashsets", "import", str(Path(tmp) / "l.csv"), "--name", "l", "--tool", "pdq", "--allow-unsigned")
        key = cli("keys", "create", "--role", "platform").strip()
        port = free_port()
        with (Path(tmp) / "serve.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hashguard.cli", "serve", "--port", str(port), "--quiet"],
                env=env,
                cwd=side.source,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, 300, poll_s=0.2)
            yield url, key, listed
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def one_batch(side: Side, url: str, key: str, listed: list[str], rng: random.Random, b: int, kind: str) -> None:
    items = [{"content_id": f"b{b}-n{i}", "hashes": {"pdq": balanced(rng)}} for i in range(1000 if kind == "none" else 500)]
    if kind == "half":
        items += [{"content_id": f"b{b}-m{i}", "hashes": {"pdq": h}} for i, h in enumerate(listed)]
    rng.shuffle(items)
    request = urllib.request.Request(
        url + "/v1/lookup",
        data=json.dumps({"items": items}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as r:
        answer = json.loads(r.read())
    took = time.perf_counter() - started
    matched = sum(v["verdict"] == "match" for v in answer["items"])
    expected = 0 if kind == "none" else 500
    if matched != expected:
        raise RuntimeError(f"{side.label}: a batch answered {matched} matches, expected {expected}")
    if b >= 0:
        side.times[kind].append(took)
    print(f"{side.label} batch {b} ({kind}): {took:.3f} s, {matched} matches", flush=True)


def measure(sides: list[Side], batches: int, seed: int) -> None:
    """Every side's service runs at once; batches alternate between them, so they share the machine's load."""
    with ExitStack() as stack:
        running = [stack.enter_context(service(side, seed)) for side in sides]
        rngs = [random.Random(seed + 1) for _ in sides]
        for b in range(-1, batches):  # batch -1 warms each kind up and is not counted
            for kind in ("none", "half"):
                for side, (url, key, listed), rng in zip(sides, running, rngs, strict=True):
                    one_batch(side, url, key, listed, rng, b, kind)


def report(sides: list[Side], *, command: str, seed: int, machine: str, run_s: float) -> str:
    kinds = {"none": "1,000 items, no matches", "half": "1,000 items, 500 matches (500 tickets opened)"}
    lines = [
        "# A 1,000-item lookup batch over HTTP: no matches, and 500 matches",
        "",
        f"Command: `{command}`. Seed {seed}; commit {commit()}.",
        f"Machine: {machine}.",
        "Service: `hashguard serve` as its own process on loopback, embedded PostgreSQL, PDQ only, a list of 500 random"
        " balanced hashes; each side's service ran in its own data folder with its own embedded PostgreSQL, all at once,"
        " their batches alternating"
        f" (took {run_s:.0f} s; load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}).",
        "The machine is shared with other work: read the ratio between the sides, measured in the same run, before the absolute times.",
        "",
        "| code | batch | batches | median (s) | p90 (s) | max (s) | all (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in sides:
        for kind, what in kinds.items():
            t = side.times[kind]
            lines.append(
                f"| {side.label} | {what} | {len(t)} | {statistics.median(t):.3f} | {percentile(t, 0.9):.3f} | {max(t):.3f}"
                f" | {', '.join(f'{x:.3f}' for x in t)} |"
            )
    if len(sides) == 2:
        before, after = sides
        lines.append("")
        for kind, what in kinds.items():
            ratio = statistics.median(before.times[kind]) / statistics.median(after.times[kind])
            lines.append(f"- {what}: median {ratio:.1f}× faster than {before.label}.")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--baseline", help="a git ref to measure first, in the same run (e.g. main)")
    parser.add_argument("--out", type=Path, help="write the results table here (markdown)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.batch_lookup " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = describe()
    started = time.monotonic()
    with ExitStack() as stack:
        sides: list[Side] = []
        if args.baseline:
            full, folder = stack.enter_context(baseline_tree(args.baseline))
            sides.append(Side(label=f"{full[:7]} (before)", source=folder))
        sides.append(Side(label="this commit (after)" if args.baseline else "this commit", source=_REPO))
        measure(sides, args.batches, args.seed)
    text = report(sides, command=command.strip(), seed=args.seed, machine=machine, run_s=time.monotonic() - started)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
