"""The decode stage: every mode and container the tools may meet, limits checked before decoding.

Each case is checked on both hashing paths: the fast path must read the picture the same way
the reference path does (modulo the fidelity budget, exercised in test_hashing_fidelity.py).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from detector.decode import HashingPath, Media, decode_cost
from detector.errors import CorruptMedia, ImageTooLarge
from detector.fastpdq import _reference_weights, reduced_weights
from detector.synthetic import draw, encode
from detector.tools.base import HashTool
from detector.tools.imagehashes import DHashTool, PHashTool
from detector.tools.pdq import PdqTool
from kernel.errors import UnsupportedMedia

TOOLS: tuple[HashTool, ...] = (PdqTool(), PHashTool(), DHashTool())
PATHS = (HashingPath.FAST, HashingPath.REFERENCE)


def hashes(data: bytes, path: HashingPath = HashingPath.FAST) -> dict[str, bytes]:
    media = Media(data=data, max_pixels=50_000_000, hashing=path)
    media.decode()
    return {t.name: t.hash(media).value for t in TOOLS}


def distance(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def assert_same_picture(data: bytes, expected: Image.Image) -> None:
    """``data`` hashes like ``expected`` (as an RGB PNG), on both paths."""
    want = hashes(encode(expected.convert("RGB")), HashingPath.REFERENCE)
    for path in PATHS:
        assert hashes(data, path) == want, path


def test_palette_with_transparency_hashes_its_stored_colours() -> None:
    picture = draw(1).quantize(64)
    picture.info["transparency"] = 0
    data = encode(picture, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    assert_same_picture(data, picture.convert("RGB"))


def test_greyscale_with_alpha() -> None:
    grey = draw(2).convert("L")
    la = Image.merge("LA", (grey, Image.new("L", grey.size, 128)))
    assert_same_picture(encode(la, "PNG"), grey)


def test_rgba_drops_alpha_like_the_references() -> None:
    picture = draw(3).convert("RGBA")
    picture.putalpha(Image.new("L", picture.size, 0))  # fully transparent: the colours are still hashed
    assert_same_picture(encode(picture, "PNG"), draw(3))


@pytest.mark.parametrize("size", [(640, 480), (1600, 1200)])
def test_cmyk_jpeg_decodes_and_both_paths_agree(size: tuple[int, int]) -> None:
    data = encode(draw(4, size).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    fast, reference = hashes(data), hashes(data, HashingPath.REFERENCE)
    assert distance(fast["pdq"], reference["pdq"]) <= 6
    assert distance(fast["phash"], reference["phash"]) <= 2
    assert distance(fast["dhash"], reference["dhash"]) <= 2


def test_sixteen_bit_greyscale_keeps_the_top_byte() -> None:
    eight = np.asarray(draw(5).convert("L"))
    sixteen = (eight.astype(np.uint16) << 8) | 0x7F
    data = encode(Image.fromarray(sixteen), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert_same_picture(data, Image.fromarray(eight))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_greyscale(fmt: str) -> None:
    grey = draw(6, (1600, 1200)).convert("L")
    data = encode(grey, fmt)
    fast, reference = hashes(data), hashes(data, HashingPath.REFERENCE)
    assert distance(fast["pdq"], reference["pdq"]) <= 6
    assert distance(fast["phash"], reference["phash"]) <= 2


@pytest.mark.parametrize(("fmt", "options"), [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})])
def test_animations_hash_their_first_frame(fmt: str, options: dict[str, object]) -> None:
    first, second = draw(7), draw(8)
    frames = [first.quantize(256).convert("RGB"), second] if fmt == "GIF" else [first, second]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
    opened = Image.open(io.BytesIO(data))
    assert getattr(opened, "n_frames", 1) == 2
    assert_same_picture(data, frames[0] if fmt != "GIF" else Image.open(io.BytesIO(encode(frames[0], "GIF"))).convert("RGB"))


def test_exif_orientation_is_not_applied_like_the_reference_hashers() -> None:
    """python-threatexchange and imagehash hash the stored grid; so do we (see decode.py)."""
    picture = draw(9, (800, 600))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rotated_tag = encode(picture, "JPEG", quality=95, exif=exif.tobytes())
    plain = encode(picture, "JPEG", quality=95)
    for path in PATHS:
        assert hashes(rotated_tag, path) == hashes(plain, path)
    upright = encode(picture.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95)
    assert distance(hashes(rotated_tag)["pdq"], hashes(upright)["pdq"]) > 31


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("path", PATHS)
def test_truncated_file_is_corrupt(fmt: str, path: HashingPath) -> None:
    data = encode(draw(10, (1600, 1200)), fmt)
    with pytest.raises(CorruptMedia):
        hashes(data[: len(data) // 2], path)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose pixel data is a few bytes of nothing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(draw(11, (64, 48)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("data", [_png_header_only(100_000, 100_000), _jpeg_claiming(60_000, 60_000)], ids=["png", "jpeg"])
@pytest.mark.parametrize("path", PATHS)
def test_huge_header_is_refused_before_decoding(data: bytes, path: HashingPath) -> None:
    # Neither file holds the pixels it claims: ImageTooLarge (not CorruptMedia) shows no decode was tried.
    with pytest.raises(ImageTooLarge):
        hashes(data, path)


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7 not an image", b"GIF87a"[:3]], ids=["empty", "pdf", "short"])
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia):
        hashes(data)


def test_the_fast_path_decodes_large_jpegs_reduced_and_small_ones_whole() -> None:
    big = Media(data=encode(draw(12, (4000, 3000)), "JPEG"), max_pixels=50_000_000)
    small = Media(data=encode(draw(12, (640, 480)), "JPEG"), max_pixels=50_000_000)
    assert big.grey().scale == 8 and big.grey().image.size == (500, 375)
    assert small.grey().scale == 1 and small.grey().image.size == (640, 480)


# --- Bounded decoding (issue 11, finding 2) ---------------------------------------------------


@pytest.mark.parametrize("size", [(1, 100_000_000), (100_000_000, 1)], ids=["tall", "wide"])
@pytest.mark.parametrize("path", PATHS)
def test_thin_images_at_the_pixel_limit_are_refused_from_the_header(size: tuple[int, int], path: HashingPath) -> None:
    """1 x 100,000,000 took 6.7 GB and 16 s; 100,000,000 x 1 was a MemoryError (500). Both are a 422 now.

    The header alone is refused (ImageTooLarge, not CorruptMedia: no pixel was decoded), by
    ``decode_cost`` too, which the scan service calls before it queues the upload.
    """
    data = _png_header_only(*size)
    with pytest.raises(ImageTooLarge):
        decode_cost(data, 100_000_000, path)
    media = Media(data=data, max_pixels=100_000_000, hashing=path)
    with pytest.raises(ImageTooLarge):
        media.decode()


def test_the_budget_is_what_refuses_and_it_is_configurable() -> None:
    data = encode(Image.fromarray(np.full((4000, 3000), 128, np.uint8)), "PNG")  # 12 megapixels, L
    cost = decode_cost(data, 100_000_000, HashingPath.FAST)
    assert 12_000_000 <= cost < 40 * 2**20
    with pytest.raises(ImageTooLarge, match="MB per image"):
        Media(data=data, max_pixels=100_000_000, memory_budget=cost - 1).decode()
    Media(data=data, max_pixels=100_000_000, memory_budget=cost).decode()


def _thin(width: int, height: int, seed: int) -> Image.Image:
    """A thin picture with structure along both axes: one random walk of grey levels per line."""
    rng = np.random.default_rng(seed)
    long, short = max(width, height), min(width, height)
    walks = np.cumsum(rng.normal(0, 3, (long, short)), axis=0)
    plane = ((walks - walks.min()) / np.ptp(walks) * 215 + 20).astype(np.uint8)
    return Image.fromarray(plane if height >= width else plane.T.copy()).convert("RGB")


@pytest.mark.parametrize("size", [(32, 200_000), (200_000, 32)], ids=["tall", "wide"])
def test_thin_images_within_the_budget_hash_like_the_reference(size: tuple[int, int]) -> None:
    """The fast path reduces a long axis far beyond 1/8 (no full-size float copy) and still agrees.

    (Thinner pictures are degenerate for PDQ: an 8-pixel-wide one spreads 8 values over 64
    samples, and its median threshold then splits near-equal coefficients.)
    """
    data = encode(_thin(*size, seed=size[0]), "PNG")
    media = Media(data=data, max_pixels=100_000_000)
    grey = media.grey()
    assert max(grey.luma.shape) <= 4096 and grey.scale_x != grey.scale_y
    fast, reference = hashes(data), hashes(data, HashingPath.REFERENCE)
    assert distance(fast["pdq"], reference["pdq"]) <= 6
    assert distance(fast["phash"], reference["phash"]) <= 2
    assert distance(fast["dhash"], reference["dhash"]) <= 2


@pytest.mark.parametrize(("n", "scale"), [(9000, 1), (9000, 8), (20_000, 37), (70_001, 260)])
def test_long_axis_weights_built_locally_equal_the_full_matrix(n: int, scale: int) -> None:
    full = np.add.reduceat(_reference_weights(n), np.arange(0, n, scale), axis=1)
    assert np.allclose(reduced_weights(n, scale), full, rtol=0, atol=1e-12)
