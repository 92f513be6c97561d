"""HammingIndex on skewed data: crowded buckets change the plan, never the answers.

Synthetic codes only. A "group" is a share of the entries that agree on a run of bytes
(a degenerate or crafted list); queries come from inside the group, from its edge (the
shared bytes with a few bits flipped, the rest random) and from far away. Every answer is
compared with BruteForceIndex at every threshold from 0 past the design threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from detector.hamming_kernels import WIDE_FLAG
from detector.index import BruteForceIndex, HammingIndex, _plan_array

U8 = npt.NDArray[np.uint8]


def flip(rng: np.random.Generator, code: U8, nflips: int) -> U8:
    out = code.copy()
    for bit in rng.choice(code.shape[0] * 8, size=nflips, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def skewed(rng: np.random.Generator, n: int, nbytes: int, groups: list[tuple[int, int, float]]) -> U8:
    """Random codes; for each (first byte, last byte, share) a share of rows agree on those bytes."""
    codes = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    for lo, hi, share in groups:
        rows = rng.choice(n, size=int(n * share), replace=False)
        codes[rows, lo:hi] = rng.integers(0, 256, size=hi - lo, dtype=np.uint8)
    return codes


def group_queries(rng: np.random.Generator, codes: U8, groups: list[tuple[int, int, float]], count: int) -> U8:
    """Inside each group (a member, 0-40 bits flipped), at its edge, and far from everything."""
    nbytes = codes.shape[1]
    out = []
    for lo, hi, _share in groups:
        prefix = codes[:, lo:hi]
        values, counts = np.unique(prefix, axis=0, return_counts=True)
        members = np.flatnonzero((prefix == values[np.argmax(counts)]).all(axis=1))
        if members.shape[0] == 0:
            members = np.arange(codes.shape[0])
        for _ in range(count):
            out.append(flip(rng, codes[rng.choice(members)], int(rng.integers(0, 41))))
        for _ in range(count):
            edge: U8 = np.asarray(rng.integers(0, 256, size=(nbytes,), dtype=np.uint8))
            edge[lo:hi] = codes[members[0], lo:hi]
            out.append(flip(rng, edge, int(rng.integers(0, 4))))
    out.extend(rng.integers(0, 256, size=(count, nbytes), dtype=np.uint8))
    return np.array(out, dtype=np.uint8)


def assert_exact(fast: HammingIndex, slow: BruteForceIndex, queries: U8, thresholds: range) -> None:
    for t in thresholds:
        batch = fast.search_batch(queries, t)
        assert batch == slow.search_batch(queries, t), f"batch differs at t={t}"
        for q in queries[:6]:
            assert fast.search(q, t) == slow.search(q, t), f"single differs at t={t}"


PREFIX = [(0, 8, 0.4)]  # 40% share their first 64 bits, as in the benchmark's skewed case
SEVERAL = [(0, 4, 0.25), (12, 20, 0.25), (24, 32, 0.2)]  # heavy groups in different tables


@pytest.mark.parametrize(("groups", "key_bits"), [(PREFIX, None), (PREFIX, 9), (SEVERAL, None), (SEVERAL, 11)])
def test_skewed_pdq_matches_brute_force(groups: list[tuple[int, int, float]], key_bits: int | None) -> None:
    rng = np.random.default_rng(16)
    codes = skewed(rng, 12_000, 32, groups)
    fast = HammingIndex.build(codes, key_bits=key_bits)
    assert_exact(fast, BruteForceIndex.build(codes), group_queries(rng, codes, groups, 4), range(0, 40, 3))


def test_skewed_64_bit_and_duplicates_match_brute_force() -> None:
    rng = np.random.default_rng(17)
    codes = skewed(rng, 10_000, 8, [(0, 3, 0.5)])
    codes[:2000] = codes[0]  # a mass of identical codes: heavy in every table at once
    fast = HammingIndex.build(codes)
    queries = group_queries(rng, codes, [(0, 3, 0.5), (0, 8, 0.2)], 5)
    assert_exact(fast, BruteForceIndex.build(codes), queries, range(0, 16))


def test_crowded_queries_are_replanned() -> None:
    """The uniform plan overruns its budget on a query inside the group; the answer stands."""
    rng = np.random.default_rng(18)
    codes = skewed(rng, 12_000, 32, [])
    codes[:4800, :8] = codes[0, :8]
    fast = HammingIndex.build(codes, key_bits=10)
    segment = fast._segments[0]
    member = 7
    query = codes[member : member + 1].view(np.uint64)
    aborted = np.zeros(1, dtype=np.bool_)
    plan = _plan_array(tuple(segment.sub_len.tolist()), segment.n, 4, False, 12)
    assert plan is not None
    segment._run(query, 12, plan, aborted)
    assert aborted[0], "a query inside a 40% group should overrun the uniform budget"
    for t in (12, 20):
        assert fast.search(codes[member], t) == BruteForceIndex.build(codes).search(codes[member], t)


def test_full_blocks_keep_narrow_offsets_and_the_memory_cap() -> None:
    """70,000 entries in one bucket: that block goes wide, the tables stay uint16."""
    rng = np.random.default_rng(19)
    n = 100_000
    codes = skewed(rng, n, 32, [(0, 8, 0.7)])
    fast = HammingIndex.build(codes)
    segment = fast._segments[0]
    assert segment.offsets.dtype == np.uint16
    assert segment.wide.shape[0] > 0
    assert (segment.blocks >= WIDE_FLAG).any()
    nbytes = sum(a.nbytes for a in segment.arrays().values())
    assert nbytes <= 3 * 32 * n + (16 << 20)
    slow = BruteForceIndex.build(codes)
    queries = group_queries(rng, codes, [(0, 8, 0.7)], 3)
    assert_exact(fast, slow, queries, range(28, 35, 3))


def test_skewed_changes_and_saved_index_stay_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(20)
    codes = skewed(rng, 12_000, 32, PREFIX)
    ids = np.arange(codes.shape[0], dtype=np.int64) * 7
    fast = HammingIndex.build(codes, ids)
    extra = skewed(rng, 900, 32, [])
    extra[:600, :8] = codes[np.flatnonzero((codes[:, :8] == codes[0, :8]).all(axis=1))[0], :8]
    extra_ids = np.arange(900, dtype=np.int64) + 10**9
    removed = ids[rng.choice(codes.shape[0], 3000, replace=False)]
    keep = ~np.isin(ids, removed)
    all_codes = np.concatenate([codes[keep], extra])
    all_ids = np.concatenate([ids[keep], extra_ids])
    slow = BruteForceIndex.build(all_codes, all_ids)
    queries = group_queries(rng, all_codes, PREFIX, 4)
    for compact in (False, True):
        changed = fast.with_changes(extra, extra_ids, removed, compact=compact)
        assert_exact(changed, slow, queries, range(0, 40, 6))
        path = tmp_path / f"skew-{compact}.idx"
        changed.save(path)
        loaded = HammingIndex.load(path, mmap=True)
        assert_exact(loaded, slow, queries, range(0, 40, 6))
