"""Exact-match set of cryptographic digests (MD5, SHA-256) with ids, close to raw size.

A Python ``set`` of 10M 16-byte ``bytes`` costs about 1 GB (each ``bytes`` object carries
~33 bytes of header plus the set's slot). Here the digests live in one sorted
``(n, width // 8)`` int64 array (each 8-byte group read as a big-endian signed integer;
the order only has to be consistent between sort and search, not equal to byte order, and
``struct.unpack`` then turns a query into the kernel's key without an array allocation). A lookup is a numba binary search (about 24 steps for 10M,
the first dozen in cache): memory is the raw digests plus the ids (int32 when they fit),
and the arrays can be memory-mapped by several workers.

Why not a hash table: the sorted array needs no slack, returns every id of a duplicated
digest as one contiguous range, and merges additions in O(n) without rehashing.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from numba import njit

from detector.index_file import IndexFileError, read_arrays, write_arrays

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
WordArray = npt.NDArray[np.int64]

_BE_I64 = np.dtype(">i8")


@njit(cache=True, nogil=True)
def _find(words: Any, key: Any) -> tuple[int, int]:
    """[lo, hi) rows of ``words`` equal to ``key`` (rows sorted lexicographically)."""
    nwords = words.shape[1]
    lo, hi = 0, words.shape[0]
    # Lower bound: first row >= key.
    a, b = lo, hi
    while a < b:
        mid = (a + b) >> 1
        less = False
        for w in range(nwords):
            if words[mid, w] != key[w]:
                less = words[mid, w] < key[w]
                break
        if less:
            a = mid + 1
        else:
            b = mid
    first = a
    # Upper bound: first row > key; equal rows are rare (duplicates), so walk.
    last = first
    while last < hi:
        equal = True
        for w in range(nwords):
            if words[last, w] != key[w]:
                equal = False
                break
        if not equal:
            break
        last += 1
    return first, last


@njit(cache=True, nogil=True)
def _find_batch(words: Any, keys: Any) -> Any:
    out = np.empty((keys.shape[0], 2), dtype=np.int64)
    for q in range(keys.shape[0]):
        lo, hi = _find(words, keys[q])
        out[q, 0] = lo
        out[q, 1] = hi
    return out


def _as_digests(digests: Any, width: int | None = None) -> U8Array:
    array = np.ascontiguousarray(digests)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError("digests must be a 2-D uint8 array of shape (n, width)")
    if width is not None and array.shape[1] != width:
        raise ValueError(f"digests must be {width} bytes wide, got {array.shape[1]}")
    if array.shape[1] == 0 or array.shape[1] % 8 != 0:
        raise ValueError("digest width must be a positive multiple of 8 bytes")
    return array


def _as_ids(ids: Any, n: int) -> I64Array:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    array = np.asarray(ids)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ids must be an integer array of shape ({n},)")
    return array.astype(np.int64, copy=False)


def _to_words(digests: U8Array) -> WordArray:
    """Digests as native int64 words, matching ``struct.unpack(">...q")`` of the bytes."""
    return digests.view(_BE_I64).astype(np.int64)


def _narrow_ids(ids: I64Array) -> npt.NDArray[np.signedinteger[Any]]:
    if ids.size and np.iinfo(np.int32).min <= ids.min() and ids.max() <= np.iinfo(np.int32).max:
        return ids.astype(np.int32)
    return ids


def _sort(words: WordArray, ids: I64Array) -> tuple[WordArray, npt.NDArray[np.signedinteger[Any]]]:
    # lexsort keys are given least-significant first; ids last-resort key keeps the
    # layout deterministic for equal digests.
    keys = [ids] + [words[:, j] for j in range(words.shape[1] - 1, -1, -1)]
    order = np.lexsort(keys)
    return np.ascontiguousarray(words[order]), _narrow_ids(np.ascontiguousarray(ids[order]))


class ExactHashSet:
    """Sorted-array digest set: ``lookup(digest) -> [ids]``.

    Immutable: :meth:`with_changes` returns a new set so a scan in flight keeps using the
    old one while the caller swaps a reference.
    """

    __slots__ = ("_ids", "_unpack", "_words", "width")

    _KIND = "hashguard.exactset"
    _FORMAT = 1

    def __init__(self, words: WordArray, ids: npt.NDArray[np.signedinteger[Any]], width: int) -> None:
        self._words = words
        self._ids = ids
        self.width: int = width
        self._unpack = struct.Struct(f">{width // 8}q").unpack
        _find(self._words[:1], np.zeros(self._words.shape[1], np.int64))  # compile or load from cache now

    @classmethod
    def build(cls, digests: Any, ids: Any = None) -> Self:
        array = _as_digests(digests)
        words, sorted_ids = _sort(_to_words(array), _as_ids(ids, array.shape[0]))
        return cls(words, sorted_ids, array.shape[1])

    def __len__(self) -> int:
        return int(self._words.shape[0])

    def _key(self, digest: Any) -> tuple[int, ...]:
        if not isinstance(digest, bytes | bytearray | memoryview):
            array = np.asarray(digest)
            if array.dtype != np.uint8:
                raise ValueError("a digest must be bytes or a uint8 array")
            digest = array.tobytes()
        if len(digest) != self.width:
            raise ValueError(f"a digest must be {self.width} bytes, got {len(digest)}")
        key: tuple[int, ...] = self._unpack(digest)
        return key

    def lookup(self, digest: Any) -> list[int]:
        """Every id stored under ``digest`` (bytes or uint8 array), in ascending order; [] if none."""
        lo, hi = _find(self._words, self._key(digest))
        if lo == hi:
            return []
        ids: list[int] = self._ids[lo:hi].tolist()
        return ids

    def lookup_batch(self, digests: Any) -> list[list[int]]:
        """:meth:`lookup` for each row of a ``(q, width)`` uint8 array, in one kernel call."""
        ranges = _find_batch(self._words, _to_words(_as_digests(digests, self.width)))
        ids = self._ids
        return [ids[lo:hi].tolist() if hi > lo else [] for lo, hi in ranges.tolist()]

    def __contains__(self, digest: object) -> bool:
        try:
            key = self._key(digest)
        except ValueError:
            return False  # a value of another width cannot be in the set
        lo, hi = _find(self._words, key)
        return hi > lo

    def with_changes(self, add_digests: Any = None, add_ids: Any = None, remove_ids: Any = None) -> Self:
        """A new set with ``remove_ids`` retracted (every entry with such an id), then additions.

        A full re-sort: about a second for 10M digests, rare next to daily list updates, and
        it keeps the layout a single sorted array (no delta to search).
        """
        words, ids = self._words, self._ids.astype(np.int64)
        if remove_ids is not None and len(remove_ids) > 0:
            keep = ~np.isin(ids, np.asarray(remove_ids, dtype=np.int64))
            words, ids = words[keep], ids[keep]
        if add_digests is not None:
            extra = _as_digests(add_digests, self.width)
            words = np.concatenate([words, _to_words(extra)])
            ids = np.concatenate([ids, _as_ids(add_ids, extra.shape[0])])
        words, ids = _sort(words, ids)
        return type(self)(words, ids, self.width)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_arrays(
            path,
            kind=self._KIND,
            meta={"width": self.width, "format": self._FORMAT},
            arrays={"words": self._words, "ids": self._ids},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> Self:
        meta, arrays = read_arrays(path, kind=cls._KIND, mmap=mmap)
        if meta.get("format") != cls._FORMAT:
            raise IndexFileError(f"{os.fspath(path)!r} was written by an incompatible version")
        return cls(arrays["words"], arrays["ids"], int(meta["width"]))
