"""numba kernels behind :mod:`detector.index`: key extraction, table build, search.

Kept apart from the index classes so that the classes read as design and these read as
loops. Every kernel is ``cache=True`` (compiled machine code is stored next to this
module, or in numba's user cache directory when that is not writable, so a restarted
worker does not recompile) and ``nogil=True`` (the service runs searches in an executor;
releasing the GIL lets several run at once).

Codes are rows of little-endian uint64 words; bit ``b`` of a code is bit ``b % 64`` of word
``b // 64``. Hamming distance does not care which bit order we pick as long as stored codes
and queries use the same one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


def _popcount_typer(typingctx: Any, x: Any) -> Any:
    """Population count as the CPU's POPCNT (LLVM ``ctpop``); numba exposes none."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


# Typed as Any: inside kernels numba types these calls; mypy cannot see through intrinsics.
_popcount: Any = intrinsic(_popcount_typer)


@njit(inline="always")
def _key(words: Any, row: Any, start: Any, length: Any) -> Any:
    """Bits ``[start, start + length)`` of code ``row`` as an integer (length <= 32)."""
    wi = start >> 6
    off = start & 63
    v = words[row, wi] >> np.uint64(off)
    if off + length > 64:
        v |= words[row, wi + 1] << np.uint64(64 - off)
    return np.int64(v & np.uint64((1 << length) - 1))


@njit(cache=True, nogil=True)
def table_keys(words: Any, start: int, length: int) -> Any:
    """The substring key of every stored code for one table."""
    n = words.shape[0]
    keys = np.empty(n, dtype=np.uint32)
    for r in range(n):
        keys[r] = _key(words, r, start, length)
    return keys


@njit(cache=True, nogil=True)
def counting_sort(keys: Any, nbuckets: int) -> Any:
    """Stable counting sort: bucket offsets (CSR, ``nbuckets + 1``) and rows in key order.

    O(n + buckets), versus O(n log n) for argsort: this is what keeps a 10M build within
    seconds per table.
    """
    offsets = np.zeros(nbuckets + 1, dtype=np.uint32)
    for key in keys:
        offsets[key + 1] += 1
    for b in range(nbuckets):
        offsets[b + 1] += offsets[b]
    cursor = offsets[:-1].copy()
    order = np.empty(keys.shape[0], dtype=np.int32)
    for r in range(keys.shape[0]):
        key = keys[r]
        order[cursor[key]] = r
        cursor[key] += 1
    return offsets, order


@njit(cache=True, nogil=True)
def gather_first_word(words: Any, rows: Any) -> Any:
    """Copy of the single-word codes in table order, for inline verification."""
    out = np.empty(rows.shape[0], dtype=np.uint64)
    for j in range(rows.shape[0]):
        out[j] = words[rows[j], 0]
    return out


@njit(inline="always")
def _emit(rows: Any, dists: Any, count: Any, row: Any, dist: Any) -> Any:
    # Output buffers are fixed: growing them inside the loop (reassigning arrays) costs
    # reference counting in the hot loop and blocks vectorisation (measured 5x slower).
    # Past capacity we only count; the caller retries with a buffer of the full count.
    if count < rows.shape[0]:
        rows[count] = row
        dists[count] = dist
    return count + 1


@njit(inline="always")
def _distances(words: Any, start: int, stop: int, query: Any, out: Any) -> None:
    """Distances of rows ``[start, stop)`` into ``out``; branch-free so LLVM vectorises it
    (AVX-512 VPOPCNTQ where present), unrolled for the common widths."""
    nwords = words.shape[1]
    if nwords == 1:
        for r in range(start, stop):
            out[r - start] = _popcount(words[r, 0] ^ query[0])
    elif nwords == 4:
        for r in range(start, stop):
            out[r - start] = (
                _popcount(words[r, 0] ^ query[0])
                + _popcount(words[r, 1] ^ query[1])
                + _popcount(words[r, 2] ^ query[2])
                + _popcount(words[r, 3] ^ query[3])
            )
    else:
        for r in range(start, stop):
            d = 0
            for w in range(nwords):
                d += _popcount(words[r, w] ^ query[w])
            out[r - start] = d


