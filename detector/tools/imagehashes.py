"""pHash and dHash: 64-bit perceptual hashes through the ``imagehash`` package.

imagehash converts to greyscale, resizes with Lanczos (its ``ANTIALIAS``) to 32x32 (pHash)
or 9x8 (dHash), then thresholds. The reference path hands it the full-size decode. The fast
path does the expensive part itself, from the reduced-size luma view: the same Lanczos resize
over the same extent of the picture (``Grey.box``), then hands imagehash the small result, on
which imagehash's own convert and resize are no-ops, so the thresholding is imagehash's code.

Query variants (``detector.variants``): a dihedral transform of the picture, resized, is the same
transform of the resized picture (Lanczos is symmetric), so each variant is imagehash's function on
the transformed 32x32 (pHash) or 9x8 (dHash) image: for pHash that is exactly the DCT's symmetry
(a mirror flips the signs of the odd frequencies, a transpose transposes the block, each thresholded
at its own median), for dHash the differences taken in the mirrored direction. The four transforms
that swap width and height need the 8x9 resize for dHash (one more resize of the same plane).
The trimmed variant resizes only the part of the plane inside the border (``find_borders``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import ClassVar

import imagehash
import numpy as np
from PIL import Image

from detector import variants as v
from detector.decode import HashingPath, Media
from detector.tools.base import HashResult, HashTool, ToolKind

_T = Image.Transpose
# The Pillow transpose of each dihedral variant's name.
TRANSPOSES: dict[str, Image.Transpose] = {
    "rot90": _T.ROTATE_90,
    "rot180": _T.ROTATE_180,
    "rot270": _T.ROTATE_270,
    "mirror_h": _T.FLIP_LEFT_RIGHT,
    "mirror_v": _T.FLIP_TOP_BOTTOM,
    "transpose": _T.TRANSPOSE,
    "transverse": _T.TRANSVERSE,
}
_SWAPS = frozenset({"rot90", "rot270", "transpose", "transverse"})


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

    supported_variants: ClassVar[tuple[str, ...]] = (*v.DIHEDRAL, v.TRIMMED)

    def _plane(self, media: Media) -> tuple[Image.Image, tuple[float, float, float, float]]:
        """The greyscale picture the hash resizes from and the box of the picture in it."""
        if media.hashing is HashingPath.REFERENCE:
            grey = media.rgb().convert("L")
            return grey, (0.0, 0.0, float(grey.width), float(grey.height))
        view = media.grey()
        return view.image, view.box

    def hash_variants(self, media: Media, wanted: tuple[str, ...]) -> HashResult:
        wanted = v.enabled_for(wanted, self.supported_variants)
        if not wanted:
            return self.hash(media)
        plane, box = self._plane(media)
        function = type(self).function
        size = self.resize_to
        small = plane.resize(size, Image.Resampling.LANCZOS, box=box)
        # The fast path's hash is this very resize (``fast``); the reference path's is imagehash's own.
        value = self.reference(media) if media.hashing is HashingPath.REFERENCE else self._pack(function(small))
        swapped = small if size[0] == size[1] else None
        found: list[tuple[str, bytes]] = []
        for name in wanted:
            if name == v.TRIMMED:
                for borders in v.trim_candidates(np.asarray(plane)):
                    # Cropped first: Lanczos with a box still reads pixels outside it (the border) for its support.
                    # The picture's own extent may end inside the plane's last pixel (``box``).
                    right = box[2] if borders.right == plane.width else float(borders.right)
                    bottom = box[3] if borders.bottom == plane.height else float(borders.bottom)
                    inner = plane.crop((borders.left, borders.top, borders.right, borders.bottom))
                    extent = (0.0, 0.0, right - borders.left, bottom - borders.top)
                    found.append((name, self._pack(function(inner.resize(size, Image.Resampling.LANCZOS, box=extent)))))
                continue
            if name in _SWAPS:
                # The transformed picture resized to (w, h) is the transform of the picture resized to (h, w).
                if swapped is None:
                    swapped = plane.resize((size[1], size[0]), Image.Resampling.LANCZOS, box=box)
                source = swapped
            else:
                source = small
            # An upload that is the listed picture after ``name``, with ``name`` undone.
            found.append((name, self._pack(function(source.transpose(TRANSPOSES[v.undo(name)])))))
        return HashResult(tool=self.name, value=value, variants=tuple(found))


class PHashTool(_ImageHashTool):
    name = "phash"
    version = f"imagehash-{version('imagehash')}"
    # benchmarks/results/robustness.md: at 10, no false positive among 2,926 distinct pairs and
    # every rescale/recompression/gamma copy found; at 12 the first distinct pair (a stereo
    # pair of the same scene) matches. 64-bit hashes cluster (p1 of distinct pairs ~22), so
    # there is little room above 10 once lists hold millions of entries.
    default_threshold = 10
    # benchmarks/results/robustness.md: over 517 distinct pictures, every variant of one against the original
    # of the other, one rot270 variant came within 10 of a distinct picture; at 9 none did. Every variant is one
    # more chance of a chance match, so all of them are held to 9.
    variant_thresholds = dict.fromkeys((*v.DIHEDRAL, v.TRIMMED), 9)
    function = staticmethod(imagehash.phash)
    resize_to = (32, 32)
    description = "DCT perceptual hash (imagehash.phash, 8x8), Hamming distance."


class DHashTool(_ImageHashTool):
    name = "dhash"
    version = f"imagehash-{version('imagehash')}"
    # benchmarks/results/robustness.md: at 10, no false positive among 2,926 distinct pairs,
    # at 14 two; 10 keeps the same margin as pHash.
    default_threshold = 10
    # benchmarks/results/robustness.md: over 517 distinct pictures the dHash variants came as near as 8 to a
    # distinct picture (rot90; mirror_v, rot180, transverse and trimmed at 10); at 7 none did, so every
    # variant is held to 7 (exact mirrors and rotations stay within 0-3 bits of the listed hash).
    variant_thresholds = dict.fromkeys((*v.DIHEDRAL, v.TRIMMED), 7)
    function = staticmethod(imagehash.dhash)
    resize_to = (9, 8)
    description = "Difference hash (imagehash.dhash, 8x8), Hamming distance."
