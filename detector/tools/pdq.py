"""PDQ: Meta's 256-bit perceptual hash.

Two implementations of one function. The reference is ``pdqhash`` (bindings to Meta's C++)
on the full-size RGB decode; it is the definition of truth, and the lists' hashes were made
with it. The fast path (``detector.fastpdq``) replays the same filter on a reduced-size
decode and is held to the reference by ``tests/unit/test_hashing_fidelity.py`` and
``benchmarks/hashing.py``. ``Media.hashing`` picks one; both give the same ``version``
because they compute the same hash, within a few bits.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pdqhash

from detector.decode import HashingPath, Media
from detector.fastpdq import pdq_from_luma
from detector.tools.base import HashResult, HashTool, ToolKind


def reference_pdq(media: Media) -> tuple[bytes, int]:
    """PDQ through ``pdqhash`` on the full-size RGB decode: hash bytes and quality."""
    vector, quality = pdqhash.compute(np.asarray(media.rgb()))
    # Bit i of the vector is the i-th most significant bit of the hex string, which is how
    # python-threatexchange and the C++ reference print PDQ hashes.
    return np.packbits(vector.astype(np.uint8)).tobytes(), int(quality)


def fast_pdq(media: Media) -> tuple[bytes, int]:
    """PDQ from the reduced-size luma view (``Media.grey``): hash bytes and quality."""
    grey = media.grey()
    return pdq_from_luma(grey.luma, grey.width, grey.height, grey.scale_x, grey.scale_y)


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

    def hash(self, media: Media) -> HashResult:
        value, quality = reference_pdq(media) if media.hashing is HashingPath.REFERENCE else fast_pdq(media)
        return HashResult(tool=self.name, value=value, quality=quality)
