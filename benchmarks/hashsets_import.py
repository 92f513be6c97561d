"""How long a signed 10M-entry list takes to import through ``hashguard hashsets import`` (COPY).

The list is synthetic: random 256-bit values from a seeded generator, formatted as a PDQ list
(CSV with id and category). They are hashes of nothing; no real list is involved. The run uses a
fresh embedded PostgreSQL in a temporary folder (or HASHGUARD_DATABASE_URL if set).

    python -m benchmarks.hashsets_import --entries 10000000 --seed 5

Prints the seed, the machine, the command to rerun, and the import time; appends a row (with the
git commit it ran at) to the table that ends benchmarks/results/hashsets_import.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.machine import commit
from hashsets import signing
from hashsets.manifest import Kind, build_manifest, sign_manifest
from hashsets.parse import ListFormat

RESULTS = Path(__file__).parent / "results" / "hashsets_import.md"
_BLOCK = 200_000


def write_list(path: Path, entries: int, seed: int) -> bytes:
    """Write the CSV in blocks (vectorised hex) and return its SHA-256."""
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    categories = np.array(["A1", "A2", "B1", "B2"])
    with path.open("wb") as handle:
        header = b"id,hash,category\n"
        handle.write(header)
        digest.update(header)
        for start in range(0, entries, _BLOCK):
            n = min(_BLOCK, entries - start)
            values = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
            hexes = values.tobytes().hex()
            cats = categories[rng.integers(0, 4, size=n)]
            lines = "".join(f"bench-{start + i},{hexes[i * 64 : (i + 1) * 64]},{cats[i]}\n" for i in range(n)).encode()
            handle.write(lines)
            digest.update(lines)
    return digest.digest()


TABLE_HEADER = "| date | entries | seconds | entries/s | machine | load avg | commit |\n|---|---|---|---|---|---|---|\n"


def append_row(results: Path, cells: list[str]) -> None:
    """Append one row to the results table, which is kept last in the file so rows stay inside it."""
    results.parent.mkdir(parents=True, exist_ok=True)
    text = results.read_text() if results.exists() else ""
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    if not last.startswith("|") or last.count("|") != TABLE_HEADER.split("\n")[0].count("|"):
        # Prose (or an older table layout) ends the file: start a table rather than append a stray row.
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + TABLE_HEADER
    results.write_text(text.rstrip("\n") + "\n" + "| " + " | ".join(cells) + " |\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hashguard-bench-import-"))
    folder.chmod(0o755)
    list_path = folder / "bench.csv"
    print(
        f"seed {args.seed}, {args.entries} entries; {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"rerun: python -m benchmarks.hashsets_import --entries {args.entries} --seed {args.seed}")
    started = time.perf_counter()
    sha = write_list(list_path, args.entries, args.seed)
    print(f"wrote {list_path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")

    pair = signing.generate()
    key_path = folder / "issuer.pem"
    key_path.write_bytes(pair.private_pem)
    manifest = sign_manifest(
        build_manifest(
            issuer="Benchmark Issuer (synthetic)",
            list_name="bench-synthetic",
            tool="pdq",
            version="1",
            kind=Kind.FULL,
            created=datetime.now(UTC),
            entries=args.entries,
            sha256=sha,
            format=ListFormat.CSV,
        ),
        pair.private_pem,
    )
    manifest_path = folder / "bench.manifest.json"
    manifest_path.write_text(json.dumps(manifest))

    env = {k: v for k, v in os.environ.items() if k != "HASHGUARD_DATA_DIR"}
    env["HASHGUARD_DATA_DIR"] = str(folder / "data")
    env.setdefault("HASHGUARD_LOG_LEVEL", "WARNING")

    def hashguard(*cli: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hashguard.cli", *cli], env=env, text=True, check=True, stdout=subprocess.PIPE
        )

    hashguard("migrate")
    hashguard("hashsets", "trust", "Benchmark Issuer (synthetic)", pair.public_text)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    # stderr is inherited: on a terminal the progress bar shows.
    out = hashguard("hashsets", "import", str(list_path), "--manifest", str(manifest_path))
    seconds = time.perf_counter() - started
    print(out.stdout.strip())
    load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    print(f"import: {args.entries} entries in {seconds:.1f} s ({args.entries / seconds:,.0f} entries/s), command start to exit")
    print(f"1-minute load average before -> after: {load} (the machine's other work competes for its CPUs)")

    append_row(
        RESULTS,
        [
            f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
            str(args.entries),
            f"{seconds:.1f}",
            f"{args.entries / seconds:,.0f}",
            f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
            load,
            commit(),
        ],
    )
    if not args.keep:
        with contextlib.suppress(Exception):
            hashguard_stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")
    return 0


def hashguard_stop(folder: Path) -> None:
    """Stop the embedded server started in ``folder`` (it would otherwise outlive the benchmark)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    pgserver.get_server(folder / "data" / "postgres", cleanup_mode="stop").cleanup()


if __name__ == "__main__":
    sys.exit(main())
