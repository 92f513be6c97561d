"""pHash and dHash: 64-bit perceptual hashes through the ``imagehash`` package."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import ClassVar

import imagehash
import numpy as np

from detector.decode import Media
from detector.tools.base import HashResult, HashTool, ToolKind


class _ImageHashTool(HashTool):
    kind: ClassVar[ToolKind] = ToolKind.PERCEPTUAL
    bits: ClassVar[int] = 64
    function: ClassVar[Callable[..., imagehash.ImageHash]]

    def hash(self, media: Media) -> HashResult:
        bits = type(self).function(media.rgb()).hash.flatten()
        # Row-major, most significant bit first: the same bytes as str(ImageHash) in hex.
        return HashResult(tool=self.name, value=np.packbits(bits.astype(np.uint8)).tobytes())


class PHashTool(_ImageHashTool):
    name = "phash"
    version = f"imagehash-{version('imagehash')}"
    default_threshold = 10
    function = staticmethod(imagehash.phash)
    description = "DCT perceptual hash (imagehash.phash, 8x8), Hamming distance."


class DHashTool(_ImageHashTool):
    name = "dhash"
    version = f"imagehash-{version('imagehash')}"
    default_threshold = 10
    function = staticmethod(imagehash.dhash)
    description = "Difference hash (imagehash.dhash, 8x8), Hamming distance."
