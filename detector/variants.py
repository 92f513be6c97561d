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


# A border line (row or column) is near-uniform (standard deviation at most _FLAT grey levels) or
# blurred (mean step between neighbours along it at most _SMOOTH, or _SMOOTHER times the median line's,
# and its mean close to the previous line's). Photographs' own lines rarely pass both tests for many lines at once; where they do (a
# clear sky) the trimmed variant is a crop of the picture, which costs nothing but an extra query.
_FLAT = 6.0
_SMOOTH = 0.8
_SMOOTHER = 0.35
_STEP = 3.0
# Each side gives up at most this share of its axis, and a border thinner than _MIN_SHARE of the
# axis is ignored (no variant): it would change the hash by less than the threshold anyway.
_MAX_SIDE = 0.4
_MIN_SHARE = 0.01


def _leading(lines: npt.NDArray[np.float32], limit: int) -> int:
    """How many of ``lines`` (one per row of the array), from the first, look like a border."""
    if lines.shape[0] == 0 or lines.shape[1] < 2 or limit < 0:
        return 0
    std = lines.std(axis=1)
    smooth = np.abs(np.diff(lines, axis=1)).mean(axis=1)
    means = lines.mean(axis=1)
    steps = np.abs(np.diff(means, prepend=means[0]))
    # "Smooth" is relative to the picture's own lines: a blurred frame is several times smoother than them.
    smooth_limit = max(_SMOOTH, _SMOOTHER * float(np.median(smooth)))
    border = (std <= _FLAT) | ((smooth <= smooth_limit) & (steps <= _STEP))
    count = 0
    for ok in border[: limit + 1]:
        if not ok:
            break
        count += 1
    return count


def find_borders(luma: npt.NDArray[np.generic]) -> Borders | None:
    """The picture inside a uniform, near-uniform or blurred border of a luma plane, or None if there is none.

    Three rounds (rows over all columns, columns over the rows kept, rows again over the columns
    kept), so a pillarboxed picture inside a letterbox loses both.
    """
    plane = np.asarray(luma, dtype=np.float32)
    height, width = plane.shape
    top, bottom, left, right = 0, height, 0, width
    for axis in (0, 1, 0):
        if axis == 0:
            region = plane[:, left:right]
            limit = int(height * _MAX_SIDE)
            top += _leading(region[top:], limit - top)
            bottom -= _leading(region[:bottom][::-1], limit - (height - bottom))
        else:
            region = plane[top:bottom].T
            limit = int(width * _MAX_SIDE)
            left += _leading(region[left:], limit - left)
            right -= _leading(region[:right][::-1], limit - (width - right))
    # The first line inside a border is usually part border (a border rarely ends on a pixel edge of a
    # reduced plane, and JPEG blurs the edge): drop it too. A line is a fraction of a percent of the picture.
    if max(top, height - bottom) > int(height * _MAX_SIDE) or max(left, width - right) > int(width * _MAX_SIDE):
        return None  # "border" past the limit: a flat picture, or a flat half of one, not a frame
    top, left = top + (top > 0), left + (left > 0)
    bottom, right = bottom - (bottom < height), right - (right < width)
    if bottom - top < 8 or right - left < 8:
        return None
    if (top + height - bottom) < _MIN_SHARE * height and (left + width - right) < _MIN_SHARE * width:
        return None
    return Borders(top=top, bottom=bottom, left=left, right=right)


def enabled_for(wanted: Iterable[str], supported: Iterable[str]) -> tuple[str, ...]:
    """The variants among ``wanted`` a tool supports, in canonical order."""
    chosen = set(wanted) & set(supported)
    return tuple(v for v in VARIANTS if v in chosen)
