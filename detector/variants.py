"""Query variants: the extra hashes of one upload that let cheap evasions and quirky list makers still match.

A scan hashes the upload as it is (``original``) and, for the tools that support it, also as it
would look after each symmetry of the square, with its border removed, or as a hasher with a
known quirk would have hashed the same file. Each variant is searched like the original and a
hit records the variant's name as ``transform``. Variants are extra queries, never replacements:
the original is always searched.

Names (``transform`` in matches, evidence and tickets, ``HASHGUARD_QUERY_VARIANTS``):

* the dihedral transforms, as Pillow's ``Image.Transpose`` members: the upload *is the listed picture
  after that transform*. ``rot90``: rotated 90 degrees counter-clockwise (found by hashing the upload
  rotated back, clockwise: ``undo``), ``rot270`` clockwise, ``rot180``; ``mirror_h`` flipped left-right,
  ``mirror_v`` top-bottom; ``transpose`` and ``transverse`` reflected about the two diagonals (each of
  these is its own inverse). PDQ, pHash and dHash compute all seven from the one decode.
  A list may switch them off (``hashguard hashsets set-dihedral NAME off``) when its issuer has
  already added the dihedral hashes of every picture.
* ``trimmed``: the upload with a uniform, near-uniform or blurred border (frames, letterboxing,
  pillarboxing) removed, found by ``find_borders``.
* ``compat_cmyk``, ``compat_palette``, ``compat_grey16`` (PDQ only): what python-threatexchange's
  ``pdq_from_bytes`` (the hasher HMA uses) computes for a CMYK JPEG (the C, M and Y planes taken as
  R, G and B), a palette image (the palette *indices* taken as grey levels) and 16-bit greyscale
  (Pillow's conversion, which clips every sample above 255 to white). hashguard's own hash of such a
  file is the correct one; a list made with that tool holds the quirky one, so we also ask for it.
  See docs/evasion.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kernel.query_variants import COMPAT, DIHEDRAL, GROUPS, ORIGINAL, TRIMMED, VARIANTS, parse_variants

# The names live in the kernel, shared with the setting's parser.
__all__ = ["COMPAT", "DIHEDRAL", "GROUPS", "ORIGINAL", "TRIMMED", "VARIANTS", "parse_variants"]


def is_dihedral(transform: str) -> bool:
    return transform in DIHEDRAL


def undo(transform: str) -> str:
    """The dihedral transform that turns an upload made by ``transform`` back into the listed picture."""
    return {"rot90": "rot270", "rot270": "rot90"}.get(transform, transform)


@dataclass(frozen=True, kw_only=True, slots=True)
class Borders:
    """The picture inside a border, in the pixels of the plane it was found in: rows ``top:bottom``, columns ``left:right``."""

    top: int
    bottom: int
    left: int
    right: int


# A border line (row or column) is uniform (standard deviation at most _FLAT grey levels, mean within
# _SAME of the outermost line's: the border's colour) or blurred (mean step between neighbours along
# it at most _SMOOTH, or _SMOOTHER times the picture's typical line's, and its mean within _STEP of
# the previous line's). A photograph's own flat edge (a sky, a dark surround) that differs in colour
# from the border stops the search; one that does not is trimmed too, which costs only a weaker query.
_FLAT = 6.0
_SAME = 10.0
_SMOOTH = 0.8
_SMOOTHER = 0.35
_STEP = 3.0
# Each side gives up at most this share of its axis, and a border thinner than _MIN_SHARE of the
# axis is ignored (no variant): it would change the hash by less than the threshold anyway.
_MAX_SIDE = 0.4
_MIN_SHARE = 0.01


def _leading(lines: npt.NDArray[np.generic], limit: int, smooth_limit: float) -> int:
    """How many of ``lines`` (a view, one line per row, the outermost first) look like a border, at most
    ``limit + 1`` (past the limit: no border). Examined in growing blocks, so a side without a border
    costs one small block, not a pass over the picture.
    """
    count, block = 0, 8
    border_mean: float | None = None
    previous: float | None = None
    available = min(lines.shape[0], limit + 1)
    if lines.shape[1] < 2:
        return 0
    while count < available:
        chunk = lines[count : min(available, count + block)].astype(np.float32)
        std = chunk.std(axis=1)
        smooth = np.abs(np.diff(chunk, axis=1)).mean(axis=1)
        means = chunk.mean(axis=1)
        for k in range(chunk.shape[0]):
            mean = float(means[k])
            border_mean = mean if border_mean is None else border_mean
            uniform = std[k] <= _FLAT and abs(mean - border_mean) <= _SAME
            blurred = smooth[k] <= smooth_limit and (previous is None or abs(mean - previous) <= _STEP)
            if not (uniform or blurred):
                return count
            previous = mean
            count += 1
        block *= 2
    return count


def find_borders(luma: npt.NDArray[np.generic]) -> Borders | None:
    """The picture inside a uniform, near-uniform or blurred border of a luma plane, or None if there is none.

    Three rounds (rows over all columns, columns over the rows kept, rows again over the columns
    kept), so a pillarboxed picture inside a letterbox loses both.
    """
    plane = np.asarray(luma)
    height, width = plane.shape
    if height < 16 or width < 16:
        return None
    # What "smooth" means for this picture: the median step along a sample of its rows and columns.
    sample_rows = plane[:: max(1, height // 32)].astype(np.float32)
    sample_cols = plane[:, :: max(1, width // 32)].T.astype(np.float32)
    steps = [np.abs(np.diff(m, axis=1)).mean(axis=1) for m in (sample_rows, sample_cols)]
    smooth_limit = max(_SMOOTH, _SMOOTHER * float(np.median(np.concatenate(steps))))
    top, bottom, left, right = 0, height, 0, width
    row_limit, col_limit = int(height * _MAX_SIDE), int(width * _MAX_SIDE)
    for axis in (0, 1, 0):
        region = plane[top:bottom, left:right]
        if axis == 0:
            above = _leading(region, row_limit - top, smooth_limit)
            below = _leading(region[::-1], row_limit - (height - bottom), smooth_limit)
            top, bottom = top + above, bottom - below
        else:
            before = _leading(region.T, col_limit - left, smooth_limit)
            after = _leading(region.T[::-1], col_limit - (width - right), smooth_limit)
            left, right = left + before, right - after
        if top > row_limit or height - bottom > row_limit or left > col_limit or width - right > col_limit:
            return None  # "border" past the limit: a flat picture, or a flat half of one, not a frame
        if bottom - top < 8 or right - left < 8:
            return None
    if (top + height - bottom) < _MIN_SHARE * height and (left + width - right) < _MIN_SHARE * width:
        return None
    # The first line inside a border is usually part border (a border rarely ends on a pixel edge of a
    # reduced plane, and JPEG blurs the edge): drop it too. A line is a fraction of a percent of the picture.
    top, left = top + (top > 0), left + (left > 0)
    bottom, right = bottom - (bottom < height), right - (right < width)
    return Borders(top=top, bottom=bottom, left=left, right=right)


def trim_candidates(luma: npt.NDArray[np.generic]) -> list[Borders]:
    """The boxes the ``trimmed`` variant hashes: the border as found, and as frames usually are.

    A picture whose own edge has the border's colour (a white studio floor inside a white frame)
    makes the search run on into the picture on that side. Frames and bars are symmetric, so the
    narrower of two opposite runs is also tried on both sides (letterbox, pillarbox), and where all
    four sides have a border, the narrowest on all four (a frame), and the bars of each axis alone. At most
    five boxes, each a query (most bordered uploads give one or two).
    """
    found = find_borders(luma)
    if found is None:
        return []
    height, width = np.asarray(luma).shape
    top, bottom = found.top, height - found.bottom
    left, right = found.left, width - found.right
    vertical, horizontal = min(top, bottom), min(left, right)
    boxes = [found, Borders(top=vertical, bottom=height - vertical, left=horizontal, right=width - horizontal)]
    if vertical and horizontal:
        # The same width in original pixels on every side; the plane may be reduced unevenly (scale_x != scale_y) only
        # for very long axes, where frames are not the question.
        frame = min(vertical, horizontal)
        boxes.append(Borders(top=frame, bottom=height - frame, left=frame, right=width - frame))
        # Bars on one axis only (letterbox, pillarbox), the other axis's run being the picture's own flat edge.
        boxes.append(Borders(top=vertical, bottom=height - vertical, left=0, right=width))
        boxes.append(Borders(top=0, bottom=height, left=horizontal, right=width - horizontal))
    unique: list[Borders] = []
    for box in boxes:
        if (
            box not in unique
            and box.bottom - box.top >= 8
            and box.right - box.left >= 8
            and box != Borders(top=0, bottom=height, left=0, right=width)
        ):
            unique.append(box)
    return unique


def enabled_for(wanted: Iterable[str], supported: Iterable[str]) -> tuple[str, ...]:
    """The variants among ``wanted`` a tool supports, in canonical order."""
    chosen = set(wanted) & set(supported)
    return tuple(v for v in VARIANTS if v in chosen)
