"""Exact-match set of cryptographic digests (MD5, SHA-256) with ids, close to raw size.

A Python ``set`` of 10M 16-byte ``bytes`` costs about 1 GB (each ``bytes`` object carries
~33 bytes of header plus the set's slot). Here the digests live in one sorted
``(n, width // 8)`` array of big-endian uint64 words, so lexicographic byte order equals
numeric order word by word, and a lookup is a binary search: memory is the raw digests plus
the ids, and the arrays can be memory-mapped by several workers.
"""

from __future__ import annotations

import os
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from detector.index_file import read_arrays, write_arrays

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]

_BE_U64 = np.dtype(">u8")


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


def _to_words(digests: U8Array) -> U64Array:
    """Big-endian uint64 words in native byte order, so numeric order == byte order."""
    return digests.view(_BE_U64).astype(np.uint64)


def _sort(words: U64Array, ids: I64Array) -> tuple[U64Array, I64Array]:
    # lexsort keys are given least-significant first; ids last-resort key keeps the
    # layout deterministic for equal digests.
    keys = [ids] + [words[:, j] for j in range(words.shape[1] - 1, -1, -1)]
    order = np.lexsort(keys)
    return np.ascontiguousarray(words[order]), np.ascontiguousarray(ids[order])


class ExactHashSet:
    """Sorted-array digest set: ``lookup(digest) -> [ids]``.

    Immutable: :meth:`with_changes` returns a new set so a scan in flight keeps using the
    old one while the caller swaps a reference.
    """

    __slots__ = ("_words", "_ids", "width")

    _KIND = "hashguard.exactset"

    def __init__(self, words: U64Array, ids: I64Array, width: int) -> None:
        self._words = words
        self._ids = ids
        self.width: int = width

    @classmethod
    def build(cls, digests: Any, ids: Any = None) -> Self:
        array = _as_digests(digests)
        words, sorted_ids = _sort(_to_words(array), _as_ids(ids, array.shape[0]))
        return cls(words, sorted_ids, array.shape[1])

    def __len__(self) -> int:
        return int(self._words.shape[0])

    def _range(self, digest: Any) -> tuple[int, int]:
        if isinstance(digest, bytes | bytearray | memoryview):
            raw = np.frombuffer(digest, dtype=np.uint8)
        else:
            raw = np.asarray(digest, dtype=np.uint8)
        if raw.shape != (self.width,):
            raise ValueError(f"a digest must be {self.width} bytes")
        key = raw.view(_BE_U64)
        lo, hi = 0, self._words.shape[0]
        for j in range(self._words.shape[1]):
            column = self._words[lo:hi, j]
            a = int(np.searchsorted(column, key[j], side="left"))
            b = int(np.searchsorted(column, key[j], side="right"))
            lo, hi = lo + a, lo + b
            if lo == hi:
                break
        return lo, hi

    def lookup(self, digest: Any) -> list[int]:
        lo, hi = self._range(digest)
        return self._ids[lo:hi].tolist()  # type: ignore[no-any-return]

    def lookup_batch(self, digests: Any) -> list[list[int]]:
        array = _as_digests(digests, self.width)
        return [self.lookup(d) for d in array]

    def __contains__(self, digest: object) -> bool:
        lo, hi = self._range(digest)
        return hi > lo

    def with_changes(self, add_digests: Any = None, add_ids: Any = None, remove_ids: Any = None) -> Self:
        words, ids = self._words, self._ids
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
            meta={"width": self.width},
            arrays={"words": self._words, "ids": self._ids},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> Self:
        meta, arrays = read_arrays(path, kind=cls._KIND, mmap=mmap)
        return cls(arrays["words"], arrays["ids"], int(meta["width"]))
