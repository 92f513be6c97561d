"""Query variants against brute force: hash the actually transformed (or bordered, or mis-converted)
picture and compare it with the variant computed from the one pass over the upload.

Mirrors and rotations: the variant named ``t`` of an upload that is ``t`` applied to a picture must be
within a few bits of that picture's hash (the rest is resampling, as in Meta's reference, whose own
dihedral hashes drift 6-12 bits from the hash of the transformed file). The PDQ dihedral maths must
equal ``pdqhash.compute_dihedral`` bit for bit where the fast path is exact (full size).

Quirks: the reference for python-threatexchange's hash is computed here the way its ``pdq_from_bytes``
does it (``np.asarray(Image.open(...))`` handed to ``pdqhash.compute``): threatexchange itself is only in
the bench extra (it pulls faiss and a C extension), and benchmarks/robustness.py checks the same
variants against the real package.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageFilter, ImageOps

from benchmarks.corpus import fit, photo
from detector import variants
from detector.api import Transform
from detector.decode import HashingPath, Media
from detector.fastpdq import pdq_dihedral_from_luma
from detector.matcher import LoadedVersion, ToolEntries, build_snapshot
from detector.tools.base import HashTool, hamming
from detector.tools.imagehashes import TRANSPOSES, DHashTool, PHashTool
from detector.tools.pdq import PdqTool
from kernel.query_variants import parse_variants
from kernel.settings import Settings

TOOLS: tuple[HashTool, ...] = (PdqTool(), PHashTool(), DHashTool())
# Bits a transformed file may differ from the variant computed from the untransformed one.
DIHEDRAL_BUDGET = {"pdq": 16, "phash": 2, "dhash": 3}
TRIM_BUDGET = {"pdq": 16, "phash": 4, "dhash": 4}
PHOTOS = ("chelsea.png", "astronaut.png", "coffee.png")


@cache
def picture(name: str, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    return fit(photo(name).convert("RGB"), size)


def jpeg(image: Image.Image, quality: int = 95) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def media(data: bytes, hashing: HashingPath = HashingPath.FAST) -> Media:
    return Media(data=data, max_pixels=50_000_000, hashing=hashing)


def test_transform_names_agree_everywhere() -> None:
    assert Transform.__args__ == (variants.ORIGINAL, *variants.VARIANTS)  # type: ignore[attr-defined]
    assert set(TRANSPOSES) == set(variants.DIHEDRAL)
    assert parse_variants("dihedral, trimmed") == (*variants.DIHEDRAL, "trimmed")
    assert parse_variants("none") == ()
    assert Settings.from_env({}).query_variants == variants.VARIANTS
    assert Settings.from_env({"HASHGUARD_QUERY_VARIANTS": "mirror_h,compat"}).query_variants == (
        "mirror_h",
        *variants.COMPAT,
    )
    with pytest.raises(ValueError, match="unknown query variant"):
        parse_variants("mirror_diagonal")


@pytest.mark.parametrize("size", [(64, 64), (451, 300), (640, 480)])
def test_pdq_dihedral_from_one_dct_is_the_references(size: tuple[int, int]) -> None:
    """At full size the fast path's eight hashes are pdqhash.compute_dihedral's, bit for bit."""
    pixels = np.asarray(picture("chelsea.png", size))
    vectors, quality = pdqhash.compute_dihedral(pixels)
    # compute_dihedral's order: original, rot90, rot180, rot270, FlipX (rows reversed), FlipY, FlipPlus1, FlipMinus1.
    names = ("original", "rot90", "rot180", "rot270", "mirror_v", "mirror_h", "transpose", "transverse")
    expected = {n: np.packbits(v.astype(np.uint8)).tobytes() for n, v in zip(names, vectors, strict=True)}
    p = pixels.astype(np.float64)
    luma = (p[..., 0] * 0.299 + p[..., 1] * 0.587 + p[..., 2] * 0.114).astype(np.float32)
    ours, ours_quality = pdq_dihedral_from_luma(luma, size[0], size[1])
    assert ours == expected
    assert ours_quality == quality


@pytest.mark.parametrize("hashing", [HashingPath.FAST, HashingPath.REFERENCE])
@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_each_dihedral_variant_finds_the_transformed_copy(tool: HashTool, hashing: HashingPath) -> None:
    for name in PHOTOS[:2] if hashing is HashingPath.REFERENCE else PHOTOS:
        original = tool.hash(media(jpeg(picture(name)), hashing)).value
        for transform, transpose in TRANSPOSES.items():
            upload = media(jpeg(picture(name).transpose(transpose)), hashing)
            result = tool.hash_variants(upload, variants.VARIANTS)
            found = dict(result.variants)
            assert result.value == tool.hash(media(upload.data, hashing)).value  # the original is unchanged
            assert hamming(found[transform], original) <= DIHEDRAL_BUDGET[tool.name], (name, transform)
            if transform not in ("rot180", "mirror_h", "mirror_v", "transpose", "transverse"):
                # rot90 and rot270 are each other's inverse: the other one must not also match.
                assert hamming(found[variants.undo(transform)], original) > tool.threshold(), (name, transform)


def _letterbox(image: Image.Image) -> Image.Image:
    """A 4:3 picture pillarboxed into 16:9, black bars."""
    canvas = Image.new("RGB", (image.height * 16 // 9, image.height), (0, 0, 0))
    canvas.paste(image, ((canvas.width - image.width) // 2, 0))
    return canvas


def _blurred_frame(image: Image.Image) -> Image.Image:
    """The picture over a heavily blurred, enlarged copy of itself (the way apps fill a square frame)."""
    big = image.resize((image.width * 5 // 4, image.height * 5 // 4)).filter(ImageFilter.GaussianBlur(40))
    big.paste(image, ((big.width - image.width) // 2, (big.height - image.height) // 2))
    return big


BORDERS = {
    "white 5%": lambda im: ImageOps.expand(im, border=im.width // 20, fill="white"),
    "black 10%": lambda im: ImageOps.expand(im, border=im.width // 10, fill="black"),
    "red 2%": lambda im: ImageOps.expand(im, border=im.width // 50, fill=(200, 30, 40)),
    "letterbox": _letterbox,
    "blurred frame": _blurred_frame,
}


@pytest.mark.parametrize("border", list(BORDERS))
@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_trimmed_variant_finds_the_bordered_copy(tool: HashTool, border: str) -> None:
    for name in PHOTOS:
        original = tool.hash(media(jpeg(picture(name)))).value
        bordered = media(jpeg(BORDERS[border](picture(name))))
        trimmed = [value for n, value in tool.hash_variants(bordered, variants.VARIANTS).variants if n == "trimmed"]
        assert hamming(tool.hash(bordered).value, original) > tool.threshold() or tool.name != "pdq"
        assert 1 <= len(trimmed) <= 5
        assert min(hamming(value, original) for value in trimmed) <= TRIM_BUDGET[tool.name], (name, border)


def test_no_border_found_on_a_photo_without_one() -> None:
    grey = media(jpeg(picture("chelsea.png"))).grey()
    assert variants.find_borders(grey.luma) is None
    assert variants.find_borders(np.full((100, 100), 128.0)) is None  # all border: nothing inside


def _threatexchange_replica(data: bytes) -> bytes:
    """What python-threatexchange's pdq_from_bytes computes (signal_type/pdq/pdq_hasher.py, read for facts)."""
    image: Image.Image = Image.open(io.BytesIO(data))
    if image.mode in ("LA", "I;16"):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.concatenate([array[..., np.newaxis]] * 3, axis=2)
    vector, _ = pdqhash.compute(array)
    return np.packbits(vector.astype(np.uint8)).tobytes()


