"""The fast paths stay within the fidelity budget of the reference implementations.

The references (pdqhash on the full-size decode, imagehash) are the definition of truth:
vetted lists were made with them, and every bit of drift eats into the match threshold.
Budget (benchmarks/results/hashing.md measures it over the whole corpus): PDQ within 10 of
256 bits on every image, pHash and dHash within 2 of 64 on almost all.
"""

from __future__ import annotations

import io

import numpy as np
import pdqhash
import pytest
from PIL import Image

from benchmarks.corpus import fit, grain, photo
from detector.decode import HashingPath, Media
from detector.fastpdq import pdq_from_luma, reduced_weights
from detector.synthetic import draw, encode
from detector.tools.base import HashTool
from detector.tools.imagehashes import DHashTool, PHashTool
from detector.tools.pdq import PdqTool

TOOLS: tuple[HashTool, ...] = (PdqTool(), PHashTool(), DHashTool())
BUDGET = {"pdq": 10, "phash": 2, "dhash": 2}


def distances(data: bytes) -> dict[str, int]:
    fast = Media(data=data, max_pixels=50_000_000)
    reference = Media(data=data, max_pixels=50_000_000, hashing=HashingPath.REFERENCE)
    return {
        t.name: int(
            np.unpackbits(np.frombuffer(t.hash(fast).value, np.uint8) ^ np.frombuffer(t.hash(reference).value, np.uint8)).sum()
        )
        for t in TOOLS
    }


@pytest.mark.parametrize("size", [(5, 7), (64, 64), (100, 64), (129, 257), (1000, 13), (451, 300)])
def test_fastpdq_at_full_size_is_the_reference(size: tuple[int, int]) -> None:
    """No reduction: the weight matrices reproduce pdqhashing.cpp's blur and decimation exactly."""
    pixels = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    vector, quality = pdqhash.compute(pixels)
    luma = (pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114).astype(np.float32)
    value, fast_quality = pdq_from_luma(luma, size[0], size[1])
    assert value == np.packbits(vector.astype(np.uint8)).tobytes()
    assert fast_quality == quality


@pytest.mark.parametrize(("n", "scale"), [(3000, 8), (1080, 2), (641, 2), (4001, 8)])
def test_reduced_weights_keep_every_sample_a_weighted_mean(n: int, scale: int) -> None:
    weights = reduced_weights(n, scale)
    assert weights.shape == (64, -(-n // scale))
    assert np.allclose(weights.sum(axis=1), 1.0)
    assert (weights >= 0).all()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_small_images_hash_bit_identically(fmt: str) -> None:
    """At VGA the fast path decodes whole and must equal the reference exactly."""
    assert distances(encode(draw(21), fmt)) == {"pdq": 0, "phash": 0, "dhash": 0}


@pytest.mark.parametrize(
    ("seed", "size", "fmt"),
    [
        (22, (1920, 1080), "JPEG"),
        (23, (1920, 1080), "PNG"),
        (24, (1920, 1080), "WEBP"),
        (25, (3000, 2250), "JPEG"),
        (26, (4000, 3000), "JPEG"),
    ],
)
def test_drawn_pictures_stay_within_budget(seed: int, size: tuple[int, int], fmt: str) -> None:
    found = distances(encode(draw(seed, size), fmt))
    assert all(found[name] <= BUDGET[name] for name in found), found


@pytest.mark.parametrize(
    ("name", "size", "fmt"),
    [
        ("astronaut.png", (4000, 3000), "JPEG"),
        ("coffee.png", (4000, 3000), "JPEG"),
        ("rocket.jpg", (1920, 1080), "JPEG"),
        ("chelsea.png", (1920, 1080), "PNG"),
        ("motorcycle_left.png", (1920, 1080), "WEBP"),
        ("retina.jpg", (2560, 1920), "JPEG"),
    ],
)
def test_packaged_photos_stay_within_budget(name: str, size: tuple[int, int], fmt: str) -> None:
    """Photos bundled in the scikit-image wheel, upscaled, with sensor-like grain so detail reaches the pixel level."""
    picture = grain(fit(photo(name), size), seed=len(name))
    out = io.BytesIO()
    picture.save(out, fmt, quality=90)
    found = distances(out.getvalue())
    assert all(found[tool] <= BUDGET[tool] for tool in found), found


def test_a_photo_and_its_own_reduction_are_read_the_same_way() -> None:
    """The greyscale view of a big JPEG is its DC-scaled Y plane: close to the block means of the full decode."""
    out = io.BytesIO()
    fit(photo("coffee.png"), (4000, 3000)).save(out, "JPEG", quality=90)
    grey = Media(data=out.getvalue(), max_pixels=50_000_000).grey()
    full = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("L"), dtype=np.float64)
    means = full.reshape(375, 8, 500, 8).mean(axis=(1, 3))
    assert grey.scale == 8
    assert np.abs(grey.luma - means).mean() < 1.0
