"""The interface every detection tool implements, built-in or plug-in.

A tool turns one upload into one hash and says how hashes of its kind are compared. Tools
are discovered through the ``hashguard.tools`` entry-point group (see ``registry.py``);
discovery is not approval — which tools actually scan is decided by ``policy.py`` from the
approvals recorded for the deployment's jurisdictions.

Everything a tool declares beyond ``hash`` has a default here, so a tool author writes the
hash function and a handful of class attributes; ``docs/writing-a-tool.md`` walks through it
and ``detector.tools.testing`` is the conformance kit every tool must pass.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from detector.decode import Media
from detector.errors import InvalidHash

_HEX = re.compile(r"[0-9a-f]*")

# What the decoder accepts (detector.decode.SUPPORTED_FORMATS) as media types.
IMAGE_MEDIA_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"})

# A quality below this means "this hash says little about the picture" (PDQ's own cut-off,
# used by ThreatExchange to keep low-information hashes out of lists).
LOW_QUALITY = 50


class ToolKind(StrEnum):
    PERCEPTUAL = "perceptual"
    CRYPTOGRAPHIC = "cryptographic"
    OTHER = "other"


class IndexKind(StrEnum):
    """Which of hashguard's indexes holds a tool's list entries.

    ``hamming``: every entry within the tool's threshold by Hamming distance (HammingIndex).
    ``exact``: byte-identical entries only (ExactHashSet), threshold 0.
    Both index fixed-width bit strings, which is why ``distance`` must agree with Hamming
    distance: a tool with another metric needs a new index kind in hashguard, not a plug-in.
    """

    HAMMING = "hamming"
    EXACT = "exact"
    # A frame list per entry (vPDQ): every frame in one Hamming index, matched by shares of frames
    # (detector.video_match). The tool's ``bits`` are one frame's.
    FRAMES = "frames"


@dataclass(frozen=True, kw_only=True, slots=True)
class HashResult:
    """A tool's hash of one upload. ``quality`` is the tool's own 0-100 confidence, if it has one.

    ``variants``: (transform, hash) of the query variants asked for (``detector.variants``), when the
    tool computes any; the original hash is always ``value``.
    """

    tool: str
    value: bytes
    quality: int | None = None
    variants: tuple[tuple[str, bytes], ...] = ()


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two equally long byte strings."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare hashes of {len(a)} and {len(b)} bytes")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


class HashTool(ABC):
    """A detection tool: a hash function over media plus how to compare, parse and index its hashes.

    Hashes are fixed-width byte strings compared by Hamming distance (0 for exact tools),
    which is what lets every tool share the same two index implementations. Class attributes
    describe the tool so the registry can list, validate and approve it without hashing
    anything; only ``hash`` does work, in a worker thread.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[ToolKind]
    bits: ClassVar[int]
    default_threshold: ClassVar[int]
    description: ClassVar[str] = ""
    # Media types the tool can hash; uploads are decoded by hashguard before any tool runs.
    media_types: ClassVar[frozenset[str]] = IMAGE_MEDIA_TYPES
    # None: exact index for cryptographic tools, Hamming index for the others.
    index: ClassVar[IndexKind | None] = None
    # Query variants (``detector.variants.VARIANTS``) ``hash_variants`` can compute; none by default.
    supported_variants: ClassVar[tuple[str, ...]] = ()
    # Stricter thresholds for some variants, where more queries per upload would otherwise let distinct
    # pictures match (set from benchmarks/results/robustness.md); absent: the tool's threshold.
    variant_thresholds: ClassVar[Mapping[str, int]] = {}

    @property
    def width(self) -> int:
        """Hash length in bytes."""
        return self.bits // 8

    @abstractmethod
    def hash(self, media: Media) -> HashResult:
        """Hash one upload. Runs in a worker thread; may raise a 4xx ``DetectorError``."""

    def hash_variants(self, media: Media, wanted: tuple[str, ...]) -> HashResult:
        """``hash`` plus the query variants among ``wanted`` this tool supports (``HashResult.variants``).

        Default: the plain hash, no variants; a tool that supports some overrides this and computes
        them in the same pass where it can (PDQ's eight dihedral hashes come from one DCT).
        """
        return self.hash(media)

    def hash_with_quality(self, media: Media) -> HashResult:
        """``hash`` with ``quality`` filled in from ``estimate_quality`` when the tool gave none."""
        result = self.hash(media)
        if result.quality is None:
            estimate = self.estimate_quality(result.value)
            if estimate is not None:
                result = dataclasses.replace(result, quality=estimate)
        return result

    def estimate_quality(self, value: bytes) -> int | None:
        """A 0-100 quality for hash functions that report none (imagehash's pHash and dHash).

        Default for non-exact tools: how balanced the bits are. A uniform or near-uniform
        picture hashes to (almost) all zeros or all ones and scores near 0; a picture with
        detail scores near 100. Exact tools have no notion of quality: None.
        """
        if self.index_kind() is IndexKind.EXACT:
            return None
        ones = int.from_bytes(value, "big").bit_count()
        half = self.bits / 2
        return round(100 * min(ones, self.bits - ones) / half)

    def distance(self, a: bytes, b: bytes) -> int:
        """Distance between two hashes of this tool; must agree with the index (Hamming)."""
        return hamming(a, b)

    def index_kind(self) -> IndexKind:
        """The index that holds this tool's entries (see ``IndexKind``)."""
        if self.index is not None:
            return self.index
        return IndexKind.EXACT if self.kind is ToolKind.CRYPTOGRAPHIC else IndexKind.HAMMING

    def normalise(self, text: str) -> str:
        """The canonical text of a hash: lower-case hex, no blanks, no ``0x``. Does not validate."""
        cleaned = text.strip().lower()
        return cleaned[2:] if cleaned.startswith("0x") else cleaned

    def parse_hex(self, text: str) -> bytes:
        """Validate and normalise a hex hash (case, surrounding blanks, optional 0x) into bytes.

        The message of a failure never repeats the value: list entries are confidential.
        """
        cleaned = self.normalise(text)
        digits = self.bits // 4
        if len(cleaned) != digits or not _HEX.fullmatch(cleaned):
            raise InvalidHash(
                f"not a valid {self.name} hash: expected {digits} hexadecimal digits, got {len(cleaned)} characters"
                + ("" if _HEX.fullmatch(cleaned) else " including non-hex characters")
            )
        value = bytes.fromhex(cleaned)
        self.validate(value)
        return value

    def validate(self, value: bytes) -> None:
        """Refuse a well-formed value the tool can never produce (raise ``InvalidHash``, value-free message).

        Default: any value of the right width is acceptable.
        """
        if len(value) != self.width:
            raise InvalidHash(f"not a valid {self.name} hash: expected {self.width} bytes, got {len(value)}")

    def format(self, value: bytes) -> str:
        return value.hex()

    def threshold(self) -> int:
        return self.default_threshold if self.index_kind() in (IndexKind.HAMMING, IndexKind.FRAMES) else 0

    def variant_threshold(self, transform: str) -> int:
        """The most a hit found by this query variant may be away (never more than ``threshold``)."""
        return min(self.threshold(), self.variant_thresholds.get(transform, self.threshold()))
