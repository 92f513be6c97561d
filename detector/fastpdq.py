"""PDQ computed from a reduced-size greyscale image, faithful to Meta's reference.

The reference (``pdq/cpp/hashing/pdqhashing.cpp``, which the ``pdqhash`` package wraps)
hashes the full-resolution luma plane: two passes of a Jarosz box filter along rows and
columns (window ``ceil(dim / 128)``, i.e. a tent about 1/64 of the image wide), then it keeps
one pixel per 64th of the image (decimation), takes a 16x16 corner of the 2-D DCT and
thresholds it at the median.

Box filters and decimation are linear and act separately on rows and columns, so the whole
downsample is ``R @ luma @ C.T`` with ``R`` a 64 x height and ``C`` a 64 x width weight
matrix that depends only on the image size. That is the key to a fast *and* faithful path:

* the weights are computed exactly as the reference's filter would apply them, edge windows
  and all (``_reference_weights``), so nothing is approximated on the full-resolution grid;
* when the image was decoded at 1/s of its size (JPEG DCT scaling, or ``Image.reduce``),
  each reduced pixel is very nearly the mean of an s x s block of original pixels, so its
  weight is the sum of the original weights over that block (``reduced_weights``). The only
  error is the luma variation *inside* a block times the weight variation across it, which
  is second order as long as a block is small against the tent (we keep s <= tent / 4).

Merely hashing a reduced image with the reference instead (what a naive draft-decode does)
changes the filter itself: the window is recomputed from the smaller size and rounds
differently, and the decimation picks other pixels, which here drifted up to 56 of 256 bits.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

# The reference's constants (pdqhashing.cpp, downscaling.cpp).
_OUT = 64
_PASSES = 2
_MIN_HASHABLE_DIM = 5

FloatArray = npt.NDArray[np.float64]


def window_size(dimension: int) -> int:
    """The reference's Jarosz window along one axis (``computeJaroszFilterWindowSize``)."""
    return (dimension + 2 * _OUT - 1) // (2 * _OUT)


def _box(weights: FloatArray, window: int) -> FloatArray:
    """Apply the reference's 1-D box filter (``box1DFloat``) to each row of ``weights``, transposed.

    ``box1DFloat`` writes ``out[j] = mean(in[j-a .. j+b])`` with the window clipped at the edges
    and the mean taken over the pixels actually inside. Here the rows of ``weights`` say how
    much each *output* sample depends on each filter output; pushing them through the filter
    (``w @ B``) says how much it depends on each filter *input*.
    """
    n = weights.shape[1]
    half = (window + 2) // 2
    left, right = window - half, half - 1
    j = np.arange(n)
    count = np.minimum(j + right, n - 1) - np.maximum(j - left, 0) + 1
    scaled = weights / count  # row i, column j: weight of filter output j, over its window size
    # (w @ B)[k] = sum of scaled[j] over the outputs j whose window holds k: j in [k-right, k+left].
    cumulative = np.concatenate([np.zeros((weights.shape[0], 1)), np.cumsum(scaled, axis=1)], axis=1)
    hi = np.minimum(j + left, n - 1) + 1
    lo = np.maximum(j - right, 0)
    result: FloatArray = cumulative[:, hi] - cumulative[:, lo]
    return result


# Weight matrices are cached per axis length because uploads repeat a few sizes (camera and
# screen resolutions). Only the small, reduced float32 ones are kept in number: a full-size
# 64 x n float64 matrix is 0.5 kB per pixel of n, and upload sizes are chosen by strangers.
@lru_cache(maxsize=4)
def _reference_weights(n: int) -> FloatArray:
    """The 64 x n matrix mapping one full-resolution axis to the reference's 64 samples."""
    weights = np.zeros((_OUT, n))
    # decimateFloat: target centres, not corners (computed in double, then truncated).
    picks = ((np.arange(_OUT) + 0.5) * n / _OUT).astype(np.int64)
    weights[np.arange(_OUT), picks] = 1.0
    window = window_size(n)
    for _ in range(_PASSES):
        weights = _box(weights, window)
    return weights


# Above this axis length the weights are built per sample over its support only (``_local_weights``):
# the full 64 x n float64 matrix would be 0.5 kB per pixel (51 GB for a 100,000,000-pixel axis).
_LOCAL_ABOVE = 8192


