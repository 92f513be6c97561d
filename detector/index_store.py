"""Built indexes on disk (HASHGUARD_INDEX_DIR), so a start maps a file instead of reading every row.

One pair of files per tool and list fingerprint: ``<tool>.<key>.index`` (the index, written by
its own ``save``) and ``<tool>.<key>.rows`` (the row table and the fingerprint: each list's
hashset id, version id and lineage). ``key`` is a digest of that fingerprint. Both carry a
crc32 of their data (``detector.index_file``), verified before use.

At start the loader asks ``find`` for the file of a tool: one whose every list is current, or
behind (each held version in the current lineage: caught up by deltas), is memory-mapped; any
other (damaged, another format, a list replaced) is refused, logged and rebuilt. ``lock``
serialises the worker processes of one replica: the first builds and writes, the others wait
and then map the same file, so the page cache holds one copy for all. Files are written
atomically (temp, fsync, rename); replaced ones are unlinked, which is safe for a process that
still maps one (Linux keeps the pages until the last mapping goes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from detector.exactset import ExactHashSet
from detector.index import HammingIndex
from detector.index_file import IndexFileError, read_arrays, verify_file, write_arrays

log = logging.getLogger(__name__)

ROWS_KIND = "hashguard.rows"
FORMAT = 1


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class StoredList:
    hashset_id: int
    version_id: int
    lineage: tuple[int, ...]
    slot: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Stored:
    """A tool's index read from disk: the base (memory-mapped), its rows and what lists it holds."""

    path: Path
    base: HammingIndex | ExactHashSet
    ids: np.ndarray  # sorted row ids
    slots: np.ndarray
    lists: tuple[StoredList, ...]


def key_of(lists: Sequence[StoredList], scope: str) -> str:
    """The file key: the database's identity and each list's version and lineage."""
    data = json.dumps([scope, sorted((s.hashset_id, s.version_id, sorted(s.lineage)) for s in lists)]).encode()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder's lock file (blocking): one process of the replica builds at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def save(
    folder: Path,
    tool: str,
    base: HammingIndex | ExactHashSet,
    chunks: Sequence[tuple[np.ndarray, np.ndarray]],
    lists: Sequence[StoredList],
    scope: str,
) -> tuple[Path, int]:
    """Write a tool's base and row table; remove the tool's older files. Returns the index path and bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    key = key_of(lists, scope)
    index_path = folder / f"{tool}.{key}.index"
    rows_path = folder / f"{tool}.{key}.rows"
    ids = np.concatenate([c[0] for c in chunks]) if chunks else np.empty(0, np.int64)
    slots = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0, np.int32)
    order = np.argsort(ids, kind="stable")
    base.save(index_path)
    # The rows file is written last: a file pair is complete once it exists.
    write_arrays(
        rows_path,
        kind=ROWS_KIND,
        meta={
            "format": FORMAT,
            "tool": tool,
            "exact": isinstance(base, ExactHashSet),
            "lists": [dataclasses.asdict(s) for s in lists],
            "scope": scope,
        },
        arrays={"ids": ids[order], "slots": slots[order].astype(np.int32)},
    )
    for old in folder.glob(f"{tool}.*"):
        if old.name not in (index_path.name, rows_path.name):
            old.unlink(missing_ok=True)
    return index_path, index_path.stat().st_size + rows_path.stat().st_size


def usable(lists: Sequence[StoredList], current: Mapping[int, tuple[int, tuple[int, ...]]]) -> bool:
    """True when every stored list is still current or behind (its version in the current lineage)."""
    return all(s.hashset_id in current and s.version_id in current[s.hashset_id][1] for s in lists)


def find(folder: Path, tool: str, current: Mapping[int, tuple[int, tuple[int, ...]]], scope: str) -> tuple[Stored | None, int]:
    """The tool's usable stored index, verified and mapped, or None; and how many files were refused.

    ``current``: hashset id -> (version id, lineage) of the tool's lists now.
    """
    refused = 0
    if not folder.is_dir():
        return None, 0
    candidates = sorted(folder.glob(f"{tool}.*.rows"), key=lambda p: p.stat().st_mtime, reverse=True)
    for rows_path in candidates:
        index_path = rows_path.with_suffix(".index")
        try:
            meta = verify_file(rows_path, kind=ROWS_KIND)
            if meta.get("format") != FORMAT or meta.get("tool") != tool:
                raise IndexFileError(f"{rows_path.name} is of another format")
            lists = tuple(StoredList(**{**s, "lineage": tuple(s["lineage"])}) for s in meta["lists"])
            if key_of(lists, str(meta.get("scope"))) not in rows_path.name:
                raise IndexFileError(f"{rows_path.name} does not hold what its name says")
            if meta.get("scope") != scope:
                continue  # another database's (a shared folder): not ours to use or remove
            if not usable(lists, current):
                continue  # a list replaced since: not damaged, just not catchable; rebuilt and removed later
            kind = ExactHashSet if meta.get("exact") else HammingIndex
            verify_file(index_path, kind=kind._KIND)
            base = kind.load(index_path, mmap=True)
            _meta, arrays = read_arrays(rows_path, kind=ROWS_KIND, mmap=True)
            return Stored(path=index_path, base=base, ids=arrays["ids"], slots=arrays["slots"], lists=lists), refused
        except (IndexFileError, OSError, KeyError, TypeError, ValueError) as exc:
            refused += 1
            log.warning("index file %s refused (%s); the index is rebuilt from the database", rows_path.name, exc)
            rows_path.unlink(missing_ok=True)
            index_path.unlink(missing_ok=True)
    return None, refused


def bytes_held(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.index")) + sum(p.stat().st_size for p in folder.glob("*.rows"))


def file_size(path: str | os.PathLike[str]) -> int:
    return os.stat(path).st_size