@njit(cache=True, nogil=True)
def scan_search(words: Any, queries: Any, t: int, rows: Any, dists: Any, starts: Any) -> int:
    """Brute force: every row within ``t`` of each query, into ``rows``/``dists``.

    Returns the number of hits; if that exceeds ``len(rows)`` the buffers hold only a
    prefix and the caller must retry with larger ones. ``starts`` (``len(queries) + 1``)
    receives each query's first hit position.
    """
    n = words.shape[0]
    starts[0] = 0
    block = np.empty(4096, dtype=np.int64)
    count = 0
    for q in range(queries.shape[0]):
        query = queries[q]
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            _distances(words, start, stop, query, block)
            for r in range(start, stop):
                d = block[r - start]
                if d <= t:
                    count = _emit(rows, dists, count, r, d)
        starts[q + 1] = count
    return count


@njit(cache=True, nogil=True)
def mih_search(
    words: Any,
    positions: Any,
    inline: Any,
    offsets: Any,
    off_base: Any,
    blocks: Any,
    block_base: Any,
    sub_start: Any,
    sub_len: Any,
    radii: Any,
    queries: Any,
    t: int,
    rows: Any,
    dists: Any,
    starts: Any,
) -> int:
    """Multi-index hashing search (Norouzi, Punjani, Fleet), exact.

    Table ``i`` indexes bits ``[sub_start[i], sub_start[i] + sub_len[i])``. If the tables
    used for this query (``radii[i] >= 0``) satisfy ``sum(radii[i] + 1) > t``, every code
    within ``t`` of the query is within ``radii[i]`` of it on at least one used table's
    substring (otherwise the distance would be at least that sum), so probing every
    bucket within ``radii[i]`` of the query's key in each used table finds every match;
    each candidate is then verified on the full code, so nothing beyond ``t`` comes back.

    Table 0 holds the codes in its own bucket order (``positions`` has rows for tables
    1..m-1 only), which saves one positions array and makes table 0's verification reads
    sequential. For one-word codes, ``inline`` holds each table's codes in table order, so
    verification never leaves the bucket.

    Bucket bounds are two-level to halve their memory: bucket ``key`` of table ``i`` starts
    at ``blocks[block_base[i] + (key >> 8)] + offsets[off_base[i] + key]``, where
    ``offsets`` is uint16 relative to its block of 256 buckets (uint32 if a block ever
    holds 65536+ entries). ``blocks`` is small enough to stay in cache, so a probe still
    costs one miss for its bounds.

    A match is reported only by the first used table that can see it, so results need no
    deduplication pass: that check runs only for verified matches, which are rare.
    Output as in :func:`scan_search`.
    """
    nwords = words.shape[1]
    m = sub_start.shape[0]
    use_inline = inline.shape[0] > 0
    starts[0] = 0
    count = 0
    qkeys = np.empty(m, dtype=np.int64)
    combo = np.empty(64, dtype=np.int64)
    for q in range(queries.shape[0]):
        for i in range(m):
            qkeys[i] = _key(queries, q, sub_start[i], sub_len[i])
        q0 = queries[q, 0]
        for i in range(m):
            radius = radii[i]
            if radius < 0:
                continue
            k = sub_len[i]
            base = off_base[i]
            bbase = block_base[i]
            qk = qkeys[i]
            for rr in range(radius + 1):
                for a in range(rr):
                    combo[a] = a
                while True:
                    key = qk
                    for a in range(rr):
                        key ^= np.int64(1) << combo[a]
                    lo = np.int64(blocks[bbase + (key >> 8)]) + np.int64(offsets[base + key])
                    hi = np.int64(blocks[bbase + ((key + 1) >> 8)]) + np.int64(offsets[base + key + 1])
                    for j in range(lo, hi):
                        if use_inline:
                            d = _popcount((words[j, 0] if i == 0 else inline[i - 1, j]) ^ q0)
                            if d > t:
                                continue
                            row = j if i == 0 else np.int64(positions[i - 1, j])
                        else:
                            row = j if i == 0 else np.int64(positions[i - 1, j])
                            d = 0
                            for w in range(nwords):
                                d += _popcount(words[row, w] ^ queries[q, w])
                            if d > t:
                                continue
                        seen = False
                        for i2 in range(i):
                            if radii[i2] >= 0:
                                sk = _key(words, row, sub_start[i2], sub_len[i2])
                                if _popcount(np.uint64(sk ^ qkeys[i2])) <= radii[i2]:
                                    seen = True
                                    break
                        if not seen:
                            count = _emit(rows, dists, count, row, d)
                    # Next combination of rr bit positions out of k (lexicographic).
                    if rr == 0:
                        break
                    a = rr - 1
                    while a >= 0 and combo[a] == k - rr + a:
                        a -= 1
                    if a < 0:
                        break
                    combo[a] += 1
                    for b in range(a + 1, rr):
                        combo[b] = combo[b - 1] + 1
        starts[q + 1] = count
    return count
