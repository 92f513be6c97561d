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


# A block of 256 buckets whose entries overflow uint16 in-block offsets (only where
# 65536+ entries share a block: masses of duplicates or a shared prefix) keeps its bucket
# starts in the side array ``wide`` instead; its ``blocks`` slot then holds WIDE_FLAG | row.
# Before this, one such block widened every table's offsets to uint32 (+185 MB at 10M).
WIDE_FLAG = np.uint32(1 << 31)
_WIDE_MASK = np.int64((1 << 31) - 1)


@njit(inline="always")
def _next_combination(combo: Any, rr: Any, k: Any) -> bool:
    """Advance ``combo[:rr]`` to the next combination of rr bit positions out of k (lexicographic);
    False when it was the last one (the probes of one radius are every such flip of the query's key)."""
    if rr == 0:
        return False
    a = rr - 1
    while a >= 0 and combo[a] == k - rr + a:
        a -= 1
    if a < 0:
        return False
    combo[a] += 1
    for b in range(a + 1, rr):
        combo[b] = combo[b - 1] + 1
    return True


@njit(inline="always")
def _start(offsets: Any, blocks: Any, wide: Any, base: Any, bbase: Any, key: Any) -> Any:
    """Absolute row where bucket ``key`` of one table starts (see mih_search)."""
    b = np.int64(blocks[bbase + (key >> 8)])
    if b >= np.int64(WIDE_FLAG):
        return np.int64(wide[(b & _WIDE_MASK) * 256 + (key & 255)])
    return b + np.int64(offsets[base + key])


@njit(inline="always")
def _block_start(blocks: Any, wide: Any, bbase: Any, blk: Any) -> Any:
    """Absolute row where block ``blk`` of one table starts: ``blocks`` alone (a block's first
    in-block offset is 0), so pricing a probe by its block touches only cached memory."""
    b = np.int64(blocks[bbase + blk])
    if b >= np.int64(WIDE_FLAG):
        return np.int64(wide[(b & _WIDE_MASK) * 256])
    return b


@njit(cache=True, nogil=True)
def mih_search(
    words: Any,
    positions: Any,
    inline: Any,
    offsets: Any,
    off_base: Any,
    blocks: Any,
    block_base: Any,
    wide: Any,
    sub_start: Any,
    sub_len: Any,
    radii: Any,
    budgets: Any,
    queries: Any,
    t: int,
    rows: Any,
    dists: Any,
    starts: Any,
    aborted: Any,
) -> int:
    """Multi-index hashing search (Norouzi, Punjani, Fleet), exact.

    Table ``i`` indexes bits ``[sub_start[i], sub_start[i] + sub_len[i])``. If the tables
    used for a query (``radii[q, i] >= 0``) satisfy ``sum(radii[q, i] + 1) > t``, every code
    within ``t`` of the query is within ``radii[q, i]`` of it on at least one used table's
    substring (otherwise the distance would be at least that sum), so probing every
    bucket within that radius of the query's key in each used table finds every match;
    each candidate is then verified on the full code, so nothing beyond ``t`` comes back.
    ``radii`` is ``(nq, m)``, or ``(1, m)`` for one plan shared by every query.

    ``budgets[q]`` (or ``budgets[0]`` for all) caps the candidates a query may verify
    (-1: no cap). A query past its cap is abandoned: its hits are dropped, ``aborted[q]``
    set, and the caller re-plans it with the real bucket sizes (:func:`plan_query`). This is
    how skewed data is noticed at no cost to ordinary queries: one comparison per bucket.

    Table 0 holds the codes in its own bucket order (``positions`` has rows for tables
    1..m-1 only), which saves one positions array and makes table 0's verification reads
    sequential. For one-word codes, ``inline`` holds each table's codes in table order, so
    verification never leaves the bucket.

    Bucket bounds are two-level to halve their memory: bucket ``key`` of table ``i`` starts
    at ``blocks[block_base[i] + (key >> 8)] + offsets[off_base[i] + key]``, where
    ``offsets`` is uint16 relative to its block of 256 buckets; a block holding 65536+
    entries is flagged in ``blocks`` and keeps absolute starts in ``wide`` (:func:`_start`).
    ``blocks`` is small enough to stay in cache, so a probe still costs one miss for its
    bounds.

    A match is reported only by the first used table that can see it, so results need no
    deduplication pass: that check runs only for verified matches, which are rare.
    Output as in :func:`scan_search`.
    """
    nwords = words.shape[1]
    m = sub_start.shape[0]
    use_inline = inline.shape[0] > 0
    shared_plan = radii.shape[0] == 1
    shared_budget = budgets.shape[0] == 1
    starts[0] = 0
    count = 0
    qkeys = np.empty(m, dtype=np.int64)
    combo = np.empty(64, dtype=np.int64)
    for q in range(queries.shape[0]):
        plan = radii[0] if shared_plan else radii[q]
        budget = budgets[0] if shared_budget else budgets[q]
        seen_candidates = 0
        stop = False
        aborted[q] = False
        for i in range(m):
            qkeys[i] = _key(queries, q, sub_start[i], sub_len[i])
        q0 = queries[q, 0]
        for i in range(m):
            radius = plan[i]
            if radius < 0 or stop:
                continue
            k = sub_len[i]
            base = off_base[i]
            bbase = block_base[i]
            qk = qkeys[i]
            for rr in range(radius + 1):
                if stop:
                    break
                for a in range(rr):
                    combo[a] = a
                while True:
                    key = qk
                    for a in range(rr):
                        key ^= np.int64(1) << combo[a]
                    lo = _start(offsets, blocks, wide, base, bbase, key)
                    hi = _start(offsets, blocks, wide, base, bbase, key + 1)
                    seen_candidates += hi - lo
                    if budget >= 0 and seen_candidates > budget:
                        stop = True
                        break
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
                            if plan[i2] >= 0:
                                sk = _key(words, row, sub_start[i2], sub_len[i2])
                                if _popcount(np.uint64(sk ^ qkeys[i2])) <= plan[i2]:
                                    seen = True
                                    break
                        if not seen:
                            count = _emit(rows, dists, count, row, d)
                    if not _next_combination(combo, rr, k):
                        break
        if stop:
            count = starts[q]
            aborted[q] = True
        starts[q + 1] = count
    return count


