"""Exact Hamming-distance search over fixed-width binary hashes (pHash, dHash, PDQ).

``HammingIndex`` answers "every stored entry within Hamming distance t of this code",
exactly as brute force would. ``BruteForceIndex`` is the slow, obviously-correct
reference with the same API; tests compare the two.

The design of the fast index is in :class:`HammingIndex`'s docstring; the kernels are in
:mod:`detector.hamming_kernels`.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from detector.hamming_kernels import (
    WIDE_FLAG,
    counting_sort,
    gather_first_word,
    mih_search,
    plan_query,
    scan_search,
    table_keys,
)
from detector.index_file import IndexFileError, read_arrays, write_arrays

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]
Hit = tuple[int, int]

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_SCAN_CHUNK = 1 << 16


def as_codes(codes: Any, *, nbytes: int | None = None) -> U8Array:
    """Validate and return ``codes`` as a C-contiguous ``(n, nbytes)`` uint8 array."""
    array = np.ascontiguousarray(codes)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError("codes must be a 2-D uint8 array of shape (n, bits // 8)")
    if nbytes is not None and array.shape[1] != nbytes:
        raise ValueError(f"codes must be {nbytes} bytes wide, got {array.shape[1]}")
    if array.shape[1] == 0:
        raise ValueError("codes must be at least one byte wide")
    return array


def as_query(code: Any, nbytes: int) -> U8Array:
    """Validate and return one query code (bytes or a uint8 array) as ``(nbytes,)`` uint8."""
    if isinstance(code, bytes | bytearray | memoryview):
        array = np.frombuffer(code, dtype=np.uint8)
    else:
        array = np.asarray(code)
        if array.dtype != np.uint8:
            raise ValueError("a query code must be bytes or a uint8 array")
    if array.shape != (nbytes,):
        raise ValueError(f"a query code must be {nbytes} bytes, got shape {array.shape}")
    return array


def as_ids(ids: Any, n: int) -> I64Array:
    """Validate ``ids`` (default ``arange(n)``) and return them as int64."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    array = np.asarray(ids)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ids must be an integer array of shape ({n},)")
    return array.astype(np.int64, copy=False)


def check_distance(max_distance: int, bits: int) -> int:
    """Validate a threshold; thresholds past ``bits`` are clamped (they match everything)."""
    t = int(max_distance)
    if t < 0:
        raise ValueError("max_distance must be >= 0")
    return min(t, bits)


def popcount_distances(codes: U8Array, query: U8Array) -> npt.NDArray[np.int32]:
    """Hamming distance from ``query`` to every row of ``codes`` (plain numpy)."""
    out = np.empty(codes.shape[0], dtype=np.int32)
    for start in range(0, codes.shape[0], _SCAN_CHUNK):
        block = codes[start : start + _SCAN_CHUNK] ^ query
        out[start : start + _SCAN_CHUNK] = _POPCOUNT8[block].sum(axis=1, dtype=np.int32)
    return out


def sorted_hits(ids: I64Array, distances: npt.NDArray[Any]) -> list[Hit]:
    """Pair ids with distances, sorted by (distance, id)."""
    order = np.lexsort((ids, distances))
    return list(zip(ids[order].tolist(), distances[order].tolist(), strict=True))