def _box_segment(values: FloatArray, start: int, n: int, window: int) -> tuple[FloatArray, int]:
    """``_box`` for one row that is zero outside ``values`` (global indices ``start`` .. ``start + len - 1``).

    Returns the filtered row over the only indices it can reach (the segment widened by the
    window, clipped to the axis) and where that starts; the arithmetic is ``_box``'s, restricted.
    """
    half = (window + 2) // 2
    left, right = window - half, half - 1
    end = start + len(values) - 1
    j = np.arange(start, end + 1)
    count = np.minimum(j + right, n - 1) - np.maximum(j - left, 0) + 1
    cumulative = np.concatenate([[0.0], np.cumsum(values / count)])
    first, last = max(0, start - left), min(n - 1, end + right)
    k = np.arange(first, last + 1)
    hi = np.clip(k + left, start - 1, end) - start + 1
    lo = np.clip(k - right, start, end + 1) - start
    result: FloatArray = cumulative[hi] - cumulative[lo]
    return result, first


def _local_weights(n: int, scale: int) -> FloatArray:
    """``reduced_weights`` without the full-resolution matrix: each sample's tent is built on its support only.

    A sample's weights after two box passes reach at most two windows either side of its pick,
    so each row costs about ``4 * window`` values and the whole matrix ``64 * ceil(n / scale)``.
    """
    window = window_size(n)
    out = np.zeros((_OUT, -(-n // scale)))
    picks = ((np.arange(_OUT) + 0.5) * n / _OUT).astype(np.int64)
    for i, pick in enumerate(picks):
        row, first = np.ones(1), int(pick)
        for _ in range(_PASSES):
            row, first = _box_segment(row, first, n, window)
        # Sum the row over the blocks of ``scale`` original pixels it overlaps.
        blocks = np.arange(first // scale, (first + len(row) - 1) // scale + 1)
        edges = np.maximum(blocks * scale, first) - first
        out[i, blocks] = np.add.reduceat(row, edges)
    return out


@lru_cache(maxsize=4)
def reduced_weights(n: int, scale: int) -> FloatArray:
    """The weights for an axis of ``n`` original pixels decoded at 1/``scale`` (``ceil(n/scale)`` pixels)."""
    if n > _LOCAL_ABOVE:
        return _local_weights(n, scale)
    full = _reference_weights(n)
    if scale == 1:
        return full
    starts = np.arange(0, n, scale)
    summed: FloatArray = np.add.reduceat(full, starts, axis=1)
    return summed


@lru_cache(maxsize=32)
def _float32_weights(n: int, scale: int) -> npt.NDArray[np.float32]:
    return reduced_weights(n, scale).astype(np.float32)


@lru_cache(maxsize=1)
def _dct_matrix() -> FloatArray:
    """``dct_matrix_64``: rows 1..16 of the 64-point DCT-II, as the reference builds it."""
    i = np.arange(1, 17)[:, None]
    j = np.arange(64)[None, :]
    matrix: FloatArray = np.sqrt(2.0 / 64) * np.cos(np.pi / 2.0 / 64 * i * (2 * j + 1))
    return matrix


def max_scale(dimension: int) -> int:
    """The largest reduction (1, 2, 4 or 8) that stays faithful along an axis of ``dimension`` pixels.

    The tent spans about ``2 * window`` original pixels; a reduced pixel may be at most a
    sixth of that wide so that the weights, summed per block, still follow the tent's shape.
    Measured on the benchmark corpus: a quarter already drifted up to 6 bits at 640x480 and
    pushed dHash (whose 9x8 resize shares the decode) past 2 bits; a sixth keeps PDQ within
    6 bits everywhere and means 12-megapixel photos decode at 1/8, 1080p at 1/2, VGA at full size.
    """
    tent = 2 * window_size(dimension)
    for scale in (8, 4, 2):
        if scale * 6 <= tent:
            return scale
    return 1


def max_reduction(dimension: int) -> int:
    """The largest integer reduction along an axis that keeps a reduced pixel within a sixth of the tent.

    ``max_scale``'s rule without its cap at 8 (JPEG's largest DCT scaling): for formats reduced by
    box averaging, and for very long axes, where 1/8 would still leave millions of samples.
    """
    return max(1, 2 * window_size(dimension) // 6)


def quality(buffer64: FloatArray) -> int:
    """``pdqImageDomainQualityMetric``: count of significant gradients in the 64x64 image."""
    # The reference truncates each scaled difference towards zero before taking |d|.
    vertical = np.trunc((buffer64[:-1, :] - buffer64[1:, :]) * 100 / 255)
    horizontal = np.trunc((buffer64[:, :-1] - buffer64[:, 1:]) * 100 / 255)
    total = int(np.abs(vertical).sum() + np.abs(horizontal).sum())
    return min(100, total // 90)


def _coefficients(
    luma: npt.NDArray[np.generic], width: int, height: int, scale_x: int, scale_y: int
) -> tuple[FloatArray, FloatArray]:
    """The 16x16 DCT block and the 64x64 buffer of a luma plane (see ``pdq_from_luma`` for the arguments)."""
    expected = (-(-height // scale_y), -(-width // scale_x))
    if luma.shape != expected:
        raise ValueError(f"luma plane is {luma.shape}, expected {expected} for {width}x{height} at 1/{scale_x}x1/{scale_y}")
    # float32 products, float64 weights rounded to float32: the reference itself filters in
    # float32, and this halves the one costly step (a 64 x h by h x w product).
    plane = luma.astype(np.float32, copy=False)
    # (A 64x64 input, which the reference copies without blurring, needs no special case:
    # its window is 1 pixel and the decimation keeps every pixel, so the weights are identity.)
    rows, cols = _float32_weights(height, scale_y), _float32_weights(width, scale_x)
    buffer64 = ((rows @ plane) @ cols.T).astype(np.float64)
    dct = _dct_matrix()
    coefficients: FloatArray = dct @ buffer64 @ dct.T
    return coefficients, buffer64


def _bits(coefficients: FloatArray) -> bytes:
    # torben() returns the lower median of the 256 values; a bit is set when strictly above it.
    flat = coefficients.ravel()
    median = np.partition(flat, 127)[127]
    # The reference stores bit k = 16*i + j of the 16x16 block counting from the least
    # significant end of the 256-bit value; its hex string starts with bit 255.
    bits = (flat > median)[::-1]
    return np.packbits(bits).tobytes()


def pdq_from_luma(
    luma: npt.NDArray[np.generic], width: int, height: int, scale_x: int = 1, scale_y: int = 1
) -> tuple[bytes, int]:
    """The PDQ hash (32 bytes, as the reference prints it) and quality of a luma plane.

    ``luma`` is the image's luma, decoded at 1/``scale_x`` x 1/``scale_y`` of the original
    ``width`` x ``height`` (1 = full size); its shape must be ``ceil(height/scale_y), ceil(width/scale_x)``.
    """
    if width < _MIN_HASHABLE_DIM or height < _MIN_HASHABLE_DIM:
        return bytes(32), 0
    coefficients, buffer64 = _coefficients(luma, width, height, scale_x, scale_y)
    return _bits(coefficients), quality(buffer64)


# The eight symmetries of the square, named as Pillow's ``Image.Transpose`` members (``original``:
# none). The DCT-II basis is even or odd about the centre: reversing a 64-sample axis multiplies
# frequency k by (-1)**k, and transposing the picture transposes the block. So every transform's
# block follows from the one DCT, with S = diag((-1)**k) over the block's frequencies 1..16:
#   FLIP_LEFT_RIGHT  B J    -> C S        FLIP_TOP_BOTTOM  J B      -> S C      ROTATE_180  J B J -> S C S
#   TRANSPOSE        B^T    -> C^T        TRANSVERSE       J B^T J  -> S C^T S
#   ROTATE_90 (ccw)  J B^T  -> S C^T      ROTATE_270 (ccw) B^T J    -> C^T S
# This is what Meta's reference does (``pdqDihedralHash256esFromFloatLuma``): one DCT, eight
# thresholdings, each at its own median; tests/unit/test_dihedral.py holds both to pdqhash's.
DIHEDRAL: tuple[str, ...] = ("original", "rot90", "rot180", "rot270", "mirror_h", "mirror_v", "transpose", "transverse")
_SIGNS = np.array([(-1.0) ** k for k in range(1, 17)])


def dihedral_blocks(coefficients: FloatArray) -> dict[str, FloatArray]:
    """The 16x16 DCT block of each dihedral transform of the picture whose block is ``coefficients``."""
    c, s = coefficients, _SIGNS
    t = c.T
    return {
        "original": c,
        "rot90": s[:, None] * t,
        "rot180": s[:, None] * c * s[None, :],
        "rot270": t * s[None, :],
        "mirror_h": c * s[None, :],
        "mirror_v": s[:, None] * c,
        "transpose": t,
        "transverse": s[:, None] * t * s[None, :],
    }


def pdq_dihedral_from_luma(
    luma: npt.NDArray[np.generic], width: int, height: int, scale_x: int = 1, scale_y: int = 1
) -> tuple[dict[str, bytes], int]:
    """The PDQ hashes of the eight dihedral transforms of a luma plane, from one pass, and the quality.

    Arguments as ``pdq_from_luma``, whose hash is ``["original"]``. ``["rot90"]`` is (within a few bits,
    as for the reference) the hash of the picture rotated 90 degrees counter-clockwise, and so on for
    the names of ``DIHEDRAL``. The cost over one hash is seven thresholdings of 256 values.
    """
    if width < _MIN_HASHABLE_DIM or height < _MIN_HASHABLE_DIM:
        return dict.fromkeys(DIHEDRAL, bytes(32)), 0
    coefficients, buffer64 = _coefficients(luma, width, height, scale_x, scale_y)
    return {name: _bits(block) for name, block in dihedral_blocks(coefficients).items()}, quality(buffer64)
