"""vPDQ: Meta's video PDQ, a list of PDQ-hashed frames sampled from a video (see ``detector.video_frames``).

The tool's value is a packed frame list, one list entry per video; its index is the frame-level
Hamming index of ``detector.video_match`` (``IndexKind.FRAMES``). Videos are decoded and hashed by
``detector.video_decode`` in isolated worker processes; ``hash`` here covers a still image, which
vPDQ treats as a one-frame video (frame 0 at 0 s), so a frame grabbed from a listed video matches
it by its share of frames. Text form: the reference's hash-file lines, or the records joined by ``;``.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from detector.decode import HashingPath, Media
from detector.errors import InvalidHash
from detector.tools.base import IMAGE_MEDIA_TYPES, HashResult, HashTool, IndexKind, ToolKind
from detector.tools.pdq import fast_pdq, reference_pdq
from detector.video_decode import VIDEO_MEDIA_TYPES
from detector.video_frames import (
    DEFAULT_DISTANCE,
    Frame,
    codes_and_quality,
    format_compact,
    pack,
    parse_text,
    records,
)


class VpdqTool(HashTool):
    name = "vpdq"
    version = f"vpdq-1+pdqhash-{version('pdqhash')}"
    kind = ToolKind.PERCEPTUAL
    bits = 256  # per frame
    default_threshold = DEFAULT_DISTANCE
    description = "vPDQ video hash (Meta): PDQ of frames sampled each second; a video matches by its share of matching frames."
    media_types = VIDEO_MEDIA_TYPES | IMAGE_MEDIA_TYPES
    index = IndexKind.FRAMES

    def hash(self, media: Media) -> HashResult:
        value, quality = reference_pdq(media) if media.hashing is HashingPath.REFERENCE else fast_pdq(media)
        return HashResult(tool=self.name, value=pack([Frame(number=0, quality=quality, pdq=value, seconds=0.0)]), quality=quality)

    def estimate_quality(self, value: bytes) -> int | None:
        found = records(value)
        return int(found["quality"].max()) if found.shape[0] else None

    def normalise(self, text: str) -> str:
        return text.strip()

    def parse_hex(self, text: str) -> bytes:
        """A frame list in text (hash-file lines, or records joined by ``;``); any case, blanks around it, an
        optional leading ``0x`` as for the other tools."""
        cleaned = text.strip()
        return parse_text(cleaned[2:] if cleaned[:2].lower() == "0x" else cleaned)

    def validate(self, value: bytes) -> None:
        try:
            records(value)
        except InvalidHash:
            raise
        except ValueError as exc:  # pragma: no cover - records raises InvalidHash
            raise InvalidHash(str(exc)) from None

    def format(self, value: bytes) -> str:
        return format_compact(value)

    def distance(self, a: bytes, b: bytes) -> int:
        """The nearest pair of frames' PDQ distance (the index applies it frame by frame)."""
        qa, _ = codes_and_quality(a)
        qb, _ = codes_and_quality(b)
        return int(np.unpackbits(qa[:, None, :] ^ qb[None, :, :], axis=2).sum(axis=2).min())
