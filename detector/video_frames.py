"""vPDQ frame lists: the value a video hashes to, its text forms, and how two of them compare.

A vPDQ hash (Meta's video PDQ) is a list of sampled frames, each with its frame number, PDQ
quality (0-100), 256-bit PDQ hash and timestamp in seconds. hashguard stores one video as one
list entry whose value is the frames packed in a fixed 41-byte record each (``pack``), so the
whole list machinery (versions, signatures, disabling, quarantine, evidence) works per video
while the matcher indexes every frame (``detector.video_match``).

Text forms, both read by ``parse_text``:

* the reference's hash file: one frame a line, ``frame_number,quality,pdq_hex,timestamp_seconds``
  (timestamps with three decimals), as ``hashguard hash --tool vpdq`` prints it;
* the same records joined by ``;`` on one line: how a frame list travels inside a list file's
  JSON Lines entry or a lookup.

Pure code: never logs, and its errors never repeat a hash value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.errors import InvalidHash

PDQ_BYTES = 32
# frame number (u32), quality (u8), timestamp in milliseconds (u32), PDQ hash: big-endian, 41 bytes.
RECORD = np.dtype([("frame", ">u4"), ("quality", "u1"), ("ms", ">u4"), ("pdq", "u1", (PDQ_BYTES,))])
RECORD_BYTES = RECORD.itemsize
# Longer than any video hashguard accepts at one frame a second for a day; bounds a parsed list.
MAX_FRAMES = 1_000_000
_MAX_U32 = 2**32 - 1

# vPDQ's published operating point (ThreatExchange's vpdq extension): frames within PDQ distance 31,
# both of quality >= 50; a video matches when >= 80% of its frames match and >= 0% of the listed one's.
DEFAULT_DISTANCE = 31
DEFAULT_QUALITY = 50
DEFAULT_QUERY_SHARE = 80.0
DEFAULT_INDEX_SHARE = 0.0
# The reference's default sampling: one frame hashed per second of video.
DEFAULT_SECONDS_PER_HASH = 1.0

_LINE = re.compile(r"\s*(\d{1,10})\s*,\s*(\d{1,3})\s*,\s*(?:0x)?([0-9a-fA-F]{64})\s*,\s*(\d{1,9}(?:\.\d*)?|\.\d+)\s*")


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame of a vPDQ hash."""

    number: int
    quality: int
    pdq: bytes
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchParams:
    """vPDQ's four matching values: PDQ distance, quality filter, query and index shares (percent)."""

    distance: int = DEFAULT_DISTANCE
    quality: int = DEFAULT_QUALITY
    query_share: float = DEFAULT_QUERY_SHARE
    index_share: float = DEFAULT_INDEX_SHARE


def _records(frames: Sequence[Frame]) -> npt.NDArray[np.void]:
    records = np.zeros(len(frames), dtype=RECORD)
    for i, frame in enumerate(frames):
        if len(frame.pdq) != PDQ_BYTES:
            raise InvalidHash(f"frame {i + 1}: a PDQ hash is {PDQ_BYTES} bytes, got {len(frame.pdq)}")
        if not 0 <= frame.number <= _MAX_U32 or not 0 <= frame.quality <= 100:
            raise InvalidHash(f"frame {i + 1}: frame number or quality out of range")
        ms = round(frame.seconds * 1000)
        if not 0 <= ms <= _MAX_U32:
            raise InvalidHash(f"frame {i + 1}: timestamp out of range")
        records[i] = (frame.number, frame.quality, ms, np.frombuffer(frame.pdq, dtype=np.uint8))
    return records


def pack(frames: Sequence[Frame]) -> bytes:
    """The stored value of a frame list: 41 bytes a frame, in the order given."""
    if not frames:
        raise InvalidHash("a vpdq hash needs at least one frame")
    if len(frames) > MAX_FRAMES:
        raise InvalidHash(f"a vpdq hash holds at most {MAX_FRAMES} frames")
    return _records(frames).tobytes()


def records(value: bytes) -> npt.NDArray[np.void]:
    """The packed frames as a structured array (no copy). Raises ``InvalidHash`` for a bad length."""
    if not value or len(value) % RECORD_BYTES:
        raise InvalidHash(f"not a valid vpdq value: expected a non-empty multiple of {RECORD_BYTES} bytes, got {len(value)}")
    return np.frombuffer(value, dtype=RECORD)


def unpack(value: bytes) -> list[Frame]:
    out = records(value)
    return [
        Frame(number=int(r["frame"]), quality=int(r["quality"]), pdq=r["pdq"].tobytes(), seconds=int(r["ms"]) / 1000) for r in out
    ]


def codes_and_quality(value: bytes) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The frames' PDQ codes ``(n, 32)`` and qualities ``(n,)`` of a packed value."""
    out = records(value)
    return np.ascontiguousarray(out["pdq"]), np.ascontiguousarray(out["quality"])


def format_line(frame: Frame) -> str:
    """One line of the reference's hash file."""
    return f"{frame.number},{frame.quality},{frame.pdq.hex()},{frame.seconds:.3f}"


