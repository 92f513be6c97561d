"""Time of a 1,000-item lookup batch with 500 matches, over HTTP, against ``hashguard serve`` as a process.

    python -m benchmarks.batch_lookup [--batches 7] [--seed 3]

Lists 500 random balanced PDQ hashes (one list), then sends ``--batches`` batches of 1,000 items,
each matching all 500 entries exactly (distinct content ids, so each match opens its own ticket)
and 500 hashes that match nothing. Prints each batch's wall time, the median and the maximum.
Runs against whatever ``hashguard`` is importable (PYTHONPATH), so the same script times two commits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.serving import free_port, wait_ready


def balanced(rng: random.Random) -> str:
    ones = rng.sample(range(256), 128)
    return sum(1 << i for i in ones).to_bytes(32, "big").hex()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="hashguard-batch-") as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")},
            "HASHGUARD_DATA_DIR": tmp,
            "HASHGUARD_TOOLS": "pdq",
            "HASHGUARD_LOG_LEVEL": "WARNING",
            "HASHGUARD_RATE_PER_S": "0",  # the limit is not what is timed here
        }

        def cli(*a: str) -> str:
            return subprocess.run(
                [sys.executable, "-m", "hashguard.cli", *a], env=env, capture_output=True, text=True, check=True
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
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, 180, poll_s=0.2)
            times = []
            for b in range(args.batches):
                items = [{"content_id": f"b{b}-m{i}", "hashes": {"pdq": h}} for i, h in enumerate(listed)]
                items += [{"content_id": f"b{b}-n{i}", "hashes": {"pdq": balanced(rng)}} for i in range(500)]
                rng.shuffle(items)
                body = json.dumps({"items": items}).encode()
                req = urllib.request.Request(
                    url + "/v1/lookup",
                    data=body,
                    method="POST",
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                started = time.perf_counter()
                with urllib.request.urlopen(req, timeout=300) as r:
                    answer = json.loads(r.read())
                times.append(time.perf_counter() - started)
                matched = sum(v["verdict"] == "match" for v in answer["items"])
                print(f"batch {b}: {times[-1]:.3f} s, {matched} matches", flush=True)
            print(
                json.dumps(
                    {
                        "median_s": round(statistics.median(times), 3),
                        "max_s": round(max(times), 3),
                        "batches": len(times),
                        "load": os.getloadavg(),
                    }
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
