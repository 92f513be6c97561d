"""HammingIndex against the brute-force reference: same answers, always.

All codes are synthetic (seeded random). Sizes are small but above the point where the
index builds substring tables, and ``key_bits`` forces narrow tables so that the
multi-index path (not the scan fallback) answers most thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.hamming_kernels import mih_search, scan_search
from detector.index import BruteForceIndex, HammingIndex, _plan
from detector.index_file import IndexFileError

U8 = npt.NDArray[np.uint8]

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_codes(rng: np.random.Generator, n: int, nbytes: int) -> U8:
    return rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)


def flip(rng: np.random.Generator, code: U8, nflips: int) -> U8:
    out = code.copy()
    for bit in rng.choice(code.shape[0] * 8, size=nflips, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def queries_for(rng: np.random.Generator, codes: U8, count: int) -> U8:
    """Half near-duplicates of stored codes (0-40 flipped bits), half random codes."""
    nbytes = codes.shape[1]
    out = random_codes(rng, count, nbytes)
    if codes.shape[0]:
        for i in range(count // 2):
            stored = codes[rng.integers(codes.shape[0])]
            out[i] = flip(rng, stored, int(rng.integers(0, min(40, nbytes * 8) + 1)))
    return out


def with_duplicates(rng: np.random.Generator, codes: U8) -> U8:
    """Copy some rows over others so equal codes (under different ids) are common."""
    out = codes.copy()
    n = out.shape[0]
    if n > 1:
        src = rng.integers(0, n, size=n // 20 + 1)
        dst = rng.integers(0, n, size=n // 20 + 1)
        out[dst] = out[src]
    return out


def assert_same(fast: Any, reference: BruteForceIndex, queries: U8, t: int) -> None:
    expected = [reference.search(q, t) for q in queries]
    assert [fast.search(q, t) for q in queries] == expected
    assert fast.search_batch(queries, t) == expected


@pytest.mark.parametrize("nbytes", [8, 32])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
@FAST
def test_matches_brute_force(nbytes: int, seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    bits = nbytes * 8
    n = data.draw(st.sampled_from([0, 1, 300, 5000]), label="n")
    key_bits = data.draw(st.sampled_from([None, 8, 10]), label="key_bits")
    codes = with_duplicates(rng, random_codes(rng, n, nbytes))
    ids = rng.integers(-(2**40), 2**40, size=n) if data.draw(st.booleans(), label="big ids") else None
    if ids is not None and n > 2:
        ids[: n // 3] = ids[n // 3 : 2 * (n // 3)]  # duplicated ids are allowed
    fast = HammingIndex.build(codes, ids, key_bits=key_bits)
    reference = BruteForceIndex.build(codes, ids)
    assert len(fast) == n
    assert fast.bits == bits
    t = data.draw(st.one_of(st.integers(0, bits // 4), st.integers(0, bits)), label="t")
    assert_same(fast, reference, queries_for(rng, codes, 12), t)


@pytest.mark.parametrize(("nbytes", "t"), [(32, 31), (8, 10), (32, 0), (8, 0)])
def test_design_thresholds_use_tables_and_match(nbytes: int, t: int) -> None:
    rng = np.random.default_rng(1234 + nbytes + t)
    codes = with_duplicates(rng, random_codes(rng, 20_000, nbytes))
    fast = HammingIndex.build(codes)
    segment = fast._segments[0]
    assert segment.sub_len.shape[0] > 0, "a 20k-entry index should build tables"
    radii, _cost = _plan(tuple(segment.sub_len.tolist()), segment.n, segment.words.shape[1], segment.inline.shape[0] > 0, t)
    assert radii is not None, "the design threshold should be answered by the tables"
    assert_same(fast, BruteForceIndex.build(codes), queries_for(rng, codes, 60), t)


@given(seed=st.integers(0, 2**32 - 1), data=st.data())
@FAST
def test_kernel_exact_for_any_valid_radii(seed: int, data: st.DataObject) -> None:
    """Whatever radii the planner picks, any choice with sum(r + 1) > t is exact."""
    rng = np.random.default_rng(seed)
    nbytes = data.draw(st.sampled_from([8, 32]), label="nbytes")
    codes = with_duplicates(rng, random_codes(rng, 2000, nbytes))
    index = HammingIndex.build(codes, key_bits=data.draw(st.sampled_from([6, 9, 13]), label="k"))
    segment = index._segments[0]
    m = segment.sub_len.shape[0]
    radii = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=m, max_size=m), label="radii"), dtype=np.int64)
    covered = int((radii + 1).sum())
    if covered == 0:
        return
    t = data.draw(st.integers(0, covered - 1), label="t")
    queries = queries_for(rng, codes, 8).view(np.uint64)
    cap = 100_000
    got_rows, got_dists = np.empty(cap, np.int64), np.empty(cap, np.int64)
    want_rows, want_dists = np.empty(cap, np.int64), np.empty(cap, np.int64)
    got_starts, want_starts = np.empty(9, np.int64), np.empty(9, np.int64)
    args = (
        segment.words,
        segment.positions,
        segment.inline,
        segment.offsets,
        segment.off_base,
        segment.blocks,
        segment.block_base,
        segment.wide,
    )
    budgets = np.array([-1], dtype=np.int64)
    aborted = np.zeros(queries.shape[0], dtype=np.bool_)
    got = mih_search(
        *args,
        segment.sub_start,
        segment.sub_len,
        radii[None, :],
        budgets,
        queries,
        t,
        got_rows,
        got_dists,
        got_starts,
        aborted,
    )
    assert not aborted.any()
    want = scan_search(segment.words, queries, t, want_rows, want_dists, want_starts)
    assert got == want
    for q in range(queries.shape[0]):
        a, b = got_starts[q], got_starts[q + 1]
        c, d = want_starts[q], want_starts[q + 1]
        assert sorted(zip(got_rows[a:b], got_dists[a:b], strict=True)) == sorted(
            zip(want_rows[c:d], want_dists[c:d], strict=True)
        )


def test_many_matches_overflow_the_first_buffer() -> None:
    codes = np.zeros((6000, 32), dtype=np.uint8)  # every entry identical
    fast = HammingIndex.build(codes)
    hits = fast.search(bytes(32), 0)
    assert hits == [(i, 0) for i in range(6000)]
    assert fast.search_batch(np.zeros((3, 32), np.uint8), 5) == [hits] * 3


@pytest.mark.parametrize("nbytes", [8, 32])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
@FAST
def test_changes_match_a_rebuilt_reference(nbytes: int, seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    n = data.draw(st.sampled_from([0, 50, 6000]), label="n")
    codes = with_duplicates(rng, random_codes(rng, n, nbytes))
    ids = rng.integers(0, max(n, 1) * 2, size=n)  # ids collide, on purpose
    fast = HammingIndex.build(codes, ids, key_bits=data.draw(st.sampled_from([None, 8]), label="k"))
    reference = BruteForceIndex.build(codes, ids)
    for step in range(data.draw(st.integers(1, 4), label="steps")):
        add_n = data.draw(st.sampled_from([0, 3, 700, 5000]), label=f"add {step}")
        add_codes = queries_for(rng, codes, add_n)
        add_ids = rng.integers(0, max(n, 1) * 2, size=add_n)
        pool = np.concatenate([ids, add_ids, [10**12]])  # includes an id that is absent
        remove = rng.choice(pool, size=data.draw(st.integers(0, 200), label=f"rm {step}"))
        fast = fast.with_changes(add_codes, add_ids, remove)
        reference = reference.with_changes(add_codes, add_ids, remove)
        ids = np.concatenate([ids, add_ids])
        assert len(fast) == len(reference)
    t = data.draw(st.integers(0, nbytes * 8 // 3), label="t")
    all_codes = np.concatenate([codes, random_codes(rng, 1, nbytes)])
    assert_same(fast, reference, queries_for(rng, all_codes, 10), t)


def test_with_changes_leaves_the_old_index_untouched() -> None:
    rng = np.random.default_rng(7)
    codes = random_codes(rng, 5000, 32)
    old = HammingIndex.build(codes)
    before = old.search(codes[3], 31)
    new = old.with_changes(random_codes(rng, 10, 32), np.arange(10_000, 10_010), [3])
    assert old.search(codes[3], 31) == before
    assert (3, 0) not in new.search(codes[3], 31)
    assert len(old) == 5000
    assert len(new) == 5009
    assert old.with_changes() is old


@pytest.mark.parametrize("nbytes", [8, 32])
def test_saved_index_answers_the_same(tmp_path: Path, nbytes: int) -> None:
    rng = np.random.default_rng(99)
    codes = with_duplicates(rng, random_codes(rng, 9000, nbytes))
    ids = rng.integers(0, 2**62, size=9000)
    index = HammingIndex.build(codes, ids).with_changes(random_codes(rng, 100, nbytes), np.arange(100), ids[:50])
    path = tmp_path / "list.hgidx"
    index.save(path)
    assert not [p for p in tmp_path.iterdir() if p != path], "no temp file may be left behind"
    queries = queries_for(rng, codes, 40)
    t = nbytes * 8 // 8
    expected = index.search_batch(queries, t)
    for mmap in (True, False):
        loaded = HammingIndex.load(path, mmap=mmap)
        assert len(loaded) == len(index)
        assert loaded.bits == index.bits
        assert [loaded.search(q, t) for q in queries] == expected
        assert loaded.search_batch(queries, t) == expected
    mapped = HammingIndex.load(path, mmap=True)
    assert not mapped._segments[0].words.flags.writeable
    changed = mapped.with_changes(codes[:2], np.array([-1, -2]), [int(ids[60])])
    assert changed.search(codes[0], 0)[0][1] == 0


def test_load_rejects_other_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an index at all")
    with pytest.raises(IndexFileError):
        HammingIndex.load(junk)
    brute = tmp_path / "brute"
    BruteForceIndex.build(np.zeros((2, 8), np.uint8)).save(brute)
    with pytest.raises(IndexFileError):
        HammingIndex.load(brute)


def test_bytes_and_array_queries_agree() -> None:
    rng = np.random.default_rng(5)
    codes = random_codes(rng, 5000, 32)
    index = HammingIndex.build(codes)
    assert index.search(codes[10].tobytes(), 31) == index.search(codes[10], 31)
    assert index.search(codes[10], 31)[0] == (10, 0)


@pytest.mark.parametrize("nbytes", [1, 3, 12, 20, 64])
def test_other_widths(nbytes: int) -> None:
    rng = np.random.default_rng(nbytes)
    codes = with_duplicates(rng, random_codes(rng, 5000, nbytes))
    fast = HammingIndex.build(codes)
    reference = BruteForceIndex.build(codes)
    for t in (0, nbytes, nbytes * 3, nbytes * 8):
        assert_same(fast, reference, queries_for(rng, codes, 6), t)


def test_errors_never_echo_hash_values() -> None:
    rng = np.random.default_rng(3)
    codes = random_codes(rng, 100, 32)
    index = HammingIndex.build(codes)
    secret = codes[0].tobytes()
    bad_calls = [
        lambda: index.search(secret[:31], 3),
        lambda: index.search(secret, -1),
        lambda: index.search(codes[0].astype(np.int16), 3),
        lambda: index.search_batch(codes[:, :16], 3),
        lambda: HammingIndex.build(codes.astype(np.int32)),
        lambda: HammingIndex.build(codes, np.arange(5)),
        lambda: index.with_changes(codes[:3, :8], np.arange(3)),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError) as excinfo:
            call()
        message = str(excinfo.value)
        assert secret.hex() not in message
        assert secret[:8].hex() not in message
        assert str(list(secret[:4]))[1:-1] not in message
