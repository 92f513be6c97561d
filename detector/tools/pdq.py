"""PDQ: Meta's 256-bit perceptual hash.

Two implementations of one function. The reference is ``pdqhash`` (bindings to Meta's C++)
on the full-size RGB decode; it is the definition of truth, and the lists' hashes were made
with it. The fast path (``detector.fastpdq``) replays the same filter on a reduced-size
decode and is held to the reference by ``tests/unit/test_hashing_fidelity.py`` and
``benchmarks/hashing.py``. ``Media.hashing`` picks one; both give the same ``version``
because they compute the same hash, within a few bits.

Query variants (``detector.variants``): the seven dihedral hashes come from the same DCT as the
original (``fastpdq.pdq_dihedral_from_luma``; ``pdqhash.compute_dihedral`` on the reference
path), the trimmed hash from the border-free part of the same luma plane, and the quirk-compatible
hashes from a second decode of the file that reproduces python-threatexchange's conversion.
"""

from __future__ import annotations

import io
from importlib.metadata import version

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

from detector import variants as v
from detector.decode import HashingPath, Media
from detector.fastpdq import DIHEDRAL, pdq_dihedral_from_luma, pdq_from_luma
from detector.tools.base import HashResult, HashTool, ToolKind

# pdqhash.compute_dihedral's order, in our names (its FlipX reverses rows: our mirror_v).
_REFERENCE_ORDER = ("original", "rot90", "rot180", "rot270", "mirror_v", "mirror_h", "transpose", "transverse")


def _pack(vector: npt.NDArray[np.generic]) -> bytes:
    # Bit i of the vector is the i-th most significant bit of the hex string, which is how
    # python-threatexchange and the C++ reference print PDQ hashes.
    return np.packbits(np.asarray(vector).astype(np.uint8)).tobytes()


def reference_pdq(media: Media) -> tuple[bytes, int]:
    """PDQ through ``pdqhash`` on the full-size RGB decode: hash bytes and quality."""
    vector, quality = pdqhash.compute(np.asarray(media.rgb()))
    return _pack(vector), int(quality)


def reference_dihedral(media: Media) -> tuple[dict[str, bytes], int]:
    """The eight dihedral hashes through ``pdqhash.compute_dihedral`` on the full-size RGB decode."""
    vectors, quality = pdqhash.compute_dihedral(np.asarray(media.rgb()))
    return {name: _pack(vector) for name, vector in zip(_REFERENCE_ORDER, vectors, strict=True)}, int(quality)


def fast_pdq(media: Media) -> tuple[bytes, int]:
    """PDQ from the reduced-size luma view (``Media.grey``): hash bytes and quality."""
    grey = media.grey()
    return pdq_from_luma(grey.luma, grey.width, grey.height, grey.scale_x, grey.scale_y)


def fast_dihedral(media: Media) -> tuple[dict[str, bytes], int]:
    """The eight dihedral hashes from the reduced-size luma view, one pass."""
    grey = media.grey()
    return pdq_dihedral_from_luma(grey.luma, grey.width, grey.height, grey.scale_x, grey.scale_y)


def _trimmed_fast(media: Media) -> list[bytes]:
    grey = media.grey()
    sx, sy = grey.scale_x, grey.scale_y
    rows, cols = grey.luma.shape
    found = []
    for borders in v.trim_candidates(grey.luma):
        # Original pixels inside the border: whole reduced pixels, except the last row/column's remainder.
        width = grey.width - borders.left * sx if borders.right == cols else (borders.right - borders.left) * sx
        height = grey.height - borders.top * sy if borders.bottom == rows else (borders.bottom - borders.top) * sy
        plane = grey.luma[borders.top : borders.bottom, borders.left : borders.right]
        found.append(pdq_from_luma(plane, width, height, sx, sy)[0])
    return found


def _trimmed_reference(media: Media) -> list[bytes]:
    rgb = media.rgb()
    pixels = np.asarray(rgb)
    found = []
    for borders in v.trim_candidates(np.asarray(rgb.convert("L"))):
        vector, _ = pdqhash.compute(np.ascontiguousarray(pixels[borders.top : borders.bottom, borders.left : borders.right]))
        found.append(_pack(vector))
    return found


def quirk_array(image: Image.Image, wanted: tuple[str, ...]) -> tuple[str, npt.NDArray[np.uint8]] | None:
    """The pixels python-threatexchange's ``pdq_from_bytes`` hands pdqhash for this (opened) image, when
    they differ from the correct RGB decode and the quirk's variant is wanted: (variant, array).

    ``np.asarray`` of a CMYK image has four planes, of which pdqhash reads the first three as R, G, B;
    of a palette image, the indices; a 16-bit greyscale image is converted by Pillow, which clips.
    """
    if image.mode == "CMYK" and "compat_cmyk" in wanted:
        return "compat_cmyk", np.asarray(image)[:, :, :3]
    if image.mode == "P" and "compat_palette" in wanted:
        return "compat_palette", np.asarray(image)
    if image.mode == "I;16" and "compat_grey16" in wanted:
        return "compat_grey16", np.asarray(image.convert("L"))
    return None


