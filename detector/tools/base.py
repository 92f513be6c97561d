"""The interface every detection tool implements, built-in or plug-in.

A tool turns one upload into one hash and says how hashes of its kind are compared. Tools
are discovered through the ``hashguard.tools`` entry-point group (see ``registry.py``);
discovery is not approval — which tools actually scan is a policy decision made elsewhere.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from detector.decode import Media
from detector.errors import InvalidHash

_HEX = re.compile(r"[0-9a-f]*")


class ToolKind(StrEnum):
    PERCEPTUAL = "perceptual"
    CRYPTOGRAPHIC = "cryptographic"


@dataclass(frozen=True, kw_only=True, slots=True)
class HashResult:
    """A tool's hash of one upload. ``quality`` is the tool's own 0-100 confidence, if it has one."""

    tool: str
    value: bytes
    quality: int | None = None


class HashTool(ABC):
    """A detection tool: a hash function over media plus how to compare and parse its hashes.

    Hashes are fixed-width byte strings compared by Hamming distance (0 for exact tools),
    which is what lets every tool share one index implementation.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[ToolKind]
    bits: ClassVar[int]
    default_threshold: ClassVar[int]
    description: ClassVar[str] = ""

    @property
    def width(self) -> int:
        """Hash length in bytes."""
        return self.bits // 8

    @abstractmethod
    def hash(self, media: Media) -> HashResult:
        """Hash one upload. Runs in a worker thread; may raise a 4xx ``DetectorError``."""

    def parse_hex(self, text: str) -> bytes:
        """Validate and normalise a hex hash (case, surrounding blanks, optional 0x) into bytes.

        The message of a failure never repeats the value: list entries are confidential.
        """
        cleaned = text.strip().lower()
        if cleaned.startswith("0x"):
            cleaned = cleaned[2:]
        digits = self.bits // 4
        if len(cleaned) != digits or not _HEX.fullmatch(cleaned):
            raise InvalidHash(
                f"not a valid {self.name} hash: expected {digits} hexadecimal digits, got {len(cleaned)} characters"
                + ("" if _HEX.fullmatch(cleaned) else " including non-hex characters")
            )
        return bytes.fromhex(cleaned)

    def format(self, value: bytes) -> str:
        return value.hex()

    def threshold(self) -> int:
        return self.default_threshold if self.kind is ToolKind.PERCEPTUAL else 0
