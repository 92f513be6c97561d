"""Side-by-side benchmark of hashguard's index against its peers, in one process and run.

    python -m benchmarks.index --sizes 1000000,10000000 --queries 1000 --seed 1

Synthetic, uniformly random codes (never real hashes). Queries: half near-duplicates of
stored entries (0-16 flipped bits), half random codes. Everything single-threaded
(``faiss.omp_set_num_threads(1)``; hashguard's kernels are serial). For every contender:
build time, resident memory (RSS delta around the build; for hashguard also the arrays'
nbytes), single-query latency median and p99, batch throughput, and whether its results
equal brute force on the same queries. Ground truth is hashguard's vectorised scan kernel;
the plain-numpy brute-force index is checked against it too.

Contenders for PDQ (256 bits, threshold 31): hashguard HammingIndex; faiss
IndexBinaryFlat; faiss IndexBinaryMultiHash (16 tables x 16 bits, nflip=1) and
(8 x 24, nflip=3); python-threatexchange PDQIndex2 (the index Meta's
Hasher-Matcher-Actioner uses; 1M only, it stores float32 vectors, ~1 GB per million);
numpy brute force (fewer queries: it is slow). For 64-bit codes (threshold 10): hashguard,
faiss flat, faiss MultiHash (4 x 16, nflip=2), numpy. For MD5: ExactHashSet vs a Python set.

faiss ``range_search`` returns distances strictly below the radius, so threshold t is
asked as radius t + 1 (as PDQIndex2 itself does); the equality column confirms it.

faiss and threatexchange come from the ``bench`` extra; the service never imports them.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.machine import commit
from detector.exactset import ExactHashSet
from detector.hamming_kernels import scan_search
from detector.index import BruteForceIndex, HammingIndex

U8 = npt.NDArray[np.uint8]
Truth = list[set[tuple[int, int]]]


@dataclass(kw_only=True, slots=True)
class Row:
    """One contender's figures at one size."""

    name: str
    build_s: float | None = None
    rss_mb: float | None = None
    nbytes_mb: float | None = None
    median_ms: float | None = None
    p99_ms: float | None = None
    batch_qps: float | None = None
    queries: int = 0
    max_ms: float | None = None
    exact: str = "-"
    note: str = ""


@dataclass(kw_only=True, slots=True)
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except OSError:
        mem_kb = 0
    import numba

    versions = f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
    try:
        import faiss

        versions += f", faiss {faiss.__version__}"
    except ImportError:
        pass
    return f"{model}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB RAM, {platform.system()} {platform.release()}; {versions}"