def _luma(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """pdqhash.compute's luma (float64 products, then float32) of an RGB-like or a 2-D (replicated) array."""
    p = pixels.astype(np.float64)
    if p.ndim == 2:
        return (p * 0.299 + p * 0.587 + p * 0.114).astype(np.float32)
    return (p[:, :, 0] * 0.299 + p[:, :, 1] * 0.587 + p[:, :, 2] * 0.114).astype(np.float32)


# Up to this many pixels the quirk variant is computed at full size (peak about 24 bytes a pixel).
_COMPAT_FULL_SIZE = 4_000_000


def _compat(media: Media, wanted: tuple[str, ...]) -> tuple[str, bytes] | None:
    """The quirk-compatible hash of the upload, from a second decode (only for the modes that have a quirk)."""
    if not any(name in wanted for name in v.COMPAT):
        return None
    image = Image.open(io.BytesIO(media.data))  # already opened, checked and decoded once by Media
    image.seek(0)
    if image.mode not in ("CMYK", "P", "I;16"):
        return None
    if media.hashing is HashingPath.REFERENCE:
        found = quirk_array(image, wanted)
        if found is None:
            return None
        name, pixels = found
        array = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
        vector, _ = pdqhash.compute(np.ascontiguousarray(array))
        return name, _pack(vector)
    grey = media.grey()
    sx, sy = grey.scale_x, grey.scale_y
    if image.width * image.height <= _COMPAT_FULL_SIZE:
        # Small enough to hash at full size, as python-threatexchange does: the same hash, bit for bit
        # (these files are rare, and an almost uniform picture, as clipped 16-bit ones often are, flips many
        # bits on the least change of the reduced decode).
        sx = sy = 1
    drafted = 1
    width = image.width
    if sx == sy > 1 and image.format == "JPEG" and (result := image.draft(image.mode, (width // sx, image.height // sy))):
        drafted = round(width / result[1][2])
    found = quirk_array(image, wanted)
    if found is None:
        return None
    name, pixels = found
    luma = _luma(pixels)
    if (sx, sy) != (1, 1):
        small = Image.fromarray(np.clip(np.rint(luma), 0, 255).astype(np.uint8), mode="L")
        if (sx, sy) != (drafted, drafted):
            small = small.reduce((sx // drafted, sy // drafted))
        luma = np.asarray(small, dtype=np.float32)
    return name, pdq_from_luma(luma, grey.width, grey.height, sx, sy)[0]


class PdqTool(HashTool):
    name = "pdq"
    version = f"pdqhash-{version('pdqhash')}"
    kind = ToolKind.PERCEPTUAL
    bits = 256
    # Meta's published operating point for PDQ (ThreatExchange, HMA): distance <= 31 of 256.
    # Kept after benchmarks/results/robustness.md: no distinct pair of our 77 pictures came
    # within 94, so a higher threshold would buy recall on crops and rotations, but 2,926 pairs
    # cannot bound the false-positive rate against lists of millions; Meta's figure was set on
    # far larger corpora. At 31 it finds every 0.5 rescale, recompression (q30-q70), gamma and
    # greyscale copy there, and 99% of 0.25 rescales (256x192: one drawn picture moved 76 bits).
    default_threshold = 31
    description = "PDQ perceptual hash (Meta reference implementation), Hamming distance."
    supported_variants = v.VARIANTS

    def hash(self, media: Media) -> HashResult:
        value, quality = reference_pdq(media) if media.hashing is HashingPath.REFERENCE else fast_pdq(media)
        return HashResult(tool=self.name, value=value, quality=quality)

    def hash_variants(self, media: Media, wanted: tuple[str, ...]) -> HashResult:
        wanted = v.enabled_for(wanted, self.supported_variants)
        if not wanted:
            return self.hash(media)
        reference = media.hashing is HashingPath.REFERENCE
        found: list[tuple[str, bytes]] = []
        if any(v.is_dihedral(name) for name in wanted):
            hashes, quality = reference_dihedral(media) if reference else fast_dihedral(media)
            value = hashes["original"]
            # The variant for an upload that is the listed picture after ``name`` is the upload's hash with ``name`` undone.
            found += [(name, hashes[v.undo(name)]) for name in DIHEDRAL if name in wanted]
        else:
            value, quality = reference_pdq(media) if reference else fast_pdq(media)
        if v.TRIMMED in wanted:
            found += [(v.TRIMMED, trimmed) for trimmed in (_trimmed_reference(media) if reference else _trimmed_fast(media))]
        if (compat := _compat(media, wanted)) is not None:
            found.append(compat)
        return HashResult(tool=self.name, value=value, quality=quality, variants=tuple(found))