class BruteForceIndex:
    """Reference index: compares the query with every stored code.

    Deliberately simple (numpy table popcount over bytes, no tricks) so that it can serve
    as the oracle for the fast index in tests and as the baseline in the benchmark.
    """

    __slots__ = ("_codes", "_ids", "bits")

    _KIND = "hashguard.bruteforce"

    def __init__(self, codes: U8Array, ids: I64Array) -> None:
        self._codes = codes
        self._ids = ids
        self.bits: int = codes.shape[1] * 8

    @classmethod
    def build(cls, codes: Any, ids: Any = None) -> Self:
        array = as_codes(codes)
        return cls(array.copy(), as_ids(ids, array.shape[0]).copy())

    def __len__(self) -> int:
        return int(self._codes.shape[0])

    def search(self, code: Any, max_distance: int) -> list[Hit]:
        query = as_query(code, self._codes.shape[1])
        t = check_distance(max_distance, self.bits)
        distances = popcount_distances(self._codes, query)
        hit = distances <= t
        return sorted_hits(self._ids[hit], distances[hit])

    def search_batch(self, codes: Any, max_distance: int) -> list[list[Hit]]:
        queries = as_codes(codes, nbytes=self._codes.shape[1])
        return [self.search(q, max_distance) for q in queries]

    def with_changes(
        self,
        add_codes: Any = None,
        add_ids: Any = None,
        remove_ids: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
    ) -> Self:
        """Return a new index: entries whose id is in ``remove_ids`` dropped, then additions."""
        codes, ids = self._codes, self._ids
        if remove_ids is not None and len(remove_ids) > 0:
            keep = ~np.isin(ids, np.asarray(remove_ids, dtype=np.int64))
            codes, ids = codes[keep], ids[keep]
        if add_codes is not None:
            extra = as_codes(add_codes, nbytes=self._codes.shape[1])
            codes = np.concatenate([codes, extra])
            ids = np.concatenate([ids, as_ids(add_ids, extra.shape[0])])
        return type(self)(np.ascontiguousarray(codes), np.ascontiguousarray(ids))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_arrays(
            path,
            kind=self._KIND,
            meta={"bits": self.bits},
            arrays={"codes": self._codes, "ids": self._ids},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> Self:
        _meta, arrays = read_arrays(path, kind=cls._KIND, mmap=mmap)
        return cls(arrays["codes"], arrays["ids"])


# ---------------------------------------------------------------------------------------
# The fast index: multi-index hashing over direct-addressed bucket tables.
# ---------------------------------------------------------------------------------------

# Cost model, in nanoseconds, used both to pick the table layout at build time and to pick
# per-query radii (or a scan) at search time. Measured on a 2-core AMD EPYC (see
# benchmarks/results/index.md); only the ratios matter, and a wrong guess costs speed,
# never correctness.
# On that machine a random read from a 1 GB array costs ~100 ns even when many overlap
# (and ~800 ns when they cannot), so the model counts cache misses.
_C_MISS = 100.0  # one random read: bucket bounds, a bucket's first row, a candidate's code
_C_SEQUENTIAL = 2.0  # verify a candidate stored in bucket order (table 0, inline codes)
_C_SCAN_WORD = 0.8  # brute force, per 64-bit word of every stored code
_BLOCK_SHIFT = 8  # bucket bounds are uint16 within blocks of 256 buckets (see mih_search)

_MIN_KEY_BITS = 8
_MAX_KEY_BITS = 24  # a 2^24-entry offsets table is 64 MiB; beyond that memory dominates
_SCAN_BELOW = 4096  # segments this small are scanned: tables would cost more than they save
_INLINE_WORDS = 1  # codes of one 64-bit word are copied into each table (see mih_search)
_DELTA_FRACTION = 8  # compact once the additions exceed 1/8 of the base segment
_DEAD_FRACTION = 4  # compact once retractions exceed 1/4 of the base segment

# Skew (issue 16). The uniform plan above is right for almost every query; a query that
# meets crowded buckets (a large group sharing a substring, masses of duplicates) is
# noticed by its candidate count: past _BUDGET_FACTOR x the plan's expected candidates
# plus _BUDGET_SLACK it is abandoned and re-planned with the real sizes of the buckets it
# would probe (plan_query), which skips or under-probes the crowded tables and takes the
# radius from the others. If that plan also overruns (its light buckets were priced from
# block means), the query is scanned: the worst case is bounded by a scan plus the budgets.
_BUDGET_FACTOR = 8
_BUDGET_SLACK = 2048
_PLAN_PROBES = 4096  # per table, the real-size planner prices radii up to this ball size


def default_design_distance(bits: int) -> int:
    """The threshold the table layout is tuned for when the caller does not say.

    31 for 256-bit PDQ (ThreatExchange's recommended match threshold), 10 for 64-bit
    pHash/dHash, and about 12% of the width otherwise. Any threshold works with any layout;
    this only decides which one is fastest.
    """
    return {64: 10, 256: 31}.get(bits, max(1, round(bits * 0.12)))


def _ball(k: int, r: int) -> int:
    """Number of k-bit keys within Hamming distance r of a key."""
    return sum(math.comb(k, j) for j in range(r + 1))


@functools.lru_cache(maxsize=8192)
def _plan(sub_lens: tuple[int, ...], n: int, nwords: int, inline: bool, t: int) -> tuple[tuple[int, ...] | None, float]:
    """Choose a probe radius per table (-1 = skip the table) for threshold ``t``.

    Exactness needs ``sum(radius + 1) > t`` over the used tables; within that, minimise the
    modelled cost (probes plus expected candidates, uniform keys). Returns ``(None, cost)``
    when a plain scan is cheaper or no radii can satisfy the bound. Small dynamic
    programme over (table, covered sum); cached per threshold.
    """
    scan_cost = n * nwords * _C_SCAN_WORD
    need = t + 1
    inf = float("inf")
    # best[s] = (cost, radii) reaching covered sum min(s, need) with the tables so far.
    empty: tuple[int, ...] = ()
    best: list[tuple[float, tuple[int, ...]]] = [(0.0, empty)] + [(inf, empty)] * need
    for i, k in enumerate(sub_lens):
        per_bucket = n / (1 << k)
        # A probe: one miss for the bounds, one for the bucket's start if it is not empty,
        # then its candidates: sequential when stored in bucket order, else a miss each.
        per_probe = _C_MISS * (1 + -math.expm1(-per_bucket))
        per_probe += per_bucket * (_C_SEQUENTIAL if (inline or i == 0) else _C_MISS)
        options = [(-1, 0.0)]
        r = 0
        while r < k and _ball(k, r) < (1 << k):
            options.append((r, _ball(k, r) * per_probe))
            r += 1
        nxt: list[tuple[float, tuple[int, ...]]] = [(inf, empty)] * (need + 1)
        for s, (cost, radii) in enumerate(best):
            if cost == inf:
                continue
            for radius, extra in options:
                s2 = min(need, s + radius + 1)
                if cost + extra < nxt[s2][0]:
                    nxt[s2] = (cost + extra, (*radii, radius))
        best = nxt
    cost, radii = best[need]
    if cost >= scan_cost or cost == inf:
        return None, scan_cost
    return radii, cost


@functools.lru_cache(maxsize=8192)
def _plan_array(
    sub_lens: tuple[int, ...], n: int, nwords: int, inline: bool, t: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """The uniform plan as a ``(1, m)`` radii array, with its ``(1,)`` candidate budget."""
    radii, _cost = _plan(sub_lens, n, nwords, inline, t)
    if radii is None:
        return None
    array = np.array([radii], dtype=np.int64)
    array.flags.writeable = False
    expected = sum(_ball(k, r) * n / (1 << k) for k, r in zip(sub_lens, radii, strict=True) if r >= 0)
    budget = np.array([int(_BUDGET_FACTOR * expected) + _BUDGET_SLACK], dtype=np.int64)
    budget.flags.writeable = False
    return array, budget


@functools.lru_cache(maxsize=256)
def _planner_params(
    sub_lens: tuple[int, ...], n: int, nwords: int, inline: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per table: the largest radius the real-size planner prices, a candidate's cost, and
    the block size (entries in 256 buckets) above which a probe reads its exact bucket size.

    The heavy-block line is 4x a block's expected fill plus 1024: uniform data never
    crosses it (Poisson tails), so ordinary probes are priced from cached block bounds.
    """
    max_radius = np.empty(len(sub_lens), np.int64)
    cand = np.empty(len(sub_lens), np.float64)
    heavy = np.empty(len(sub_lens), np.int64)
    for i, k in enumerate(sub_lens):
        r = 0
        while r + 1 < k and _ball(k, r + 1) <= _PLAN_PROBES:
            r += 1
        max_radius[i] = r
        # As in the uniform model: a miss per candidate outside table 0; table 0 verifies in
        # place, but a crowded bucket there is a stream of whole codes (measured ~6 ns for a
        # 4-word code, not the 2 ns of a one-word inline code).
        cand[i] = _C_MISS if not (inline or i == 0) else (_C_SEQUENTIAL if inline else 2 * _C_SCAN_WORD * nwords)
        heavy[i] = int(4 * n * min(256, 1 << k) / (1 << k)) + 1024
    return max_radius, cand, heavy


def _choose_key_bits(bits: int, n: int, nwords: int, ids_itemsize: int, design: int) -> int:
    """Substring width for a new segment; 0 means no tables (scan).

    Candidates: k in 8..24 bits with ``bits // k`` tables (leftover bits stay unindexed;
    the pigeonhole bound only needs the indexed bits). Memory cap: codes, ids and tables
    together within 3x the raw size of a 32-byte code per entry plus 16 MiB, so a 10M PDQ
    index stays under 1 GB (small indexes need proportionally more tables). Among layouts within the cap, the lowest modelled cost at ``design`` wins.
    """
    if n < _SCAN_BELOW:
        return 0
    inline = nwords <= _INLINE_WORDS
    budget = 3 * max(nwords * 8, 32) * n + (16 << 20)
    best_k, best_cost = 0, n * nwords * _C_SCAN_WORD
    for k in range(_MIN_KEY_BITS, min(_MAX_KEY_BITS, bits) + 1):
        m = bits // k
        table_bytes = (m - 1) * n * (4 + (8 if inline else 0)) + m * ((1 << k) + 1) * 2
        if nwords * 8 * n + ids_itemsize * n + table_bytes > budget:
            continue
        _radii, cost = _plan((k,) * m, n, nwords, inline, design)
        if cost < best_cost:
            best_k, best_cost = k, cost
    return best_k


@dataclass(frozen=True, kw_only=True, slots=True)
class _Segment:
    """One immutable block of entries and its tables.

    ``words`` and ``ids`` are in table 0's bucket order. ``alive`` marks entries not yet
    retracted (None = all alive); retracted entries stay in the tables until compaction
    and are filtered out of results, which costs nothing on the (rare) match path only.
    """

    words: U64Array  # (n, nwords) codes
    ids: npt.NDArray[np.signedinteger[Any]]  # (n,) int32 when every id fits, else int64
    sub_start: I64Array  # (m,) first bit of each table's substring
    sub_len: I64Array  # (m,) substring width
    off_base: I64Array  # (m,) where each table's offsets start in ``offsets``
    offsets: npt.NDArray[np.unsignedinteger[Any]]  # CSR bounds in block, 2^k + 1 per table
    blocks: npt.NDArray[np.uint32]  # absolute start of every block of 256 buckets
    block_base: I64Array  # (m,) where each table's blocks start in ``blocks``
    wide: npt.NDArray[np.uint32]  # absolute bucket starts of blocks too full for uint16
    positions: npt.NDArray[np.int32]  # (m - 1, n) rows of tables 1.. in bucket order
    inline: U64Array  # (m - 1, n) one-word codes in bucket order, or (0, 0)
    alive: npt.NDArray[np.bool_] | None
    n_alive: int

    @property
    def n(self) -> int:
        return int(self.words.shape[0])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {
            "words": self.words,
            "ids": self.ids,
            "sub_start": self.sub_start,
            "sub_len": self.sub_len,
            "off_base": self.off_base,
            "offsets": self.offsets,
            "blocks": self.blocks,
            "block_base": self.block_base,
            "wide": self.wide,
            "positions": self.positions,
            "inline": self.inline,
        }
        if self.alive is not None:
            out["alive"] = self.alive
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> _Segment:
        alive = arrays.get("alive")
        n = int(arrays["words"].shape[0])
        return cls(
            words=arrays["words"],
            ids=arrays["ids"],
            sub_start=arrays["sub_start"],
            sub_len=arrays["sub_len"],
            off_base=arrays["off_base"],
            offsets=arrays["offsets"],
            blocks=arrays["blocks"],
            block_base=arrays["block_base"],
            wide=arrays["wide"],
            positions=arrays["positions"],
            inline=arrays["inline"],
            alive=alive,
            n_alive=n if alive is None else int(np.count_nonzero(alive)),
        )

    @classmethod
    def build(cls, words: U64Array, ids: I64Array, bits: int, design: int, key_bits: int | None) -> _Segment:
        n, nwords = words.shape
        if n >= 2**31 - 1:
            raise ValueError("an index segment holds fewer than 2^31 entries")
        if n and np.iinfo(np.int32).min <= ids.min() and ids.max() <= np.iinfo(np.int32).max:
            # Halves the ids' memory; they are widened back to int64 on the way out.
            ids = ids.astype(np.int32)
        k = _choose_key_bits(bits, n, nwords, ids.dtype.itemsize, design) if key_bits is None else key_bits
        if n == 0:
            k = 0
        m = bits // k if k else 0
        sub_len = np.full(m, k, dtype=np.int64)
        sub_start = np.arange(m, dtype=np.int64) * k
        off_base = np.arange(m, dtype=np.int64) * ((1 << k) + 1)
        inline_on = m > 0 and nwords <= _INLINE_WORDS
        positions = np.empty((max(m - 1, 0), n), dtype=np.int32)
        inline = np.empty((m - 1, n) if inline_on else (0, 0), dtype=np.uint64)
        tables: list[npt.NDArray[np.uint32]] = []
        for i in range(m):
            keys = table_keys(words, int(sub_start[i]), k)
            offsets, order = counting_sort(keys, 1 << k)
            del keys
            tables.append(offsets)
            if i == 0:
                # Store the codes in table 0's order: table 0 then needs no positions.
                words = np.ascontiguousarray(words[order])
                ids = np.ascontiguousarray(ids[order])
            else:
                positions[i - 1] = order
                if inline_on:
                    inline[i - 1] = gather_first_word(words, order)
        offsets, blocks, block_base, wide = _two_level(tables)
        return cls(
            words=np.ascontiguousarray(words),
            ids=ids,
            sub_start=sub_start,
            sub_len=sub_len,
            off_base=off_base,
            offsets=offsets,
            blocks=blocks,
            block_base=block_base,
            wide=wide,
            positions=positions,
            inline=inline,
            alive=None,
            n_alive=n,
        )

    def search(self, queries: U64Array, t: int) -> tuple[I64Array, I64Array, I64Array]:
        """(ids, dists, starts) of live entries within ``t`` of each query row.

        Every query first runs the uniform plan under a candidate budget. A query that
        overruns it (crowded buckets: skewed data) is re-planned alone from the real bucket
        sizes it would probe, and scanned if even that plan overruns or a scan is cheaper.
        """
        inline_on = self.inline.shape[0] > 0
        sub_lens = tuple(self.sub_len.tolist())
        plan = _plan_array(sub_lens, self.n, self.words.shape[1], inline_on, t) if self.sub_len.shape[0] else None
        if plan is None:
            rows, dists, starts = self._run(queries, t, None, None)
        else:
            aborted = np.zeros(queries.shape[0], dtype=np.bool_)
            rows, dists, starts = self._run(queries, t, plan, aborted)
            if aborted.any():
                rows, dists, starts = self._replan(queries, t, rows, dists, starts, aborted, sub_lens, inline_on)
        if self.alive is not None and rows.shape[0]:
            keep = self.alive[rows]
            if not keep.all():
                rows, dists = rows[keep], dists[keep]
                starts = np.concatenate(([0], np.cumsum(keep)))[starts]
        return self.ids[rows].astype(np.int64), dists, starts

    def _run(
        self,
        queries: U64Array,
        t: int,
        plan: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None,
        aborted: npt.NDArray[np.bool_] | None,
    ) -> tuple[I64Array, I64Array, I64Array]:
        """One kernel call: the tables under ``plan`` (radii, budgets), or a scan if None."""
        capacity = 64 * queries.shape[0]
        while True:
            rows = np.empty(capacity, dtype=np.int64)
            dists = np.empty(capacity, dtype=np.int64)
            starts = np.empty(queries.shape[0] + 1, dtype=np.int64)
            if plan is None or aborted is None:
                count = scan_search(self.words, queries, t, rows, dists, starts)
            else:
                count = mih_search(
                    self.words,
                    self.positions,
                    self.inline,
                    self.offsets,
                    self.off_base,
                    self.blocks,
                    self.block_base,
                    self.wide,
                    self.sub_start,
                    self.sub_len,
                    plan[0],
                    plan[1],
                    queries,
                    t,
                    rows,
                    dists,
                    starts,
                    aborted,
                )
            if count <= capacity:
                return rows[:count], dists[:count], starts
            capacity = count

    def _replan(
        self,
        queries: U64Array,
        t: int,
        rows: I64Array,
        dists: I64Array,
        starts: I64Array,
        aborted: npt.NDArray[np.bool_],
        sub_lens: tuple[int, ...],
        inline_on: bool,
    ) -> tuple[I64Array, I64Array, I64Array]:
        """Answer the abandoned queries with per-query plans; splice them into the results."""
        max_radius, cand, heavy = _planner_params(sub_lens, self.n, self.words.shape[1], inline_on)
        scan_cost = self.n * self.words.shape[1] * _C_SCAN_WORD
        answers: dict[int, tuple[I64Array, I64Array]] = {}
        for q in np.flatnonzero(aborted).tolist():
            query = queries[q : q + 1]
            radii = np.empty((1, self.sub_len.shape[0]), dtype=np.int64)
            cost = plan_query(
                self.offsets,
                self.blocks,
                self.wide,
                self.off_base,
                self.block_base,
                self.sub_start,
                self.sub_len,
                max_radius,
                cand,
                query[0],
                t,
                _C_MISS,
                heavy,
                scan_cost,
                radii[0],
            )
            again = np.zeros(1, dtype=np.bool_)
            if cost >= 0:
                # The plan's candidates are mostly known exactly; the budget only catches
                # light buckets that were priced from their block's mean and were not light.
                # cost / the cheapest candidate bounds the candidates the plan expects.
                budget = np.array([int(2 * cost / float(cand.min())) + _BUDGET_SLACK], dtype=np.int64)
                r, d, _s = self._run(query, t, (radii, budget), again)
            if cost < 0 or again[0]:
                r, d, _s = self._run(query, t, None, None)
            answers[q] = (r, d)
        out_rows: list[I64Array] = []
        out_dists: list[I64Array] = []
        new_starts = np.empty_like(starts)
        new_starts[0] = 0
        for q in range(queries.shape[0]):
            if q in answers:
                r, d = answers[q]
            else:
                r, d = rows[starts[q] : starts[q + 1]], dists[starts[q] : starts[q + 1]]
            out_rows.append(r)
            out_dists.append(d)
            new_starts[q + 1] = new_starts[q] + r.shape[0]
        return np.concatenate(out_rows), np.concatenate(out_dists), new_starts

    def live_entries(self) -> tuple[U64Array, I64Array]:
        if self.alive is None:
            return self.words, self.ids.astype(np.int64)
        return self.words[self.alive], self.ids[self.alive].astype(np.int64)

    def without(self, remove: I64Array) -> _Segment:
        hit = np.isin(self.ids, remove)
        if self.alive is not None:
            hit &= self.alive
        if not hit.any():
            return self
        alive = ~hit if self.alive is None else self.alive & ~hit
        return _Segment(
            words=self.words,
            ids=self.ids,
            sub_start=self.sub_start,
            sub_len=self.sub_len,
            off_base=self.off_base,
            offsets=self.offsets,
            blocks=self.blocks,
            block_base=self.block_base,
            wide=self.wide,
            positions=self.positions,
            inline=self.inline,
            alive=alive,
            n_alive=int(np.count_nonzero(alive)),
        )


def _two_level(
    tables: list[npt.NDArray[np.uint32]],
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint32], I64Array, npt.NDArray[np.uint32]]:
    """Split each table's CSR offsets into per-block bases and uint16 in-block offsets.

    uint16 in-block offsets halve the largest part of the tables after the row arrays
    (11 x 2^23 buckets for 10M PDQ). A block of 256 buckets holding 65536+ entries (masses
    of duplicates, or a large group sharing a substring) keeps its 256 absolute starts in
    ``wide`` and is flagged in ``blocks`` (WIDE_FLAG | its row in ``wide``). Formerly one
    such block widened every table to uint32, which is what pushed the skewed 10M build
    past its memory cap (946 MB + 185 MB); now only that block pays, 1 KB.
    """
    if not tables:
        return np.zeros(1, np.uint16), np.zeros(1, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.uint32)
    step = 1 << _BLOCK_SHIFT
    all_local: list[npt.NDArray[np.uint16]] = []
    all_bases: list[npt.NDArray[np.uint32]] = []
    wide_rows: list[npt.NDArray[np.uint32]] = []
    for t in tables:
        bases = t[::step].copy()
        starts = np.repeat(bases, step)[: t.shape[0]]
        local = t - starts
        nblocks = bases.shape[0]
        padded = np.zeros(nblocks * step, dtype=local.dtype)
        padded[: local.shape[0]] = local
        full = np.flatnonzero(padded.reshape(nblocks, step).max(axis=1) > np.iinfo(np.uint16).max)
        for blk in full.tolist():
            row = np.zeros(step, np.uint32)
            chunk = t[blk * step : (blk + 1) * step]
            row[: chunk.shape[0]] = chunk
            bases[blk] = WIDE_FLAG | np.uint32(len(wide_rows))
            local[blk * step : (blk + 1) * step] = 0
            wide_rows.append(row)
        all_local.append(local.astype(np.uint16))
        all_bases.append(bases)
    block_base = np.cumsum([0] + [b.shape[0] for b in all_bases[:-1]]).astype(np.int64)
    wide = np.concatenate(wide_rows) if wide_rows else np.zeros(0, np.uint32)
    return np.concatenate(all_local), np.concatenate(all_bases), block_base, wide


def _to_words(codes: U8Array, nwords: int) -> U64Array:
    """Codes as native uint64 words, zero-padded: padding bits never add distance."""
    if codes.shape[1] != nwords * 8:
        padded = np.zeros((codes.shape[0], nwords * 8), dtype=np.uint8)
        padded[:, : codes.shape[1]] = codes
        codes = padded
    return np.ascontiguousarray(codes).view(np.uint64)


class HammingIndex:
    """Exact "every entry within Hamming distance t" over fixed-width binary codes.

    Design:

    * Multi-index hashing: the code is cut into m substrings of k bits; each has a
      direct-addressed bucket table (CSR offsets of 2^k + 1 uint32, rows sorted by key).
      By the pigeonhole principle a code within t of the query is within r_i of it on some
      substring whenever ``sum(r_i + 1) > t``; the query probes those Hamming balls and
      verifies every candidate on the full code. Results equal brute force.
    * k is chosen at build time from the number of entries (about log2(n) - 2, within a
      memory cap); the radii are chosen per query threshold by a small cost model, which
      also falls back to a scan when that is cheaper (large thresholds, small segments).
    * Skew: that plan assumes uniform buckets, which a degenerate or crafted list breaks (a
      third of the entries sharing 64 bits crowd every table over those bits). A query that
      verifies more than a budget of candidates is abandoned and re-planned alone from the
      real sizes of the buckets it would probe (crowded tables skipped or probed below the
      crowded radius, the bound carried by the others; a scan when nothing is cheaper).
      Chosen over re-splitting crowded buckets into nested tables because it needs no
      extra memory (the cap is already nearly spent at 10M) and ordinary queries pay one
      comparison per bucket; its limit (every table crowded for one query) costs a scan.
    * The search loop is a numba kernel: at sub-millisecond latencies per-query Python
      overhead would otherwise dominate. Kernels are compiled to an on-disk cache and
      warmed when an index is built or loaded, so the first real query is not slow.
    * Immutable. :meth:`with_changes` returns a new index sharing the unchanged arrays:
      additions go to a small delta segment, retractions to a liveness mask; once either
      grows past a fraction of the base, the new index is compacted into one segment.
      The caller swaps its reference atomically; scans in flight keep the old index.
    * :meth:`save` writes one file atomically; :meth:`load` memory-maps it read-only, so
      N worker processes on a machine share one copy through the page cache.
    """

    __slots__ = ("_design", "_key_bits", "_nbytes", "_nwords", "_segments", "bits")

    _KIND = "hashguard.hamming"
    _FORMAT = 2  # 2: per-block "wide" bucket starts replace the all-uint32 fallback

    def __init__(
        self,
        *,
        bits: int,
        nbytes: int,
        design: int,
        key_bits: int | None,
        segments: tuple[_Segment, ...],
    ) -> None:
        self.bits: int = bits
        self._nbytes = nbytes
        self._nwords = -(-nbytes // 8)
        self._design = design
        self._key_bits = key_bits
        self._segments = segments

    # -- construction -------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        codes: Any,
        ids: Any = None,
        *,
        design_distance: int | None = None,
        key_bits: int | None = None,
    ) -> HammingIndex:
        """Index ``codes`` (``(n, bits // 8)`` uint8) under ``ids`` (default ``arange(n)``).

        ``design_distance`` is the threshold the layout is tuned for (default
        :func:`default_design_distance`); every threshold stays exact. ``key_bits`` forces
        the substring width (tests and benchmarks use it to exercise or compare layouts).
        """
        array = as_codes(codes)
        bits = array.shape[1] * 8
        design = default_design_distance(bits) if design_distance is None else design_distance
        if key_bits is not None and not 1 <= key_bits <= min(bits, _MAX_KEY_BITS):
            raise ValueError(f"key_bits must be between 1 and {min(bits, _MAX_KEY_BITS)}")
        nwords = -(-array.shape[1] // 8)
        segment = _Segment.build(_to_words(array, nwords), as_ids(ids, array.shape[0]), bits, design, key_bits)
        index = cls(bits=bits, nbytes=array.shape[1], design=design, key_bits=key_bits, segments=(segment,))
        index._warm_up()
        return index

    def _warm_up(self) -> None:
        """Compile (or load from numba's cache) every kernel this index will call."""
        probe = np.zeros((1, self._nwords), dtype=np.uint64)
        for segment in self._segments:
            segment.search(probe, 0)
            segment.search(probe, self._design)
            if segment.sub_len.shape[0]:
                # The skew path (re-planning an abandoned query) is compiled up front too.
                rows, dists, starts = segment._run(probe, 0, None, None)
                segment._replan(
                    probe,
                    self._design,
                    rows,
                    dists,
                    starts,
                    np.ones(1, dtype=np.bool_),
                    tuple(segment.sub_len.tolist()),
                    segment.inline.shape[0] > 0,
                )
            empty = np.empty(1, dtype=np.int64)
            scan_search(segment.words[:1], probe, 0, empty, empty.copy(), np.empty(2, np.int64))

    # -- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(s.n_alive for s in self._segments)

    def _query_words(self, codes: U8Array) -> U64Array:
        return _to_words(codes, self._nwords)

    def search(self, code: Any, max_distance: int) -> list[Hit]:
        """Every (id, distance) with distance <= ``max_distance``, sorted by (distance, id)."""
        query = as_query(code, self._nbytes).reshape(1, -1)
        t = check_distance(max_distance, self.bits)
        words = self._query_words(query)
        if len(self._segments) == 1:
            ids, dists, _starts = self._segments[0].search(words, t)
            if ids.shape[0] == 0:
                return []
            return sorted_hits(ids, dists)
        parts = [segment.search(words, t) for segment in self._segments]
        return sorted_hits(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def search_batch(self, codes: Any, max_distance: int) -> list[list[Hit]]:
        """:meth:`search` for each row of ``codes``, in one kernel call per segment."""
        queries = as_codes(codes, nbytes=self._nbytes)
        t = check_distance(max_distance, self.bits)
        words = self._query_words(queries)
        parts = [segment.search(words, t) for segment in self._segments]
        out: list[list[Hit]] = []
        for q in range(queries.shape[0]):
            ids = [p[0][p[2][q] : p[2][q + 1]] for p in parts]
            dists = [p[1][p[2][q] : p[2][q + 1]] for p in parts]
            if sum(x.shape[0] for x in ids) == 0:
                out.append([])
            else:
                out.append(sorted_hits(np.concatenate(ids), np.concatenate(dists)))
        return out

    # -- changes ------------------------------------------------------------------------

    def with_changes(
        self,
        add_codes: Any = None,
        add_ids: Any = None,
        remove_ids: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
        *,
        compact: bool = True,
    ) -> HammingIndex:
        """A new index with ``remove_ids`` retracted, then ``add_codes`` added.

        Retractions remove every entry carrying one of those ids (ids need not be unique).
        They only flip bits in a copied liveness mask; additions rebuild just the small
        delta segment. Cost is proportional to the change, plus an occasional compaction
        (a full rebuild, seconds for 10M entries) once the delta exceeds 1/8 or the
        retractions 1/4 of the base. This index is left untouched.

        ``compact=False`` never rebuilds the base: a caller whose base is a memory-mapped file
        shared by several processes compacts by building a new file instead (detector.index_store).
        """
        segments = list(self._segments)
        if remove_ids is not None and len(remove_ids) > 0:
            remove = np.unique(np.asarray(remove_ids, dtype=np.int64))
            segments = [s.without(remove) for s in segments]
        added: tuple[U64Array, I64Array] | None = None
        if add_codes is not None:
            extra = as_codes(add_codes, nbytes=self._nbytes)
            if extra.shape[0]:
                added = (_to_words(extra, self._nwords), as_ids(add_ids, extra.shape[0]))
        base, deltas = segments[0], segments[1:]
        delta_parts = [s.live_entries() for s in deltas]
        if added is not None:
            delta_parts.append(added)
        delta_n = sum(p[0].shape[0] for p in delta_parts)
        compact = compact and (
            delta_n > max(base.n // _DELTA_FRACTION, _SCAN_BELOW) or (base.n - base.n_alive) > base.n // _DEAD_FRACTION
        )
        if compact:
            parts = [base.live_entries(), *delta_parts]
            new_segments: tuple[_Segment, ...] = (self._segment_from(parts),)
        elif added is None and all(a is b for a, b in zip(segments, self._segments, strict=True)):
            return self
        elif added is None:
            new_segments = tuple(segments)
        else:
            new_segments = (base, self._segment_from(delta_parts))
        index = HammingIndex(
            bits=self.bits,
            nbytes=self._nbytes,
            design=self._design,
            key_bits=self._key_bits,
            segments=new_segments,
        )
        index._warm_up()
        return index

    def wants_compaction(self) -> bool:
        """True once the delta or the retractions have grown past what ``with_changes`` compacts at."""
        base, deltas = self._segments[0], self._segments[1:]
        delta_n = sum(s.n_alive for s in deltas)
        return delta_n > max(base.n // _DELTA_FRACTION, _SCAN_BELOW) or (base.n - base.n_alive) > base.n // _DEAD_FRACTION

    def _segment_from(self, parts: list[tuple[U64Array, I64Array]]) -> _Segment:
        words = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, self._nwords), np.uint64)
        ids = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        return _Segment.build(np.ascontiguousarray(words), ids, self.bits, self._design, self._key_bits)

    # -- files --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically (temp file in the same directory, rename)."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        for i, segment in enumerate(self._segments):
            for name, array in segment.arrays().items():
                arrays[f"{i}.{name}"] = array
        write_arrays(
            path,
            kind=self._KIND,
            meta={
                "format": self._FORMAT,
                "bits": self.bits,
                "nbytes": self._nbytes,
                "design": self._design,
                "key_bits": self._key_bits,
                "segments": len(self._segments),
                "byteorder": sys.byteorder,
            },
            arrays=arrays,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> HammingIndex:
        """Open an index written by :meth:`save`; ``mmap=True`` shares pages across processes."""
        meta, arrays = read_arrays(path, kind=cls._KIND, mmap=mmap)
        if meta.get("format") != cls._FORMAT or meta.get("byteorder") != sys.byteorder:
            raise IndexFileError(f"{os.fspath(path)!r} was written by an incompatible version")
        segments = []
        for i in range(int(meta["segments"])):
            prefix = f"{i}."
            segments.append(_Segment.from_arrays({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}))
        index = cls(
            bits=int(meta["bits"]),
            nbytes=int(meta["nbytes"]),
            design=int(meta["design"]),
            key_bits=meta.get("key_bits"),
            segments=tuple(segments),
        )
        index._warm_up()
        return index
