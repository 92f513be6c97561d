"""Decoding uploads into pixels, with the size and pixel limits enforced before any decode work.

Shared by every perceptual tool so an upload is decoded once per scan. Two views exist:

* ``Media.rgb()``: the first frame at full size in 8-bit RGB. This is what the reference
  implementations hash (python-threatexchange's PDQ hasher and imagehash both take the
  decoded Pillow image), so the reference path and the fidelity tests use it.
* ``Media.grey()``: the first frame's luma, decoded at a reduced size where that is safe
  (JPEG's DCT scaling decodes 1/2, 1/4 or 1/8 of the pixels for a fraction of the work;
  other formats are decoded whole and box-averaged). The fast tool paths use it and replay
  the reference's filtering on it; see ``detector.fastpdq`` (PDQ) and ``detector.tools.imagehashes``
  (pHash and dHash).

Orientation: EXIF rotation is *not* applied, on purpose. The reference hashers that made the
vetted lists hash the stored pixel grid as it is: python-threatexchange's ``pdq_from_bytes``
calls ``Image.open`` then ``np.asarray``, and ``imagehash.phash``/``dhash`` convert and resize
the image they are given; neither calls ``ImageOps.exif_transpose`` (and Meta's C++ CLI reads
pixels through CImg, which ignores EXIF too). Rotating would make an upload's hash differ from
the list's hash of the very same file. ``tests/unit/test_decode.py`` pins this down.

Alpha is dropped, not composited: the references hash the colour stored under transparent
pixels (pdqhash reads the first three channels, imagehash converts to "L"), and so do we.

16-bit greyscale (Pillow's "I;16" modes and "I") is the one deliberate departure: Pillow's own
conversion to 8 bits *clips* at 255, so the references hash a nearly white picture. We keep
the top 8 bits instead, which is what any viewer shows and what an 8-bit copy of the same
picture (the likelier list entry) hashes to.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, UnidentifiedImageError

from detector.errors import CorruptMedia, ImageTooLarge
from detector.fastpdq import max_scale
from kernel.errors import UnsupportedMedia

# Formats a platform sends for still images. Anything else is refused with 415 instead of
# being handed to a less-exercised Pillow decoder.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

# hashguard enforces its own pixel limit (HASHGUARD_MAX_PIXELS) from the header before
# decoding, with a clear 422; Pillow's global limit would instead warn or raise its own error.
Image.MAX_IMAGE_PIXELS = None
# A truncated file is the client's fault and must be a 422, never a half-grey picture hashed
# as if it were whole (Pillow's default, kept explicit because it is a global other code could flip).
ImageFile.LOAD_TRUNCATED_IMAGES = False

# MemoryError is not here: running out of memory is our failure (a 500 the platform retries), not a corrupt file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class HashingPath(StrEnum):
    """Which implementation the perceptual tools use (``HASHGUARD_HASHING``)."""

    FAST = "fast"  # reduced-size decode, reference filtering replayed on it
    REFERENCE = "reference"  # full-size decode, the reference implementations as they are


@dataclass(frozen=True, kw_only=True, slots=True)
class Grey:
    """The upload's luma decoded at 1/``scale`` of its ``width`` x ``height`` (an integer in 1, 2, 4, 8).

    The image is ``ceil(width / scale)`` x ``ceil(height / scale)`` pixels; each pixel stands
    for an ``scale`` x ``scale`` block of the original (the last row and column for what is left).
    """

    image: Image.Image  # mode "L"
    luma: npt.NDArray[np.float32]  # the same plane in float; exactly the reference's luma at scale 1
    width: int
    height: int
    scale: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The original picture's extent in reduced pixels, for ``Image.resize(box=...)``."""
        return (0.0, 0.0, self.width / self.scale, self.height / self.scale)


