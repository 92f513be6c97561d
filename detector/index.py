"""Exact Hamming-distance search over fixed-width binary hashes (pHash, dHash, PDQ).

``HammingIndex`` answers "every stored entry within Hamming distance t of this code",
exactly as brute force would. ``BruteForceIndex`` is the slow, obviously-correct
reference with the same API; tests compare the two.

(First version: HammingIndex scans; the multi-index-hashing version replaces it.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from detector.index_file import read_arrays, write_arrays

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


class HammingIndex(BruteForceIndex):
    """Exact Hamming-distance index (placeholder: scans until the MIH version lands)."""

    __slots__ = ()

    _KIND = "hashguard.hamming"
