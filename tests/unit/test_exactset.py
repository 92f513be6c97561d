"""ExactHashSet against a plain dict of digest -> ids. Digests are synthetic random bytes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.exactset import ExactHashSet
from detector.index_file import IndexFileError

FAST = settings(max_examples=30, deadline=None)


def reference(digests: npt.NDArray[np.uint8], ids: npt.NDArray[np.int64]) -> dict[bytes, list[int]]:
    out: dict[bytes, list[int]] = defaultdict(list)
    for digest, i in zip(digests, ids.tolist(), strict=True):
        out[digest.tobytes()].append(i)
    return {k: sorted(v) for k, v in out.items()}


def digests_with_duplicates(rng: np.random.Generator, n: int, width: int) -> npt.NDArray[np.uint8]:
    out = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
    if n > 1:
        out[rng.integers(0, n, n // 10 + 1)] = out[rng.integers(0, n, n // 10 + 1)]
        # Digests sharing their first 8 bytes exercise the comparison of later words.
        out[rng.integers(0, n, n // 10 + 1), :8] = out[0, :8]
    return out


@pytest.mark.parametrize("width", [16, 32])
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([0, 1, 2, 50, 3000]), big_ids=st.booleans())
@FAST
def test_lookup_matches_a_dict(width: int, seed: int, n: int, big_ids: bool) -> None:
    rng = np.random.default_rng(seed)
    digests = digests_with_duplicates(rng, n, width)
    ids = rng.integers(-(2**50) if big_ids else 0, 2**50 if big_ids else 100, size=n)
    s = ExactHashSet.build(digests, ids)
    expected = reference(digests, ids)
    assert len(s) == n
    absent = rng.integers(0, 256, size=(20, width), dtype=np.uint8)
    queries = np.concatenate([digests[:50], absent])
    for q in queries:
        want = expected.get(q.tobytes(), [])
        assert s.lookup(q.tobytes()) == want
        assert s.lookup(q) == want
        assert (q.tobytes() in s) == bool(want)
    assert s.lookup_batch(queries) == [expected.get(q.tobytes(), []) for q in queries]


@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 3))
@FAST
def test_changes(seed: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    digests = digests_with_duplicates(rng, 500, 16)
    ids = rng.integers(0, 400, size=500)
    s = ExactHashSet.build(digests, ids)
    first = s
    original = digests[:20].copy()
    first_answers = [first.lookup(d.tobytes()) for d in original]
    for _ in range(steps):
        add = digests_with_duplicates(rng, int(rng.integers(0, 100)), 16)
        add_ids = rng.integers(0, 400, size=add.shape[0])
        remove = rng.integers(0, 500, size=int(rng.integers(0, 50)))
        s = s.with_changes(add, add_ids, remove)
        keep = ~np.isin(ids, remove)
        digests = np.concatenate([digests[keep], add])
        ids = np.concatenate([ids[keep], add_ids])
    expected = reference(digests, ids)
    assert len(s) == ids.shape[0]
    for d in np.concatenate([digests[:100], original]):
        assert s.lookup(d.tobytes()) == expected.get(d.tobytes(), [])
    # The set the changes started from is untouched: scans in flight keep their answers.
    assert [first.lookup(d.tobytes()) for d in original] == first_answers


@pytest.mark.parametrize("mmap", [True, False])
def test_save_and_load(tmp_path: Path, mmap: bool) -> None:
    rng = np.random.default_rng(11)
    digests = digests_with_duplicates(rng, 2000, 32)
    ids = rng.integers(0, 2**40, size=2000)
    s = ExactHashSet.build(digests, ids)
    path = tmp_path / "sha256.hgset"
    s.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["sha256.hgset"]
    loaded = ExactHashSet.load(path, mmap=mmap)
    assert len(loaded) == 2000
    assert loaded.width == 32
    for d in digests[:200]:
        assert loaded.lookup(d.tobytes()) == s.lookup(d.tobytes())
    changed = loaded.with_changes(digests[:1], [7], [int(ids[1])])
    assert 7 in changed.lookup(digests[0].tobytes())


def test_load_rejects_other_kinds(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(IndexFileError):
        ExactHashSet.load(path)


def test_bad_input_is_rejected_without_echoing_digests() -> None:
    rng = np.random.default_rng(2)
    digests = rng.integers(0, 256, size=(10, 16), dtype=np.uint8)
    s = ExactHashSet.build(digests)
    secret = digests[0].tobytes()
    for call in (
        lambda: s.lookup(secret[:15]),
        lambda: s.lookup(digests[0].astype(np.int32)),
        lambda: s.lookup_batch(digests[:, :8]),
        lambda: ExactHashSet.build(digests[:, :12]),
        lambda: ExactHashSet.build(digests, np.arange(3)),
    ):
        with pytest.raises(ValueError) as excinfo:
            call()
        assert secret.hex() not in str(excinfo.value)
    assert secret[:15] not in s
    assert "not a digest" not in s