def _cmyk_jpeg() -> bytes:
    out = io.BytesIO()
    picture("coffee.png", (1600, 1200)).convert("CMYK").save(out, "JPEG", quality=92)
    return out.getvalue()


def _palette_png() -> bytes:
    out = io.BytesIO()
    picture("chelsea.png", (800, 600)).quantize(64).save(out, "PNG")
    return out.getvalue()


def _grey16_png() -> bytes:
    # A 16-bit scan: the full 0..65535 range, which Pillow's conversion clips to 255 almost everywhere.
    grey = np.asarray(picture("astronaut.png", (640, 480)).convert("L"), dtype=np.uint16) * 257
    out = io.BytesIO()
    Image.fromarray(grey).save(out, "PNG")
    return out.getvalue()


QUIRKS = {"compat_cmyk": _cmyk_jpeg, "compat_palette": _palette_png, "compat_grey16": _grey16_png}


@pytest.mark.parametrize("hashing", [HashingPath.FAST, HashingPath.REFERENCE])
@pytest.mark.parametrize("quirk", list(QUIRKS))
def test_quirk_variant_is_what_threatexchange_would_list(quirk: str, hashing: HashingPath) -> None:
    data = QUIRKS[quirk]()
    listed = _threatexchange_replica(data)
    tool = PdqTool()
    result = tool.hash_variants(media(data, hashing), variants.VARIANTS)
    found = dict(result.variants)
    assert hamming(result.value, listed) > tool.threshold()  # our correct hash would miss the quirky entry
    # Both paths compute it at full size for pictures up to 4 MP: python-threatexchange's hash, bit for bit.
    assert found[quirk] == listed
    assert not any(name in found for name in variants.COMPAT if name != quirk)
    # Switched off: not computed.
    off = tool.hash_variants(media(data, hashing), tuple(v for v in variants.VARIANTS if v != quirk))
    assert quirk not in dict(off.variants)


def test_cmyk_quirk_is_the_complement_of_the_correct_hash() -> None:
    """The finding that motivated compat_cmyk: Pillow's CMYK planes, read as RGB, invert the luma."""
    data = _cmyk_jpeg()
    correct = PdqTool().hash(media(data, HashingPath.REFERENCE)).value
    assert hamming(correct, _threatexchange_replica(data)) >= 250