def make_queries(rng: np.random.Generator, codes: U8, count: int, max_flips: int) -> U8:
    """Half near-duplicates of stored codes (0..max_flips flipped bits), half random codes."""
    n, nbytes = codes.shape
    queries = rng.integers(0, 256, size=(count, nbytes), dtype=np.uint8)
    near = count // 2
    queries[:near] = codes[rng.integers(0, n, size=near)]
    for i in range(near):
        for bit in rng.choice(nbytes * 8, size=int(rng.integers(0, max_flips + 1)), replace=False):
            queries[i, bit // 8] ^= np.uint8(1 << (bit % 8))
    return queries


def ground_truth(codes: U8, queries: U8, t: int) -> Truth:
    """Brute force with the vectorised scan kernel (ids are row numbers here)."""
    words = np.ascontiguousarray(codes).view(np.uint64)
    qwords = np.ascontiguousarray(queries).view(np.uint64)
    cap = 1 << 16
    rows, dists = np.empty(cap, np.int64), np.empty(cap, np.int64)
    starts = np.empty(2, np.int64)
    out: Truth = []
    for q in range(qwords.shape[0]):
        count = scan_search(words, qwords[q : q + 1], t, rows, dists, starts)
        assert count <= cap
        out.append(set(zip(rows[:count].tolist(), dists[:count].tolist(), strict=True)))
    return out


def measure(
    name: str,
    build: Callable[[], Any],
    search: Callable[[Any, U8], set[tuple[int, int]]],
    queries: U8,
    truth: Truth,
    *,
    batch: Callable[[Any, U8], list[set[tuple[int, int]]]] | None = None,
    nbytes: Callable[[Any], int] | None = None,
    max_queries: int | None = None,
    note: str = "",
) -> Row:
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - start
    gc.collect()
    row = Row(name=name, build_s=build_s, rss_mb=rss_mb() - before, note=note)
    if nbytes is not None:
        row.nbytes_mb = nbytes(index) / 1e6
    used_idx = (
        list(range(len(queries)))
        if max_queries is None
        else (list(range(max_queries // 2)) + list(range(len(queries) // 2, len(queries) // 2 + max_queries // 2)))
    )
    used = queries[used_idx]
    latencies = np.empty(len(used_idx))
    equal = True
    for j, qi in enumerate(used_idx):
        q = used[j]
        start = time.perf_counter()
        got = search(index, q)
        latencies[j] = time.perf_counter() - start
        equal &= got == truth[qi]
    row.queries = len(used_idx)
    row.median_ms = float(np.median(latencies) * 1e3)
    row.p99_ms = float(np.percentile(latencies, 99) * 1e3)
    row.max_ms = float(latencies.max() * 1e3)
    if batch is not None:
        start = time.perf_counter()
        got_all = batch(index, used)
        row.batch_qps = len(used_idx) / (time.perf_counter() - start)
        equal &= got_all == [truth[qi] for qi in used_idx]
    row.exact = "yes" if equal else "NO"
    del index
    gc.collect()
    print(f"    {format_row(row)}", flush=True)
    return row


# -- skewed and clustered data (issue 16) -------------------------------------------------
#
# Two data sets a real or crafted list can hold, 10 entries per million the same way:
# "families": base codes each with 10 variants 1-12 bits away (near-duplicate families, as
# a list of re-encoded copies has); "skewed": a share of the codes agree on their first 64
# bits (a degenerate hasher output or a list crafted to crowd the index's first tables).
# Only hashguard and faiss IndexBinaryFlat (whose cost does not depend on the data) run.


def families_data(rng: np.random.Generator, n: int, per_family: int = 10) -> U8:
    bases = rng.integers(0, 256, size=(n // (per_family + 1), 32), dtype=np.uint8)
    out = np.repeat(bases, per_family + 1, axis=0)
    variants = np.flatnonzero(np.arange(out.shape[0]) % (per_family + 1))
    bits = np.unpackbits(out[variants], axis=1)
    nflips = rng.integers(1, 13, size=variants.shape[0])
    for j in range(12):
        rows = np.flatnonzero(nflips > j)
        cols = rng.integers(0, 256, size=rows.shape[0])
        bits[rows, cols] ^= 1  # a repeated column flips back: 1-12 bits away, rarely fewer
    out[variants] = np.packbits(bits, axis=1)
    return out


def skewed_data(rng: np.random.Generator, n: int, share: float) -> tuple[U8, npt.NDArray[np.int64]]:
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    group = rng.choice(n, size=int(n * share), replace=False)
    codes[group, :8] = rng.integers(0, 256, size=8, dtype=np.uint8)
    return codes, group


def flipped(rng: np.random.Generator, rows: U8, max_flips: int) -> U8:
    bits = np.unpackbits(rows, axis=1)
    for i in range(rows.shape[0]):
        cols = rng.choice(bits.shape[1], size=int(rng.integers(0, max_flips + 1)), replace=False)
        bits[i, cols] ^= 1
    return np.packbits(bits, axis=1)


def skew_queries(rng: np.random.Generator, codes: U8, group: npt.NDArray[np.int64] | None, count: int) -> U8:
    """A third inside the group (members, 0-16 bits flipped), a third at its edge (the shared
    64 bits with 0-3 flipped, the rest random: crowded buckets, no match), a sixth
    near-duplicates of any entry, a sixth random. Without a group: half near, half random."""
    n = codes.shape[0]
    parts: list[U8] = []
    if group is not None:
        inside = count // 3
        parts.append(flipped(rng, codes[rng.choice(group, size=inside)], 16))
        edge = rng.integers(0, 256, size=(inside, 32), dtype=np.uint8)
        edge[:, :8] = codes[group[0], :8]
        parts.append(flipped(rng, edge, 3))
        count -= 2 * inside
    parts.append(flipped(rng, codes[rng.integers(0, n, size=count // 2)], 16))
    parts.append(rng.integers(0, 256, size=(count - count // 2, 32), dtype=np.uint8))
    return np.concatenate(parts)


def skew_sections(rng: np.random.Generator, n: int, queries: int, cases: Sequence[str]) -> list[Section]:
    t = 31
    sections = []
    for case in cases:
        if case == "families":
            codes, group = families_data(rng, n), None
            title = f"256-bit near-duplicate families, {n:,} entries ({n // 11:,} bases x 11: 10 variants 1-12 bits away), threshold {t}"
        elif case == "skewed":
            codes, group = skewed_data(rng, n, 0.3)
            title = f"256-bit skewed, {n:,} entries, 30% sharing their first 64 bits, threshold {t}"
        else:
            codes, group = rng.integers(0, 256, size=(n, 32), dtype=np.uint8), None
            title = f"256-bit uniform, {n:,} entries, threshold {t} (same queries mix as the two above)"
        qs = skew_queries(rng, codes, group, queries)
        print(f"## {title}\n{SKEW_HEADER}", flush=True)
        truth = ground_truth(codes, qs, t)
        matches = sum(len(x) for x in truth)
        section = Section(title=f"{title} ({len(qs)} queries, {matches:,} matches in all)")
        section.rows.append(hashguard_rows(codes, qs, truth, t))
        section.rows.extend(faiss_rows(codes, qs, truth, t, [], None))
        sections.append(section)
        del codes, qs, truth
        gc.collect()
    return sections


def format_skew_row(row: Row) -> str:
    return (
        f"| {row.name} | {fmt(row.build_s, '.2f')} | {fmt(row.nbytes_mb, '.0f')} | {fmt(row.median_ms, '.3g')} | "
        f"{fmt(row.p99_ms, '.3g')} | {fmt(row.max_ms, '.3g')} | {fmt(row.batch_qps, ',.0f')} | {row.queries} | {row.exact} |"
    )


SKEW_HEADER = (
    "| contender | build s | nbytes MB | median ms | p99 ms | max ms | batch q/s | queries | = brute force |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


def hashguard_rows(codes: U8, queries: U8, truth: Truth, t: int) -> Row:
    def nbytes(index: HammingIndex) -> int:
        return sum(a.nbytes for s in index._segments for a in s.arrays().values())

    return measure(
        "hashguard HammingIndex",
        lambda: HammingIndex.build(codes),
        lambda ix, q: set(ix.search(q, t)),
        queries,
        truth,
        batch=lambda ix, qs: [set(r) for r in ix.search_batch(qs, t)],
        nbytes=nbytes,
    )


def faiss_rows(
    codes: U8, queries: U8, truth: Truth, t: int, configs: Sequence[tuple[int, int, int]], flat_queries: int | None
) -> list[Row]:
    import faiss

    faiss.omp_set_num_threads(1)
    bits = codes.shape[1] * 8

    def search(ix: Any, q: U8) -> set[tuple[int, int]]:
        _lims, dists, labels = ix.range_search(q[None, :], t + 1)
        return set(zip(labels.tolist(), dists.tolist(), strict=True))

    def batch(ix: Any, qs: U8) -> list[set[tuple[int, int]]]:
        lims, dists, labels = ix.range_search(qs, t + 1)
        return [set(zip(labels[a:b].tolist(), dists[a:b].tolist(), strict=True)) for a, b in itertools.pairwise(lims)]

    def flat() -> Any:
        ix = faiss.IndexBinaryFlat(bits)
        ix.add(codes)
        return ix

    rows = [measure("faiss IndexBinaryFlat", flat, search, queries, truth, batch=batch, max_queries=flat_queries)]
    for nhash, b, nflip in configs:

        def mih(nhash: int = nhash, b: int = b, nflip: int = nflip) -> Any:
            ix = faiss.IndexBinaryMultiHash(bits, nhash, b)
            ix.nflip = nflip
            ix.add(codes)
            return ix

        rows.append(measure(f"faiss MultiHash {nhash}x{b} nflip={nflip}", mih, search, queries, truth, batch=batch))
    return rows


def pdqindex2_row(codes: U8, queries: U8, truth: Truth, t: int, max_queries: int) -> Row:
    from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2

    # PDQ hex strings: PDQIndex2 parses them bit by bit; any consistent bit order gives the
    # same Hamming distances, so the bytes' hex is fine.
    hexes = [c.tobytes().hex() for c in codes]

    def build() -> Any:
        return PDQIndex2(entries=zip(hexes, range(len(hexes)), strict=True), threshold=t)

    def search(ix: Any, q: U8) -> set[tuple[int, int]]:
        return {(m.metadata, int(m.similarity_info.distance)) for m in ix.query(q.tobytes().hex())}

    return measure(
        "threatexchange PDQIndex2 (HMA)",
        build,
        search,
        queries,
        truth,
        max_queries=max_queries,
        note="float32 vectors in faiss IndexFlatL2",
    )


def numpy_row(codes: U8, queries: U8, truth: Truth, t: int, max_queries: int) -> Row:
    return measure(
        "numpy brute force",
        lambda: BruteForceIndex.build(codes),
        lambda ix, q: set(ix.search(q, t)),
        queries,
        truth,
        max_queries=max_queries,
    )


def exactset_section(rng: np.random.Generator, n: int, lookups: int) -> Section:
    section = Section(title=f"MD5 exact set, {n:,} entries, {lookups:,} lookups (half present)")
    digests = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    present = digests[rng.integers(0, n, size=lookups // 2)]
    absent = rng.integers(0, 256, size=(lookups - lookups // 2, 16), dtype=np.uint8)
    probe = [bytes(x) for x in np.concatenate([present, absent])]
    expected = [True] * (lookups // 2) + [False] * (lookups - lookups // 2)

    def run(
        name: str, build: Callable[[], Any], contains: Callable[[Any, bytes], bool], nbytes: Callable[[Any], int] | None
    ) -> None:
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        s = build()
        build_s = time.perf_counter() - start
        gc.collect()
        row = Row(name=name, build_s=build_s, rss_mb=rss_mb() - before)
        if nbytes is not None:
            row.nbytes_mb = nbytes(s) / 1e6
        lat = np.empty(len(probe))
        ok = True
        for j, d in enumerate(probe):
            t0 = time.perf_counter()
            found = contains(s, d)
            lat[j] = time.perf_counter() - t0
            ok &= found == expected[j]
        row.median_ms, row.p99_ms = float(np.median(lat) * 1e3), float(np.percentile(lat, 99) * 1e3)
        row.queries, row.exact = len(probe), "yes" if ok else "NO"
        section.rows.append(row)
        print(f"    {format_row(row)}", flush=True)
        del s
        gc.collect()

    run(
        "hashguard ExactHashSet.lookup",
        lambda: ExactHashSet.build(digests),
        lambda s, d: bool(s.lookup(d)),
        lambda s: s._words.nbytes + s._ids.nbytes,
    )
    run(
        "Python set of bytes (membership only)",
        lambda: {bytes(x) for x in digests},
        lambda s, d: d in s,
        lambda s: sys.getsizeof(s) + sum(sys.getsizeof(b) for b in s),
    )
    return section


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_row(row: Row) -> str:
    return (
        f"| {row.name} | {fmt(row.build_s, '.2f')} | {fmt(row.rss_mb, '.0f')} | {fmt(row.nbytes_mb, '.0f')} | "
        f"{fmt(row.median_ms, '.3g')} | {fmt(row.p99_ms, '.3g')} | {fmt(row.batch_qps, ',.0f')} | {row.queries} | {row.exact} | {row.note} |"
    )


HEADER = (
    "| contender | build s | RSS delta MB | nbytes MB | median ms | p99 ms | batch q/s | queries | = brute force | note |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated index sizes")
    parser.add_argument("--queries", type=int, default=1000, help="queries per size (half near-duplicates)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--slow-queries", type=int, default=100, help="queries for numpy brute force and PDQIndex2")
    parser.add_argument("--pdqindex2-max", type=int, default=1_000_000, help="largest size PDQIndex2 is run at")
    parser.add_argument("--no-faiss-mih", action="store_true", help="skip faiss MultiHash (minutes to build at 10M)")
    parser.add_argument("--no-exactset", action="store_true")
    parser.add_argument("--bits", default="256,64", help="code widths to run: 256 (t=31), 64 (t=10)")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    parser.add_argument(
        "--skew-cases",
        default="",
        help="run only these data cases (families,skewed,uniform) at --sizes and print/append their tables",
    )
    args = parser.parse_args(argv)
    if args.skew_cases:
        return skew_main(args)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    sizes = [int(s) for s in args.sizes.split(",")]
    command = "python -m benchmarks.index " + shlex.join(
        [f"--sizes={args.sizes}", f"--queries={args.queries}", f"--seed={seed}", f"--slow-queries={args.slow_queries}"]
        + (["--no-faiss-mih"] if args.no_faiss_mih else [])
        + (["--no-exactset"] if args.no_exactset else [])
        + ([f"--bits={args.bits}"] if args.bits != "256,64" else [])
        + ([f"--out={args.out}"] if args.out else [])
    )
    host = machine()
    print(f"seed: {seed}\nmachine: {host}\nrerun: {command}\n", flush=True)
    rng = np.random.default_rng(seed)
    sections: list[Section] = []
    for n in sizes:
        for nbytes, t, max_flips in ((32, 31, 16), (8, 10, 4)):
            bits = nbytes * 8
            if str(bits) not in args.bits.split(","):
                continue
            title = f"{bits}-bit codes, {n:,} entries, threshold {t}"
            print(f"## {title}\n{HEADER}", flush=True)
            codes = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
            queries = make_queries(rng, codes, args.queries, max_flips)
            truth = ground_truth(codes, queries, t)
            matches = sum(len(x) for x in truth)
            section = Section(title=f"{title} ({args.queries} queries, {matches} matches in all)")
            section.rows.append(hashguard_rows(codes, queries, truth, t))
            configs = [(16, 16, 1), (8, 24, 3)] if bits == 256 else [(4, 16, 2)]
            section.rows.extend(faiss_rows(codes, queries, truth, t, [] if args.no_faiss_mih else configs, None))
            if bits == 256 and n <= args.pdqindex2_max:
                section.rows.append(pdqindex2_row(codes, queries, truth, t, args.slow_queries))
            section.rows.append(numpy_row(codes, queries, truth, t, args.slow_queries))
            sections.append(section)
            del codes, queries, truth
            gc.collect()
    if not args.no_exactset:
        n = max(sizes)
        print(f"## MD5 exact set, {n:,}\n{HEADER}", flush=True)
        sections.append(exactset_section(rng, n, args.queries * 10))
    if args.out is not None:
        lines = [
            "# Index benchmark",
            "",
            f"Machine: {host}",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; seed {seed}.",
            f"Commit: {commit()}",
            f"Rerun: `{command}`",
            "",
            "Codes are synthetic and uniformly random, the easy case for a multi-index table: every",
            "bucket holds about as many entries as any other. Real hash lists cluster (near-duplicate",
            "entries, the low-detail pictures PDQ maps close together), so crowded buckets make real",
            "queries examine more candidates than these.",
            "",
            "One thread everywhere. Latency is per single query from Python, including each",
            "library's own wrapper. RSS delta is the process's resident memory growth across the",
            "build; it undercounts (down to 0) when the allocator reuses memory an earlier",
            "contender freed, so for hashguard read nbytes: the exact sum of the index's arrays",
            "(for the Python set: getsizeof of the set and its bytes objects).",
            "",
        ]
        for section in sections:
            lines += [f"## {section.title}", "", HEADER, *(format_row(r) for r in section.rows), ""]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines))
    return 0


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def skew_main(args: argparse.Namespace) -> int:
    """Only the data-shape cases; with --out, their tables are APPENDED under a dated heading."""
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    command = "python -m benchmarks.index " + shlex.join(
        [f"--sizes={args.sizes}", f"--queries={args.queries}", f"--seed={seed}", f"--skew-cases={args.skew_cases}"]
    )
    print(f"seed: {seed}\nrerun: {command}\nload average before: {load_average()}\n", flush=True)
    rng = np.random.default_rng(seed)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    before = load_average()
    sections: list[Section] = []
    for n in (int(s) for s in args.sizes.split(",")):
        sections += skew_sections(rng, n, args.queries, args.skew_cases.split(","))
    after = load_average()
    if args.out is not None:
        lines = [
            "",
            f"## Data-shape cases (issue 16), run {started}, load average {before} before, {after} after",
            "",
            f"Commit: {commit()}. Rerun: `{command} --out={args.out}`. One thread; latency per single query;",
            "nbytes is the sum of the index's arrays; = brute force compares every query's full result set",
            "(recall 1.0 and no extra hits) with the scan kernel's.",
            "",
        ]
        for section in sections:
            lines += [f"### {section.title}", "", SKEW_HEADER, *(format_skew_row(r) for r in section.rows), ""]
        with args.out.open("a") as f:
            f.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
