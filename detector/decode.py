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

Bounded memory: before any pixel is decoded, ``plan()`` works out from the header what the
decode will hold at its peak (the decoder's own image, every conversion alive at once, the
float planes), and an image whose plan exceeds the per-decode budget (``HASHGUARD_DECODE_MEMORY_MB``)
is refused with 422 ``image_too_large``, so the aspect ratio cannot multiply the cost: a
1 x 100,000,000 PNG costs Pillow a line pointer per row and is refused from its header. The
fast path never makes a full-size float copy: a long axis is box-reduced further than 1/8 (any
factor the PDQ tent allows, see ``detector.fastpdq.max_scale``) and PDQ's weights are built
locally per sample. ``HashPool`` adds the global budget across concurrent decodes.

Fail closed: a file whose data ends before its header's size is 422 ``corrupt_media``, even
where Pillow would pad it silently (``check_complete``): a PNG whose IDAT stream inflates to
fewer rows than IHDR declares, a baseline JPEG whose entropy data runs out before its last row
(libjpeg pads with grey and only warns, which Pillow ignores), an uncompressed TIFF whose strips
hold fewer bytes or rows than the image.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, UnidentifiedImageError

from detector.errors import CorruptMedia, ImageTooLarge
from detector.fastpdq import max_reduction, max_scale
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

MB = 1 << 20
# HASHGUARD_DECODE_MEMORY_MB's default, for code that builds a Media without settings (the CLI's hash command, tests).
DEFAULT_DECODE_BUDGET = 512 * MB
# Pillow refuses (with MemoryError) a row whose raw bits overflow a C int; we refuse such rows first, with a 422.
_MAX_ROW_BITS = (1 << 31) - 1
# A reduced axis longer than this is reduced further than 1/8, as far as PDQ's tent allows.
_LONG_AXIS = 4096
# pdqhash's own buffers on top of the RGB array it is given, per pixel (measured: a 100-megapixel RGB
# PNG peaked at 3.0 GB through the reference path; 4 bytes are Pillow's RGB image, 3 the array).
_PDQHASH_BYTES_PER_PIXEL = 24


class HashingPath(StrEnum):
    """Which implementation the perceptual tools use (``HASHGUARD_HASHING``)."""

    FAST = "fast"  # reduced-size decode, reference filtering replayed on it
    REFERENCE = "reference"  # full-size decode, the reference implementations as they are


@dataclass(frozen=True, kw_only=True, slots=True)
class Grey:
    """The upload's luma decoded at 1/``scale_x`` x 1/``scale_y`` of its ``width`` x ``height``.

    The image is ``ceil(width / scale_x)`` x ``ceil(height / scale_y)`` pixels; each pixel stands
    for a ``scale_x`` x ``scale_y`` block of the original (the last row and column for what is left).
    Both scales are equal (1, 2, 4 or 8) except along a very long axis, reduced further.
    """

    image: Image.Image  # mode "L"
    luma: npt.NDArray[np.float32]  # the same plane in float; exactly the reference's luma at scale 1
    width: int
    height: int
    scale_x: int
    scale_y: int

    @property
    def scale(self) -> int:
        """The smaller of the two reductions (they differ only for very thin images)."""
        return min(self.scale_x, self.scale_y)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The original picture's extent in reduced pixels, for ``Image.resize(box=...)``."""
        return (0.0, 0.0, self.width / self.scale_x, self.height / self.scale_y)


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """How an upload will be decoded, and the most memory that decode holds at once (``cost``, bytes)."""

    format: str
    mode: str
    width: int
    height: int
    hashing: HashingPath
    scale_x: int = 1
    scale_y: int = 1
    draft: int = 1  # JPEG's DCT scaling, 1 when not used
    cost: int = 0


@dataclass(slots=True)
class Media:
    """One upload: its raw bytes and, once decoded, the views the tools hash."""

    data: bytes
    max_pixels: int
    hashing: HashingPath = HashingPath.FAST
    # The most memory one decode may take (HASHGUARD_DECODE_MEMORY_MB), checked from the header.
    memory_budget: int = DEFAULT_DECODE_BUDGET
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
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError) as exc:
        raise CorruptMedia("the image header is corrupt") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptMedia("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image has {width}x{height} pixels; at most {max_pixels} pixels are accepted")
    return image


# ---------------------------------------------------------------------------------------------
# The memory plan


def _mode_bytes(mode: str) -> int:
    """Bytes per pixel of Pillow's storage for ``mode`` (every multi-band mode takes 4)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _image_bytes(mode: str, width: int, height: int) -> int:
    """Pillow's storage for one image: its pixels plus a line pointer per row (what makes thin images costly)."""
    return height * (width * _mode_bytes(mode) + 8)