@dataclass(slots=True)
class Media:
    """One upload: its raw bytes and, once decoded, the views the tools hash."""

    data: bytes
    max_pixels: int
    hashing: HashingPath = HashingPath.FAST
    format: str | None = None
    width: int = 0
    height: int = 0
    _rgb: Image.Image | None = field(default=None, repr=False)
    _grey: Grey | None = field(default=None, repr=False)

    def decode(self) -> None:
        """Decode the view the configured hashing path needs, raising the 4xx errors if it cannot be read."""
        if self.hashing is HashingPath.FAST:
            self.grey()
        else:
            self.rgb()

    def rgb(self) -> Image.Image:
        """The decoded first frame in RGB at full size, decoded on first use (in a worker, never the loop)."""
        if self._rgb is None:
            self._rgb = decode_rgb(self)
        return self._rgb

    def grey(self) -> Grey:
        """The first frame's luma at the reduction ``reduction()`` allows, decoded on first use."""
        if self._grey is None:
            self._grey = decode_grey(self)
        return self._grey


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open the header only and check format and size; raises a 4xx ``DetectorError``."""
    if not data:
        raise UnsupportedMedia("the upload is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise UnsupportedMedia(f"the upload is not an image in a supported format ({', '.join(SUPPORTED_FORMATS)})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMedia("the image header is corrupt") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptMedia("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image has {width}x{height} pixels; at most {max_pixels} pixels are accepted")
    return image


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale to 8-bit by keeping the top byte (see the module docstring)."""
    pixels = np.asarray(image)
    if image.mode == "I":
        # Pillow widens 16-bit PNG and TIFF samples to "I" in some versions; values are still 0..65535.
        pixels = np.clip(pixels, 0, 65535)
    return Image.fromarray((pixels.astype(np.uint32) >> 8).astype(np.uint8), mode="L")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT:
        image = _eight_bit(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_grey(image: Image.Image) -> Image.Image:
    """Luma as the references compute it: Pillow's RGB-to-L, from RGB (not from CMYK, P or LA directly)."""
    if image.mode in _SIXTEEN_BIT:
        return _eight_bit(image)
    if image.mode == "L":
        return image
    return _to_rgb(image).convert("L")


def decode_rgb(media: Media) -> Image.Image:
    """Decode the first frame of ``media`` into RGB pixels at full size."""
    image = open_checked(media.data, media.max_pixels)
    media.format, (media.width, media.height) = image.format, image.size
    try:
        image.seek(0)  # first frame of animated GIF/WebP/APNG and multi-page TIFF
        image.load()
        return _to_rgb(image)
    except _DECODE_ERRORS as exc:
        # Truncated data, bad chunks, broken compressed streams: the client's file is at fault.
        raise CorruptMedia("the image is truncated or corrupt and cannot be decoded") from exc


def reduction(width: int, height: int) -> int:
    """How far (1, 2, 4 or 8) an image may be reduced before hashing without the fast paths drifting.

    PDQ is the binding constraint: a reduced pixel must stay small against its blur (see
    ``detector.fastpdq.max_scale``). pHash and dHash average far wider areas (a 32x32 or
    9x8 Lanczos resize), so whatever PDQ allows is well inside their budget.
    """
    return min(max_scale(width), max_scale(height))


def decode_grey(media: Media) -> Grey:
    """Decode the first frame's luma at ``reduction()`` of its size.

    Reduced (large images): for JPEG, libjpeg's DCT scaling (``Image.draft``) decodes 1/s
    directly, and for a YCbCr JPEG straight to greyscale, skipping the chroma planes. The Y
    plane *is* the references' luma up to rounding, since JPEG's YCbCr uses the same
    0.299/0.587/0.114 weights. At 1/8 each output pixel is exactly its 8x8 block's mean (the
    DC coefficient), which is the block average ``detector.fastpdq`` assumes. Other formats
    have no reduced decode: they are decoded whole, converted, then box-averaged with
    ``Image.reduce``, which is the same block mean.

    Full size (small images, where decoding is cheap anyway): decoded to RGB exactly like the
    reference path, with PDQ's float luma computed as ``pdqhash`` does, so the fast tools give
    bit-identical hashes there.
    """
    image = open_checked(media.data, media.max_pixels)
    width, height = image.size
    media.format, media.width, media.height = image.format, width, height
    scale = reduction(width, height)
    try:
        image.seek(0)
        if scale == 1:
            image.load()
            rgb = _to_rgb(image)
            pixels = np.asarray(rgb, dtype=np.float64)
            # pdqhash.compute's own arithmetic: float64 products and sum, then float32.
            luma = (pixels[:, :, 0] * 0.299 + pixels[:, :, 1] * 0.587 + pixels[:, :, 2] * 0.114).astype(np.float32)
            return Grey(image=rgb.convert("L"), luma=luma, width=width, height=height, scale=1)
        drafted = 1
        # MPO (several JPEGs in one file, as some cameras write) is a JPEG subclass in Pillow.
        if image.format in ("JPEG", "MPO") and (result := image.draft("L", (width // scale, height // scale))) is not None:
            drafted = round(width / result[1][2])
        image.load()
        grey = _to_grey(image)
        if scale > drafted:
            grey = grey.reduce(scale // drafted)
    except _DECODE_ERRORS as exc:
        raise CorruptMedia("the image is truncated or corrupt and cannot be decoded") from exc
    return Grey(image=grey, luma=np.asarray(grey, dtype=np.float32), width=width, height=height, scale=scale)