@njit(cache=True, nogil=True)
def plan_query(
    offsets: Any,
    blocks: Any,
    wide: Any,
    off_base: Any,
    block_base: Any,
    sub_start: Any,
    sub_len: Any,
    max_radius: Any,
    cand_cost: Any,
    query: Any,
    t: int,
    c_miss: float,
    heavy_block: Any,
    scan_cost: float,
    radii: Any,
) -> float:
    """Per-query radii from the REAL sizes of the buckets the query would probe.

    For each table and each radius up to ``max_radius[i]`` the probes are enumerated and
    priced: a probe costs a miss for its bounds, plus its candidates. A probe whose block of
    256 buckets holds at most ``heavy_block[i]`` entries is priced from the block's mean
    (the block bounds sit in cache; its buckets cannot be heavy); one in a heavier block
    reads its bucket's exact size. Then the same dynamic programme as the uniform planner
    (``sum(radius + 1) > t`` over used tables, least cost) picks the radii, so a table
    whose nearby buckets are crowded is skipped, or probed below the radius that would
    reach them, and the others carry the bound. Returns the plan's modelled cost, or -1.0
    when no plan beats ``scan_cost`` (the caller scans). Exactness never depends on the
    prices: any radii meeting the bound are exact.
    """
    m = sub_start.shape[0]
    need = t + 1
    rmax = 0
    for i in range(m):
        rmax = max(rmax, max_radius[i])
    cost = np.full((m, rmax + 1), np.inf)
    combo = np.empty(64, dtype=np.int64)
    qw = query.reshape(1, -1)
    for i in range(m):
        k = sub_len[i]
        base = off_base[i]
        bbase = block_base[i]
        qk = _key(qw, 0, sub_start[i], k)
        total = 0.0
        for rr in range(max_radius[i] + 1):
            for a in range(rr):
                combo[a] = a
            while True:
                key = qk
                for a in range(rr):
                    key ^= np.int64(1) << combo[a]
                blk = key >> 8
                b0 = _block_start(blocks, wide, bbase, blk)
                if k >= 8:
                    b1 = _block_start(blocks, wide, bbase, blk + 1)
                else:  # fewer than 256 buckets: one block, bounded by the table's end
                    b1 = _start(offsets, blocks, wide, base, bbase, np.int64(1) << k)
                if b1 - b0 <= heavy_block[i]:
                    size = (b1 - b0) / min(256, np.int64(1) << k)
                    total += c_miss * (1.0 + min(1.0, size)) + size * cand_cost[i]
                else:
                    exact = _start(offsets, blocks, wide, base, bbase, key + 1) - _start(offsets, blocks, wide, base, bbase, key)
                    total += c_miss * (2.0 if exact > 0 else 1.0) + exact * cand_cost[i]
                if not _next_combination(combo, rr, k):
                    break
            cost[i, rr] = total
            if total > scan_cost:
                break
    # best[s]: least cost covering min(s, need) with the tables so far; choice for backtracking.
    best = np.full(need + 1, np.inf)
    best[0] = 0.0
    choice = np.full((m, need + 1), -2, dtype=np.int64)
    prev = np.zeros((m, need + 1), dtype=np.int64)
    for i in range(m):
        nxt = np.full(need + 1, np.inf)
        for s in range(need + 1):
            if best[s] == np.inf:
                continue
            if best[s] < nxt[s]:
                nxt[s] = best[s]
                choice[i, s] = -1
                prev[i, s] = s
            for r in range(max_radius[i] + 1):
                c = cost[i, r]
                if c == np.inf:
                    break
                s2 = min(need, s + r + 1)
                if best[s] + c < nxt[s2]:
                    nxt[s2] = best[s] + c
                    choice[i, s2] = r
                    prev[i, s2] = s
        best = nxt
    if best[need] == np.inf or best[need] >= scan_cost:
        return -1.0
    s = need
    for i in range(m - 1, -1, -1):
        radii[i] = choice[i, s]
        s = prev[i, s]
    return float(best[need])