def _to_grey_extra(mode: str) -> int:
    """Bytes per pixel ``_to_grey`` holds on top of the decoded image (its intermediates alive at once)."""
    if mode == "L":
        return 0
    if mode in _SIXTEEN_BIT:
        return 10  # the array copy, the shifted copy, the 8-bit result
    if mode == "RGB":
        return 1
    return 5  # to RGB, then to L


def reduction(width: int, height: int) -> int:
    """How far (1, 2, 4 or 8) an image may be reduced before hashing without the fast paths drifting.

    PDQ is the binding constraint: a reduced pixel must stay small against its blur (see
    ``detector.fastpdq.max_scale``). pHash and dHash average far wider areas (a 32x32 or
    9x8 Lanczos resize), so whatever PDQ allows is well inside their budget.
    """
    return min(max_scale(width), max_scale(height))


def _axis_scale(n: int, base: int) -> int:
    """``base``, or along an axis still longer than ``_LONG_AXIS`` after it, the widest multiple of it PDQ allows."""
    if -(-n // base) <= _LONG_AXIS:
        return base
    return max(base, max_reduction(n) // base * base)


def plan(image: Image.Image, hashing: HashingPath) -> Plan:
    """What decoding ``image`` (opened, not loaded) on ``hashing`` will take, from its header alone."""
    fmt, mode = image.format or "", image.mode
    width, height = image.size
    native = _image_bytes(mode, width, height)
    if hashing is HashingPath.REFERENCE:
        rgb = 0 if mode == "RGB" else _image_bytes("RGB", width, height) + _to_grey_extra(mode) * width * height
        cost = native + rgb + (3 + _PDQHASH_BYTES_PER_PIXEL) * width * height
        return Plan(format=fmt, mode=mode, width=width, height=height, hashing=hashing, cost=cost)
    base = reduction(width, height)
    scale_x, scale_y = _axis_scale(width, base), _axis_scale(height, base)
    if scale_x == scale_y == 1:
        # Full size, bit-identical to the reference: RGB, its float64 copy and the luma arithmetic.
        pixels = width * height
        cost = native + (0 if mode == "RGB" else 4 * pixels + _to_grey_extra(mode) * pixels) + 60 * pixels
        return Plan(format=fmt, mode=mode, width=width, height=height, hashing=hashing, cost=cost)
    draft = 1
    decoded_mode, decoded_w, decoded_h = mode, width, height
    if fmt in ("JPEG", "MPO") and base > 1:
        draft = base
        decoded_w, decoded_h = -(-width // draft), -(-height // draft)
        decoded_mode = "L" if mode in ("L", "YCbCr", "RGB") else mode
    decoded = _image_bytes(decoded_mode, decoded_w, decoded_h)
    reduced = -(-width // scale_x) * -(-height // scale_y)
    cost = decoded + _to_grey_extra(decoded_mode) * decoded_w * decoded_h + (1 + 1 + 4) * reduced
    return Plan(
        format=fmt,
        mode=mode,
        width=width,
        height=height,
        hashing=hashing,
        scale_x=scale_x,
        scale_y=scale_y,
        draft=draft,
        cost=cost,
    )


def _check_budget(image: Image.Image, decode_plan: Plan, budget: int) -> None:
    bits = {"1": 1, "L": 8, "P": 8}.get(image.mode, 64)
    if image.size[0] * bits > _MAX_ROW_BITS:
        raise ImageTooLarge(f"the image's rows of {image.size[0]} pixels are too long to decode")
    if decode_plan.cost > budget:
        raise ImageTooLarge(
            f"decoding this {decode_plan.width}x{decode_plan.height} {decode_plan.format} image ({decode_plan.mode}) would take"
            f" about {-(-decode_plan.cost // MB)} MB; at most {budget // MB} MB per image are decoded"
        )


def decode_cost(data: bytes, max_pixels: int, hashing: HashingPath, budget: int = DEFAULT_DECODE_BUDGET) -> int:
    """The memory (bytes) decoding ``data`` will hold, from its header; raises the 4xx errors a decode would raise first.

    Cheap (the header only): ``ScanService`` calls it before queuing, so a hostile upload is refused
    before it waits for a hashing slot, and the global decode budget counts the right amount.
    """
    image = open_checked(data, max_pixels)
    decode_plan = plan(image, hashing)
    _check_budget(image, decode_plan, budget)
    return decode_plan.cost


# ---------------------------------------------------------------------------------------------
# Completeness: data that ends before the header's size is corrupt, whatever the decoder pads


def _png_complete(data: bytes) -> None:
    """The first image's IDAT stream must inflate to every row IHDR declares (zlib ending early is not an error to Pillow)."""
    pos, ihdr, inflater, produced = 8, b"", zlib.decompressobj(), 0
    expected = 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = body
            if len(ihdr) < 13:
                raise CorruptMedia("the PNG header is corrupt")
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[:13])
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
            expected = _png_raw_size(width, height, depth * channels, interlace)
        elif kind == b"IDAT":
            # Inflate in bounded pieces, counting and discarding: the rows themselves are Pillow's to decode.
            chunk = body
            while chunk and not inflater.eof:
                out = inflater.decompress(chunk, 1 << 20)
                if not out and inflater.unconsumed_tail == chunk:
                    break  # no progress: let Pillow's decoder report what is wrong
                produced += len(out)
                chunk = inflater.unconsumed_tail
                if produced >= expected:
                    return
        elif kind == b"IEND" or (kind in (b"fdAT",) and produced):
            break
    if produced < expected:
        raise CorruptMedia("the PNG image data ends before the size its header declares")


def _png_raw_size(width: int, height: int, bits_per_pixel: int, interlace: int) -> int:
    """Bytes of filtered scanlines (filter byte included) a PNG of this size holds."""

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + -(-w * bits_per_pixel // 8))

    if not interlace:
        return rows(width, height)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    return sum(rows(-(-(width - x0) // dx), -(-(height - y0) // dy)) for x0, y0, dx, dy in passes)


# A marker inside entropy-coded data: 0xFF followed by neither a stuffed zero, a restart marker, nor fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Stuffed 0xFF bytes: all-ones bits, which no JPEG Huffman code is, so the decoder's look-ahead
# (up to 14 bytes measured) is fed without turning the padding into more than a couple of blocks.
_JPEG_PAD = b"\xff\x00" * 16


def _jpeg_prepared(data: bytes, image: Image.Image) -> bytes:
    """The bytes to hand libjpeg so that data ending before the last row is an error, not grey padding.

    libjpeg, on reaching a marker (EOI) before the rows the frame header declares, warns and
    fills the rest with grey; Pillow ignores its warnings. Without the EOI the decoder instead
    runs out of input before its last row, which Pillow reports as a truncated file. A complete
    file needs no EOI to finish its rows (``_JPEG_PAD`` keeps libjpeg's bit reader fed; at most
    a couple of 8x8 blocks could be read from it, far fewer than a row of MCUs).

    Baseline (sequential) JPEGs only: a progressive decoder reads every scan to the EOI before
    its first row, so there the entropy data is held to a lower bound instead (``_progressive_plausible``).
    """
    if image.info.get("progressive") or image.info.get("progression"):
        _progressive_plausible(data, image)
        return data
    end = _jpeg_first_eoi(data)
    if end is None:
        raise CorruptMedia("the JPEG data ends before its end-of-image marker")
    return data[:end] + _JPEG_PAD


def _jpeg_first_eoi(data: bytes) -> int | None:
    """Offset of the EOI that ends the first frame, skipping segments and entropy-coded data."""
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            return pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > len(data):
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                return None
            pos = found.start()
    return None


def _progressive_plausible(data: bytes, image: Image.Image) -> None:
    """A progressive JPEG's scans must hold at least a bit per 8x8 luma block (its first DC scan's minimum).

    This catches a frame header raised far past its data (a 10000x10000 header over 64x64 of
    data); a small raise of a progressive file's height is beyond what can be seen without
    decoding the Huffman data.
    """
    width, height = image.size
    blocks = -(-width // 8) * -(-height // 8)
    if len(data) * 8 < blocks:
        raise CorruptMedia("the JPEG data is too short for the size its header declares")


def _tiff_complete(image: Image.Image) -> None:
    """An uncompressed TIFF's strips must hold every row: Pillow leaves uncovered rows black."""
    if image.info.get("compression") != "raw":
        return
    tags = getattr(image, "tag_v2", {})
    counts = tags.get(279) or tags.get(325) or ()  # StripByteCounts or TileByteCounts
    counts = counts if isinstance(counts, tuple) else (counts,)
    bits = sum(tags.get(258, (1,))) if isinstance(tags.get(258, (1,)), tuple) else int(tags.get(258, 1))
    width, height = image.size
    if sum(int(c) for c in counts) < height * -(-width * bits // 8):
        raise CorruptMedia("the TIFF image data is shorter than the size its header declares")


def _tiles_cover(image: Image.Image) -> None:
    """Pillow decodes tile by tile and leaves any area no tile covers black: the tiles must cover the frame."""
    tiles = getattr(image, "tile", None) or []
    if not tiles:
        return
    width, height = image.size
    covered = 0
    for tile in tiles:
        x0, y0, x1, y1 = tile[1]
        covered += max(0, min(x1, width) - max(x0, 0)) * max(0, min(y1, height) - max(y0, 0))
    if covered < width * height:
        raise CorruptMedia("the image data covers less than the size its header declares")


def check_complete(image: Image.Image, data: bytes) -> bytes:
    """Refuse data that ends before the declared size; returns the bytes to decode (for JPEG, prepared)."""
    fmt = image.format
    if fmt == "PNG":
        _png_complete(data)
    elif fmt in ("JPEG", "MPO"):
        return _jpeg_prepared(data, image)
    elif fmt == "TIFF":
        _tiff_complete(image)
        _tiles_cover(image)
    # (A GIF frame may legitimately cover part of its screen; Pillow's GIF, BMP and WebP decoders
    # already fail on data that ends early.)
    return data


def _open_for_decode(media: Media) -> tuple[Image.Image, Plan]:
    """Open, check size, plan, check the budget and completeness; the image returned is ready to load."""
    image = open_checked(media.data, media.max_pixels)
    media.format, (media.width, media.height) = image.format, image.size
    decode_plan = plan(image, media.hashing)
    _check_budget(image, decode_plan, media.memory_budget)
    try:
        image.seek(0)  # first frame of animated GIF/WebP/APNG and multi-page TIFF
        prepared = check_complete(image, media.data)
        if prepared is not media.data:
            image = Image.open(io.BytesIO(prepared), formats=(image.format or "JPEG",))
    except (*_DECODE_ERRORS, struct.error, IndexError, KeyError, TypeError, zlib.error) as exc:
        raise CorruptMedia("the image is truncated or corrupt and cannot be decoded") from exc
    return image, decode_plan


# ---------------------------------------------------------------------------------------------
# Decoding


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale to 8-bit by keeping the top byte (see the module docstring)."""
    pixels = np.asarray(image)
    if image.mode == "I":
        # Pillow widens 16-bit PNG and TIFF samples to "I" in some versions; values are still 0..65535.
        pixels = np.clip(pixels, 0, 65535)
    return Image.fromarray((pixels >> 8).astype(np.uint8), mode="L")


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
    image, _ = _open_for_decode(media)
    try:
        image.seek(0)
        image.load()
        return _to_rgb(image)
    except _DECODE_ERRORS as exc:
        # Truncated data, bad chunks, broken compressed streams: the client's file is at fault.
        raise CorruptMedia("the image is truncated or corrupt and cannot be decoded") from exc


def decode_grey(media: Media) -> Grey:
    """Decode the first frame's luma at the plan's reduction of its size.

    Reduced (large images): for JPEG, libjpeg's DCT scaling (``Image.draft``) decodes 1/s
    directly, and for a YCbCr JPEG straight to greyscale, skipping the chroma planes. The Y
    plane *is* the references' luma up to rounding, since JPEG's YCbCr uses the same
    0.299/0.587/0.114 weights. At 1/8 each output pixel is exactly its 8x8 block's mean (the
    DC coefficient), which is the block average ``detector.fastpdq`` assumes. Other formats
    have no reduced decode: they are decoded whole, converted, then box-averaged with
    ``Image.reduce``, which is the same block mean; a very long axis is reduced further there.

    Full size (small images, where decoding is cheap anyway): decoded to RGB exactly like the
    reference path, with PDQ's float luma computed as ``pdqhash`` does, so the fast tools give
    bit-identical hashes there.
    """
    image, decode_plan = _open_for_decode(media)
    width, height = image.size
    scale_x, scale_y = decode_plan.scale_x, decode_plan.scale_y
    try:
        image.seek(0)
        if scale_x == scale_y == 1:
            image.load()
            rgb = _to_rgb(image)
            pixels = np.asarray(rgb, dtype=np.float64)
            # pdqhash.compute's own arithmetic: float64 products and sum, then float32.
            luma = (pixels[:, :, 0] * 0.299 + pixels[:, :, 1] * 0.587 + pixels[:, :, 2] * 0.114).astype(np.float32)
            return Grey(image=rgb.convert("L"), luma=luma, width=width, height=height, scale_x=1, scale_y=1)
        drafted = 1
        # MPO (several JPEGs in one file, as some cameras write) is a JPEG subclass in Pillow.
        if decode_plan.draft > 1 and (result := image.draft("L", (width // decode_plan.draft, height // decode_plan.draft))):
            drafted = round(width / result[1][2])
        image.load()
        grey = _to_grey(image)
        del image
        if (scale_x, scale_y) != (drafted, drafted):
            grey = grey.reduce((scale_x // drafted, scale_y // drafted))
    except _DECODE_ERRORS as exc:
        raise CorruptMedia("the image is truncated or corrupt and cannot be decoded") from exc
    return Grey(image=grey, luma=np.asarray(grey, dtype=np.float32), width=width, height=height, scale_x=scale_x, scale_y=scale_y)
