"""Look back: which recently scanned uploads match hashes a new list version adds.

Pure matching over arrays; the stored upload hashes and the added entries come from
``hashsets.uploads``, which also records what it finds. Runs after an import commits
(``hashguard hashsets import``), once per version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from detector.index import HammingIndex


@dataclass(frozen=True, kw_only=True, slots=True)
class Found:
    key: int  # the caller's index of the stored upload hash
    row_id: int
    distance: int


def find(
    added: Iterable[tuple[int, bytes]], stored: Iterable[tuple[int, bytes]], *, width: int, threshold: int, exact: bool
) -> Iterator[Found]:
    """Every (stored upload, added entry) pair within ``threshold`` (exact tools: equal)."""
    entries = list(added)
    if not entries:
        return
    if exact:
        by_hash: dict[bytes, list[int]] = {}
        for row_id, value in entries:
            by_hash.setdefault(value, []).append(row_id)
        for key, value in stored:
            for row_id in by_hash.get(value, ()):
                yield Found(key=key, row_id=row_id, distance=0)
        return
    codes = np.frombuffer(b"".join(v for _, v in entries), dtype=np.uint8).reshape(-1, width)
    index = HammingIndex.build(codes, np.array([r for r, _ in entries], dtype=np.int64))
    for key, value in stored:
        if len(value) != width:
            continue
        for row_id, distance in index.search(np.frombuffer(value, dtype=np.uint8), threshold):
            yield Found(key=key, row_id=int(row_id), distance=int(distance))
