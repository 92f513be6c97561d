"""pHash and dHash: 64-bit perceptual hashes through the ``imagehash`` package.

imagehash converts to greyscale, resizes with Lanczos (its ``ANTIALIAS``) to 32x32 (pHash)
or 9x8 (dHash), then thresholds. The reference path hands it the full-size decode. The fast
path does the expensive part itself, from the reduced-size luma view: the same Lanczos resize
over the same extent of the picture (``Grey.box``), then hands imagehash the small result, on
which imagehash's own convert and resize are no-ops, so the thresholding is imagehash's code.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import ClassVar

import imagehash
import numpy as np
from PIL import Image

from detector.decode import HashingPath, Media
from detector.tools.base import HashResult, HashTool, ToolKind


class _ImageHashTool(HashTool):
    kind: ClassVar[ToolKind] = ToolKind.PERCEPTUAL
    bits: ClassVar[int] = 64
    function: ClassVar[Callable[..., imagehash.ImageHash]]
    # The size imagehash resizes to before thresholding (width, height).
    resize_to: ClassVar[tuple[int, int]]

    def reference(self, media: Media) -> bytes:
        """The hash as imagehash computes it from the full-size RGB decode."""
        return self._pack(type(self).function(media.rgb()))

    def fast(self, media: Media) -> bytes:
        """The same hash from the reduced-size luma view."""
        grey = media.grey()
        small = grey.image.resize(self.resize_to, Image.Resampling.LANCZOS, box=grey.box)
        return self._pack(type(self).function(small))

    @staticmethod
    def _pack(result: imagehash.ImageHash) -> bytes:
        # Row-major, most significant bit first: the same bytes as str(ImageHash) in hex.
        return np.packbits(result.hash.flatten().astype(np.uint8)).tobytes()

    def hash(self, media: Media) -> HashResult:
        value = self.reference(media) if media.hashing is HashingPath.REFERENCE else self.fast(media)
        return HashResult(tool=self.name, value=value)


class PHashTool(_ImageHashTool):
    name = "phash"
    version = f"imagehash-{version('imagehash')}"
    # benchmarks/results/robustness.md: at 10, no false positive among 2,926 distinct pairs and
    # every rescale/recompression/gamma copy found; at 12 the first distinct pair (a stereo
    # pair of the same scene) matches. 64-bit hashes cluster (p1 of distinct pairs ~22), so
    # there is little room above 10 once lists hold millions of entries.
    default_threshold = 10
    function = staticmethod(imagehash.phash)
    resize_to = (32, 32)
    description = "DCT perceptual hash (imagehash.phash, 8x8), Hamming distance."


class DHashTool(_ImageHashTool):
    name = "dhash"
    version = f"imagehash-{version('imagehash')}"
    # benchmarks/results/robustness.md: at 10, no false positive among 2,926 distinct pairs,
    # at 14 two; 10 keeps the same margin as pHash.
    default_threshold = 10
    function = staticmethod(imagehash.dhash)
    resize_to = (9, 8)
    description = "Difference hash (imagehash.dhash, 8x8), Hamming distance."