def format_lines(value: bytes) -> list[str]:
    return [format_line(f) for f in unpack(value)]


def format_compact(value: bytes) -> str:
    """The frame list on one line, records joined by ``;`` (list files' JSON Lines, lookups)."""
    return ";".join(format_lines(value))


def parse_records(lines: Iterable[str], *, where: str = "line") -> list[Frame]:
    """Frames from hash-file records; blank lines and ``#`` comments skipped. Value-free errors."""
    frames: list[Frame] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        found = _LINE.fullmatch(text)
        if found is None:
            raise InvalidHash(
                f"{where} {number}: expected frame_number,quality,pdq_hex(64 digits),timestamp_seconds"
                f" ({len(text)} characters, {text.count(',') + 1} fields)"
            )
        quality = int(found.group(2))
        if quality > 100:
            raise InvalidHash(f"{where} {number}: quality must be 0-100")
        frames.append(
            Frame(
                number=int(found.group(1)),
                quality=quality,
                pdq=bytes.fromhex(found.group(3)),
                seconds=float(found.group(4)),
            )
        )
        if len(frames) > MAX_FRAMES:
            raise InvalidHash(f"a vpdq hash holds at most {MAX_FRAMES} frames")
    if not frames:
        raise InvalidHash("a vpdq hash needs at least one frame")
    return frames


def parse_text(text: str) -> bytes:
    """A frame list in either text form (lines, or records joined by ``;``), packed."""
    separator = "\n" if "\n" in text.strip() else ";"
    return pack(parse_records(text.split(separator), where="frame"))


def frames_json(value: bytes) -> list[list[object]]:
    """``[[frame, quality, hex, seconds], ...]``, the JSON Lines form of a frame list."""
    return [[f.number, f.quality, f.pdq.hex(), round(f.seconds, 3)] for f in unpack(value)]


def parse_frames_json(items: object) -> bytes:
    """The ``frames`` array of a JSON Lines entry or a lookup, packed. Value-free errors."""
    if not isinstance(items, list) or not items:
        raise InvalidHash("'frames' must be a non-empty array of [frame, quality, hex, seconds]")
    frames: list[Frame] = []
    for i, item in enumerate(items, start=1):
        if (
            not isinstance(item, list | tuple)
            or len(item) != 4
            or not all(isinstance(item[k], int) and not isinstance(item[k], bool) for k in (0, 1))
            or not isinstance(item[2], str)
            or not isinstance(item[3], int | float)
            or isinstance(item[3], bool)
        ):
            raise InvalidHash(f"frame {i}: expected [frame_number, quality, pdq_hex, timestamp_seconds]")
        hex_text = item[2].strip().lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{64}", hex_text):
            raise InvalidHash(f"frame {i}: the PDQ hash must be 64 hexadecimal digits, got {len(hex_text)} characters")
        if not 0 <= item[1] <= 100 or item[0] < 0 or item[3] < 0:
            raise InvalidHash(f"frame {i}: frame number, quality (0-100) or timestamp out of range")
        frames.append(Frame(number=item[0], quality=item[1], pdq=bytes.fromhex(hex_text), seconds=float(item[3])))
    return pack(frames)


def prepare(codes: npt.NDArray[np.uint8], quality: npt.NDArray[np.uint8], min_quality: int) -> npt.NDArray[np.uint8]:
    """The frames vPDQ matching counts: quality >= ``min_quality``, each distinct PDQ hash once (first kept).

    ThreatExchange's vPDQ matcher filters by quality and then de-duplicates identical hashes, so
    a still scene held for a minute counts as one frame, not sixty, on both sides of a comparison.
    """
    kept = codes[quality >= min_quality]
    if kept.shape[0] == 0:
        return kept
    _, first = np.unique(kept, axis=0, return_index=True)
    return np.ascontiguousarray(kept[np.sort(first)])


@dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    """How much of two frame lists match (percentages over each side's counted frames)."""

    query_share: float
    index_share: float
    matched_frames: int  # query frames with a listed frame within the distance
    distance: int  # the nearest pair's distance


def compare(query: bytes, listed: bytes, params: MatchParams = MatchParams()) -> Comparison | None:
    """Brute-force vPDQ comparison of two packed frame lists (the oracle for the index; tests and benchmarks).

    None when either side has no frame passing the quality filter.
    """
    q = prepare(*codes_and_quality(query), params.quality)
    t = prepare(*codes_and_quality(listed), params.quality)
    if not q.shape[0] or not t.shape[0]:
        return None
    bits = np.unpackbits(q[:, None, :] ^ t[None, :, :], axis=2).sum(axis=2)
    near = bits <= params.distance
    q_matched = int(near.any(axis=1).sum())
    t_matched = int(near.any(axis=0).sum())
    return Comparison(
        query_share=100.0 * q_matched / q.shape[0],
        index_share=100.0 * t_matched / t.shape[0],
        matched_frames=q_matched,
        distance=int(bits.min()),
    )


def is_match(comparison: Comparison | None, params: MatchParams) -> bool:
    return (
        comparison is not None
        and comparison.matched_frames > 0
        and comparison.query_share >= params.query_share
        and comparison.index_share >= params.index_share
    )
