"""Decoding uploads into pixels, with the size and pixel limits enforced before any decode work.

Shared by every perceptual tool so an upload is decoded once per scan. Orientation: EXIF
rotation is *not* applied, because the reference hashers that made the vetted lists
(python-threatexchange's PDQ hasher, imagehash) hash the stored pixel grid as it is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from detector.errors import CorruptMedia, ImageTooLarge, UnsupportedMedia

# Formats a platform sends for still images. Anything else is refused with 415 instead of
# being handed to a less-exercised Pillow decoder.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

# hashguard enforces its own pixel limit (HASHGUARD_MAX_PIXELS) from the header before
# decoding, with a clear 422; Pillow's global limit would instead warn or raise its own error.
Image.MAX_IMAGE_PIXELS = None


@dataclass(slots=True)
class Media:
    """One upload: its raw bytes and, once decoded, its first frame as 8-bit RGB."""

    data: bytes
    max_pixels: int
    format: str | None = None
    width: int = 0
    height: int = 0
    _rgb: Image.Image | None = field(default=None, repr=False)

    def rgb(self) -> Image.Image:
        """The decoded first frame in RGB, decoded on first use (in a worker thread, never the loop)."""
        if self._rgb is None:
            self._rgb = decode_rgb(self)
        return self._rgb


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


def decode_rgb(media: Media) -> Image.Image:
    """Decode the first frame of ``media`` into RGB pixels."""
    image = open_checked(media.data, media.max_pixels)
    media.format, (media.width, media.height) = image.format, image.size
    try:
        image.seek(0)  # first frame of animated GIF/WebP/APNG and multi-page TIFF
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        # Truncated data, bad chunks, broken compressed streams: the client's file is at fault.
        raise CorruptMedia("the image is truncated or corrupt and cannot be decoded") from exc
