"""Synthetic test pictures, drawn from a seed. The demo and the tests use these and nothing else:
hashguard never ships or fetches real material of any kind.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter


def draw(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A colourful scene of gradients, shapes and lines, different for every seed."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size)
    pixels = ImageDraw.Draw(image)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    for y in range(height):
        t = y / max(1, height - 1)
        pixels.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(rng.randint(8, 16)):
        box = sorted(rng.randrange(width) for _ in range(2)), sorted(rng.randrange(height) for _ in range(2))
        xy = [box[0][0], box[1][0], box[0][1] + 10, box[1][1] + 10]
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice(("ellipse", "rectangle", "polygon"))
        if shape == "ellipse":
            pixels.ellipse(xy, fill=colour)
        elif shape == "rectangle":
            pixels.rectangle(xy, fill=colour)
        else:
            pixels.polygon([(rng.randrange(width), rng.randrange(height)) for _ in range(rng.randint(3, 6))], fill=colour)
    for _ in range(rng.randint(3, 8)):
        points = [(rng.randrange(width), rng.randrange(height)) for _ in range(2)]
        pixels.line(points, fill=tuple(rng.randrange(256) for _ in range(3)), width=rng.randint(2, 12))
    return image.filter(ImageFilter.SMOOTH)


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def variant(image: Image.Image, scale: float = 0.5, quality: int = 70) -> bytes:
    """A resized, JPEG re-encoded copy: what a re-upload of a known picture usually looks like."""
    width, height = image.size
    smaller = image.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.Resampling.LANCZOS)
    return encode(smaller, "JPEG", quality=quality)
