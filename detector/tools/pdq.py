"""PDQ: Meta's 256-bit perceptual hash, through ``pdqhash`` (bindings to the reference C++)."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pdqhash

from detector.decode import Media
from detector.tools.base import HashResult, HashTool, ToolKind


class PdqTool(HashTool):
    name = "pdq"
    version = f"pdqhash-{version('pdqhash')}"
    kind = ToolKind.PERCEPTUAL
    bits = 256
    # Meta's published operating point for PDQ (ThreatExchange, HMA): distance <= 31 of 256.
    default_threshold = 31
    description = "PDQ perceptual hash (Meta reference implementation), Hamming distance."

    def hash(self, media: Media) -> HashResult:
        pixels = np.asarray(media.rgb())
        vector, quality = pdqhash.compute(pixels)
        # Bit i of the vector is the i-th most significant bit of the hex string, which is how
        # python-threatexchange and the C++ reference print PDQ hashes.
        return HashResult(tool=self.name, value=np.packbits(vector.astype(np.uint8)).tobytes(), quality=int(quality))