def test_snapshot_matches_variants_once_and_honours_the_list_switch() -> None:
    tool = PdqTool()
    listed = tool.hash(media(jpeg(picture("chelsea.png")))).value
    mirrored = tool.hash_variants(media(jpeg(ImageOps.mirror(picture("chelsea.png")))), variants.VARIANTS)
    codes = np.frombuffer(listed * 2, dtype=np.uint8).reshape(2, 32)
    versions = [
        LoadedVersion(hashset="on", version=1, tool="pdq", entries=1),
        LoadedVersion(hashset="off", version=1, tool="pdq", entries=1),
    ]
    entries = {"pdq": ToolEntries(ids=np.array([10, 20]), codes=codes, spans=((0, 0), (1, 1)))}
    snapshot = build_snapshot([tool], versions, entries)
    hashes = {"pdq": mirrored.value}
    queries = {"pdq": mirrored.variants}
    assert snapshot.match(hashes, {"pdq": 31}) == []
    hits = snapshot.match_variants(hashes, queries, {"pdq": 31})
    assert [(h.row_id, h.transform) for h in hits] == [(10, "mirror_h"), (20, "mirror_h")]
    off = snapshot.__class__(**{**{f: getattr(snapshot, f) for f in snapshot.__slots__}, "dihedral_off": frozenset({"off"})})
    assert [(h.row_id, h.transform) for h in off.match_variants(hashes, queries, {"pdq": 31})] == [(10, "mirror_h")]
    # The original itself is reported once, as original, however many variants also come near it.
    same = tool.hash_variants(media(jpeg(picture("chelsea.png"))), variants.VARIANTS)
    assert [h.transform for h in snapshot.match_variants({"pdq": same.value}, {"pdq": same.variants}, {"pdq": 31})] == [
        "original",
        "original",
    ]


def test_find_borders_on_drawn_planes() -> None:
    rng = np.random.default_rng(7)
    picture_plane = rng.integers(0, 256, (300, 400)).astype(np.float32)  # detail everywhere: never a border
    framed = np.full((360, 480), 250.0, dtype=np.float32)
    framed[30:330, 40:440] = picture_plane
    assert variants.find_borders(framed) == variants.Borders(top=31, bottom=329, left=41, right=439)
    # Letterbox bars of one colour, pillarbox bars of another, around the same picture.
    boxed = np.full((400, 520), 0.0, dtype=np.float32)
    boxed[50:350, :] = 128.0
    boxed[50:350, 60:460] = picture_plane
    assert variants.find_borders(boxed) == variants.Borders(top=51, bottom=349, left=61, right=459)
    # No border, a hairline (under 1%) and a flat picture (more than 40% per side): no trimmed variant.
    assert variants.find_borders(picture_plane) is None
    hairline = np.pad(picture_plane, 1, constant_values=255.0)
    assert variants.find_borders(hairline) is None
    assert variants.find_borders(np.full((100, 100), 128.0)) is None


def test_trim_candidates_try_the_symmetric_boxes() -> None:
    rng = np.random.default_rng(8)
    plane = np.full((360, 480), 255.0, dtype=np.float32)
    plane[30:330, 40:440] = rng.integers(0, 256, (300, 400))
    plane[300:330, 40:440] = 255.0  # the picture's own white bottom edge runs on from the frame
    boxes = variants.trim_candidates(plane)
    assert boxes[0] == variants.find_borders(plane)
    assert variants.Borders(top=31, bottom=329, left=41, right=439) in boxes
    assert len(boxes) <= 5


def test_variant_thresholds_cap_variant_hits_only() -> None:
    tool = PdqTool()
    listed = tool.hash(media(jpeg(picture("coffee.png")))).value
    far = bytes(b ^ m for b, m in zip(listed, b"\x0f" * 3 + bytes(29), strict=True))  # 12 bits away
    snapshot = build_snapshot(
        [tool],
        [LoadedVersion(hashset="l", version=1, tool="pdq", entries=1)],
        {"pdq": ToolEntries(ids=np.array([5]), codes=np.frombuffer(listed, np.uint8).reshape(1, 32), spans=((0, 0),))},
    )
    queries = {"pdq": (("mirror_h", far),)}
    original = {"pdq": bytes(32)}
    assert [h.transform for h in snapshot.match_variants(original, queries, {"pdq": 31})] == ["mirror_h"]
    assert snapshot.match_variants(original, queries, {"pdq": 31}, {"pdq": {"mirror_h": 11}}) == []
    assert [h.transform for h in snapshot.match_variants(original, queries, {"pdq": 31}, {"pdq": {"rot90": 11}})] == ["mirror_h"]
    assert [h.query for h in snapshot.match_variants(original, queries, {"pdq": 31})] == [far]
