"""Drawn test videos (never real material): moving shapes over a seeded background, encoded with PyAV.

Tests, the conformance kit and ``benchmarks.video`` make their clips here. A clip is a function of
its seed: the same seed draws the same frames whatever the encoding, size or rate, so a
re-encoded, resized, trimmed, retimed or logo-stamped copy shows the same pictures.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

RGB = npt.NDArray[np.uint8]
SHOT_S = 3.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Clip:
    seed: int
    seconds: float = 4.0
    fps: float = 10.0
    width: int = 320
    height: int = 240


@functools.lru_cache(maxsize=8)
def _background(seed: int, width: int, height: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    # Coarse noise blown up: large structures PDQ sees, at any output size.
    coarse = rng.integers(0, 256, size=(6, 8, 3)).astype(np.float32)
    ys = np.linspace(0, 5, height)[:, None]
    xs = np.linspace(0, 7, width)[None, :]
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, 5), np.minimum(x0 + 1, 7)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    top = coarse[y0, x0] * (1 - fx) + coarse[y0, x1] * fx
    bottom = coarse[y1, x0] * (1 - fx) + coarse[y1, x1] * fx
    out: npt.NDArray[np.float32] = (top * (1 - fy) + bottom * fy).astype(np.float32)
    return out


@functools.lru_cache(maxsize=4)
def _grid(width: int, height: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    yy, xx = np.mgrid[0:height, 0:width]
    return yy, xx


def frame_at(seed: int, t: float, width: int, height: int, *, logo: bool = False) -> RGB:
    """The picture of clip ``seed`` at ``t`` seconds, drawn at ``width`` x ``height``.

    A shot lasts ``SHOT_S`` seconds (a new background and new shapes, a hard cut), and the shapes
    drift slowly within it, so one-frame-a-second sampling sees distinct but related pictures, as in
    ordinary footage; a trimmed or retimed copy samples other instants of the same shots.
    """
    scene = int(t // SHOT_S)
    image = _background(seed * 1000 + scene, width, height).copy()
    rng = np.random.default_rng(seed * 7919 + scene)
    yy, xx = _grid(width, height)
    phase = t - scene * SHOT_S
    for _ in range(4):
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        vx, vy = rng.uniform(-0.04, 0.04) * width, rng.uniform(-0.04, 0.04) * height
        r = rng.uniform(0.08, 0.2) * min(width, height)
        colour = rng.integers(0, 256, size=3).astype(np.float32)
        mask = (xx - (cx + vx * phase)) ** 2 + (yy - (cy + vy * phase)) ** 2 < r * r
        image[mask] = colour
    # A band of stripes, like a line of text: fine detail.
    band = int(rng.uniform(0.1, 0.8) * height)
    stripe = (xx[band : band + max(2, height // 20)] // max(1, width // 40)) % 2 == 0
    image[band : band + max(2, height // 20)][stripe] = 255 - image[band : band + max(2, height // 20)][stripe]
    if logo:
        lw, lh = width // 8, height // 10
        image[height - lh - height // 20 : height - height // 20, width - lw - width // 20 : width - width // 20] = (
            250,
            250,
            250,
        )
    return np.clip(image, 0, 255).astype(np.uint8)


def frames(clip: Clip, *, start: float = 0.0, end: float | None = None, logo: bool = False) -> Iterator[RGB]:
    stop = clip.seconds if end is None else end
    n = round((stop - start) * clip.fps)
    for i in range(n):
        yield frame_at(clip.seed, start + i / clip.fps, clip.width, clip.height, logo=logo)


def encode(
    path: str,
    clip: Clip,
    *,
    container: str = "mp4",
    codec: str = "libx264",
    bit_rate: int | None = None,
    crf: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    logo: bool = False,
    size: tuple[int, int] | None = None,
) -> str:
    """Write clip ``clip`` to ``path`` (``container``: mp4, mov, mkv, webm, avi) and return the path.

    ``size``: the clip's pictures, drawn at its own size, resized to this (width, height), as a
    platform's transcoder would; ``start``/``end`` trim it; ``logo`` stamps a white box in a corner.
    """
    import av
    from PIL import Image

    formats = {"mkv": "matroska", "webm": "webm", "avi": "avi", "mov": "mov", "mp4": "mp4"}
    with av.open(path, mode="w", format=formats[container]) as out:
        rate: Fraction | int = round(clip.fps) if float(clip.fps).is_integer() else Fraction(clip.fps).limit_denominator(1001)
        stream: Any = out.add_stream(codec, rate=rate)
        stream.width, stream.height = size or (clip.width, clip.height)
        stream.pix_fmt = "yuv420p"
        options: dict[str, str] = {}
        if codec == "libx264":
            options["preset"] = "ultrafast"
            if crf is not None:
                options["crf"] = str(crf)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        stream.options = options
        for picture in frames(clip, start=start, end=end, logo=logo):
            if size is not None:
                picture = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BILINEAR))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
