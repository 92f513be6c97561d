"""The snapshot's list-level matching: which version a hit belongs to, per-list thresholds,
shadow lists and the allow-list, against the real index."""

from __future__ import annotations

import numpy as np

from detector.matcher import LoadedVersion, ToolEntries, build_snapshot
from detector.tools.cryptographic import Md5Tool
from detector.tools.pdq import PdqTool

PDQ, MD5 = PdqTool(), Md5Tool()
RNG = np.random.default_rng(7)
CODES = RNG.integers(0, 256, size=(6, 32), dtype=np.uint8)


def flip(code: np.ndarray, bits: int) -> bytes:
    out = code.copy()
    for i in range(bits):
        out[i // 8] ^= 1 << (i % 8)
    return out.tobytes()


def snapshot(*, threshold_b: int | None = None, allow: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    versions = [
        LoadedVersion(hashset="a", version=3, tool="pdq", entries=3),
        LoadedVersion(hashset="b", version=7, tool="pdq", entries=2, threshold=threshold_b),
        LoadedVersion(hashset="trial", version=1, tool="pdq", entries=1, status="shadow"),
    ]
    # Database row ids are arbitrary; rows are grouped by list (spans) as the loader writes them.
    entries = {
        "pdq": ToolEntries(
            ids=np.array([900, 901, 950, 20, 21, 5000], dtype=np.int64), codes=CODES, spans=((0, 0), (3, 1), (5, 2))
        )
    }
    benign = None if allow is None else {"pdq": ToolEntries(ids=np.array([1], dtype=np.int64), codes=allow.reshape(1, 32))}
    return build_snapshot([PDQ, MD5], versions, entries, allow=benign)


def test_hits_name_the_list_version_held_and_the_database_row() -> None:
    snap = snapshot()
    [hit] = snap.match({"pdq": flip(CODES[4], 5)}, {"pdq": 31})
    assert (hit.row_id, hit.hashset, hit.hashset_version, hit.distance, hit.shadow) == (21, "b", 7, 5, False)
    [shadow] = snap.match({"pdq": CODES[5].tobytes()}, {"pdq": 31})
    assert (shadow.row_id, shadow.hashset, shadow.shadow) == (5000, "trial", True)
    assert snap.entries_by_tool() == {"pdq": 6, "md5": 0}


def test_a_list_threshold_tightens_or_widens_only_that_list() -> None:
    tight = snapshot(threshold_b=4)
    assert tight.match({"pdq": flip(CODES[4], 5)}, {"pdq": 31}) == []
    assert [h.row_id for h in tight.match({"pdq": flip(CODES[0], 5)}, {"pdq": 31})] == [900]
    wide = snapshot(threshold_b=40)
    assert [h.row_id for h in wide.match({"pdq": flip(CODES[3], 36)}, {"pdq": 31})] == [20]
    assert wide.match({"pdq": flip(CODES[0], 36)}, {"pdq": 31}) == []  # list a keeps the tool's 31


def test_an_allow_listed_hash_suppresses_only_the_entries_it_collides_with() -> None:
    benign = np.frombuffer(flip(CODES[1], 6), dtype=np.uint8)
    snap = snapshot(allow=benign)
    assert snap.match({"pdq": benign.tobytes()}, {"pdq": 31}) == []  # the benign image itself
    assert snap.match({"pdq": flip(CODES[1], 3)}, {"pdq": 31}) == []  # near it and near entry 901
    # Far from the benign image: entry 901 still matches.
    far = CODES[1].copy()
    far[20:] ^= 0xFF
    assert (
        snapshot(allow=np.frombuffer(far.tobytes(), dtype=np.uint8)).match({"pdq": CODES[1].tobytes()}, {"pdq": 31})[0].row_id
        == 901
    )


def test_an_allow_listed_hash_never_hides_a_copy_of_the_listed_picture() -> None:
    # A benign picture 25 bits from entry 901 collides with it; an exact copy of the listed picture
    # (and one nearer to it than to the benign hash) must still match.
    benign = np.frombuffer(flip(CODES[1], 25), dtype=np.uint8)
    snap = snapshot(allow=benign)
    [exact] = snap.match({"pdq": CODES[1].tobytes()}, {"pdq": 31})
    assert (exact.row_id, exact.distance) == (901, 0)
    assert [h.row_id for h in snap.match({"pdq": flip(CODES[1], 10)}, {"pdq": 31})] == [901]  # 10 to it, 15 to benign
    assert snap.match({"pdq": flip(CODES[1], 20)}, {"pdq": 31}) == []  # 20 to it, 5 to benign: the benign picture
