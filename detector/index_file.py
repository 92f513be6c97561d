"""One-file container for the arrays of an index, written atomically, memory-mappable.

Layout: an 8-byte magic, a little-endian uint64 header length, a UTF-8 JSON header, then
each array's raw C-order bytes at a 64-byte aligned offset. The header names the kind of
object, its small metadata and every array's dtype, shape and offset.

Why not ``np.savez``: an ``.npz`` is a zip, and ``np.load(mmap_mode="r")`` does not
memory-map arrays inside a zip. One file (rather than a directory of ``.npy`` files) lets a
writer publish a new version with a single atomic ``os.replace``; readers that already
mapped the old file keep their pages until they drop them. Several worker processes
mapping the same file share one copy in the page cache.

Arrays come back read-only: an index loaded by a worker must never be mutated in place.
"""

from __future__ import annotations

import json
import mmap as _mmap
import os
import uuid
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MAGIC = b"HGIDX\x00\x01\x00"
_ALIGN = 64


class IndexFileError(ValueError):
    """The file is not a hashguard index file, or it is damaged or of another kind."""


def write_arrays(
    path: str | os.PathLike[str],
    *,
    kind: str,
    meta: Mapping[str, Any],
    arrays: Mapping[str, npt.NDArray[Any]],
) -> None:
    """Write ``arrays`` and ``meta`` to ``path`` atomically (temp file, fsync, rename)."""
    target = Path(path)
    entries: dict[str, dict[str, Any]] = {}
    # The header's length depends on the offsets, which depend on the header's length;
    # reserving a generous fixed header area breaks the cycle.
    layout: list[tuple[str, npt.NDArray[Any], int]] = []
    offset = 0
    for name, array in arrays.items():
        contiguous = np.ascontiguousarray(array)
        entries[name] = {
            "dtype": contiguous.dtype.str,
            "shape": list(contiguous.shape),
            "offset": offset,
        }
        layout.append((name, contiguous, offset))
        offset += -(-contiguous.nbytes // _ALIGN) * _ALIGN
    # A checksum of the data (crc32 in array order, ~1 GB/s) lets a reader refuse a damaged file
    # (verify_file) before it serves from it.
    crc = 0
    for _name, array, _offset in layout:
        crc = zlib.crc32(array.reshape(-1).view(np.uint8).data, crc)
    header = json.dumps({"kind": kind, "meta": dict(meta), "arrays": entries, "crc32": crc}).encode()
    data_start = -(-(len(MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for _name, array, array_offset in layout:
                f.seek(data_start + array_offset)
                f.write(array.reshape(-1).view(np.uint8).data)
            f.truncate(data_start + offset)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_arrays(path: str | os.PathLike[str], *, kind: str, mmap: bool) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Read a file written by :func:`write_arrays`; return ``(meta, arrays)``.

    With ``mmap=True`` the arrays are read-only views of one shared mapping of the file
    (the mapping stays alive as long as any array does); otherwise they are read into
    private memory.
    """
    with open(path, "rb") as f:
        prefix = f.read(len(MAGIC) + 8)
        if len(prefix) != len(MAGIC) + 8 or prefix[: len(MAGIC)] != MAGIC:
            raise IndexFileError(f"{os.fspath(path)!r} is not a hashguard index file")
        header_len = int.from_bytes(prefix[len(MAGIC) :], "little")
        try:
            header = json.loads(f.read(header_len))
        except ValueError as e:
            raise IndexFileError(f"{os.fspath(path)!r} has a damaged header") from e
        if header.get("kind") != kind:
            raise IndexFileError(f"{os.fspath(path)!r} holds a {header.get('kind')!r}, not a {kind!r}")
        data_start = -(-(len(MAGIC) + 8 + header_len) // _ALIGN) * _ALIGN
        size = os.fstat(f.fileno()).st_size
        buffer: Any
        if mmap and size > 0:
            buffer = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
        else:
            f.seek(0)
            buffer = bytearray(f.read())
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, entry in header["arrays"].items():
        dtype = np.dtype(entry["dtype"])
        shape = tuple(entry["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        start = data_start + int(entry["offset"])
        if start + count * dtype.itemsize > size:
            raise IndexFileError(f"{os.fspath(path)!r} is truncated")
        if count == 0:
            array = np.empty(shape, dtype=dtype)
        else:
            array = np.frombuffer(buffer, dtype=dtype, count=count, offset=start).reshape(shape)
        array.flags.writeable = False
        arrays[name] = array
    return header["meta"], arrays


def verify_file(path: str | os.PathLike[str], *, kind: str) -> dict[str, Any]:
    """Check a file's header, size and data checksum without keeping it; return its meta.

    Raises :class:`IndexFileError` when anything differs (a damaged, truncated or foreign file).
    """
    meta, arrays = read_arrays(path, kind=kind, mmap=True)
    with open(path, "rb") as f:
        f.seek(len(MAGIC))
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    if "crc32" not in header:
        raise IndexFileError(f"{os.fspath(path)!r} carries no checksum")
    crc = 0
    for array in arrays.values():
        crc = zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data, crc)
    if crc != header["crc32"]:
        raise IndexFileError(f"{os.fspath(path)!r} fails its checksum")
    return meta
