"""The benchmark corpus: ordinary photographs that ship inside the scikit-image wheel, plus drawn pictures.

Nothing is downloaded: the photos are read straight from the installed ``skimage/data``
folder (the files scikit-image bundles in its wheel; its loaders for other images would
fetch them, so we never call those). The photos are small (300-1400 px), so the 1080p and
12-megapixel versions are *upscaled* with Lanczos; upscaled photos are smoother than a real
camera's, so every photo also gets a "grain" twin with sensor-like noise added at the target
size, and the drawn pictures (``detector.synthetic``) are drawn at the target size with
sharp edges. Both keep detail near the pixel level, where a reduced-size decode loses it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

from detector.synthetic import draw

# Natural photographs in skimage/data (documents, charts, logos and tiny files left out).
PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)
SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1920, 1080), (4000, 3000))
FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
SAVE_OPTIONS: dict[str, dict[str, object]] = {"JPEG": {"quality": 90}, "PNG": {}, "WEBP": {"quality": 90}}


@dataclass(frozen=True, kw_only=True, slots=True)
class Item:
    """One encoded corpus image."""

    name: str  # source picture, e.g. "photo:coffee" or "drawn:3"
    size: tuple[int, int]
    format: str
    data: bytes

    @property
    def label(self) -> str:
        return f"{self.name} {self.size[0]}x{self.size[1]} {self.format}"


def photo(name: str) -> Image.Image:
    """A photo from the installed scikit-image package, in its own mode (RGB or L)."""
    path = files("skimage") / "data" / name
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        image.load()
        return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre-crop to the target aspect ratio, then resize (up or down) with Lanczos."""
    width, height = image.size
    target = size[0] / size[1]
    if width / height > target:
        crop = round(height * target)
        box = ((width - crop) // 2, 0, (width - crop) // 2 + crop, height)
    else:
        crop = round(width / target)
        box = (0, (height - crop) // 2, width, (height - crop) // 2 + crop)
    return image.resize(size, Image.Resampling.LANCZOS, box=box)


def grain(image: Image.Image, seed: int, sigma: float = 6.0) -> Image.Image:
    """Add Gaussian noise per pixel, like a phone camera's sensor noise at base ISO."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, sigma, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), mode=image.mode)


def sources(seed: int, drawn: int = 4, photos: Sequence[str] = PHOTOS) -> Iterator[tuple[str, Image.Image | None]]:
    """(name, source image) pairs; a None image means 'draw it at the target size'."""
    for name in photos:
        yield f"photo:{name.split('.')[0]}", photo(name)
        yield f"grain:{name.split('.')[0]}", photo(name)
    for index in range(drawn):
        yield f"drawn:{seed + index}", None


def render(name: str, source: Image.Image | None, size: tuple[int, int], seed: int) -> Image.Image:
    if source is None:
        return draw(int(name.split(":")[1]), size)
    image = fit(source, size)
    if name.startswith("grain:"):
        digest = hashlib.sha256(f"{seed}:{name}:{size}".encode()).digest()
        image = grain(image, int.from_bytes(digest[:8], "big"))
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **SAVE_OPTIONS[fmt])
    return out.getvalue()


def build(
    seed: int,
    *,
    sizes: Sequence[tuple[int, int]] = SIZES,
    formats: Sequence[str] = FORMATS,
    photos: Sequence[str] = PHOTOS,
    drawn: int = 4,
    cache: Path | None = None,
) -> list[Item]:
    """Every source at every size in every format. Encoding 12-megapixel PNG and WebP takes a
    while, so the encoded files are cached in ``cache`` (keyed by name, size, format and seed)."""
    items: list[Item] = []
    for name, source in sources(seed, drawn, photos):
        for size in sizes:
            image: Image.Image | None = None
            for fmt in formats:
                path = None if cache is None else cache / f"{seed}-{name.replace(':', '_')}-{size[0]}x{size[1]}.{fmt.lower()}"
                if path is not None and path.exists():
                    data = path.read_bytes()
                else:
                    image = image or render(name, source, size, seed)
                    data = encode(image, fmt)
                    if path is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(data)
                items.append(Item(name=name, size=size, format=fmt, data=data))
    return items
