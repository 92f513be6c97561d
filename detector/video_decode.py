"""Decoding and vPDQ-hashing one video file with PyAV (FFmpeg), inside a disposable worker process.

What is computed is what Meta's reference vPDQ computes: every frame of the first video stream is
decoded in order; frame ``n`` (counting from 0) is hashed when ``n % max(1, int(seconds_per_hash *
fps))`` is 0, with timestamp ``n / fps`` (fps: the stream's average frame rate); each hashed
frame's PDQ hash and quality come from its full-size picture. ``hashing`` picks the reference
(``pdqhash`` on the RGB24 picture, as the reference converts it) or the fast path (the luma plane
straight from the decoded YUV picture, block-averaged where ``detector.fastpdq`` stays faithful).

Video files are hostile input. ``run_isolated`` decodes each video in a fresh process forked from
a forkserver that has the decoding modules loaded (a fork costs milliseconds, the start-up is paid
once), under an address-space limit (``RLIMIT_AS``) and a CPU-time limit (``RLIMIT_CPU``), and
kills it at the wall-clock deadline. A decoder that crashes, loops or allocates without bound
costs that one process: the service process never runs FFmpeg, and no other scan shares the
process (a process pool would lose every job in flight when one worker dies). Each limit that
is reached ends the decode with a 413/422 naming the limit (``VideoLimitExceeded.limit``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.decode import HashingPath
from detector.errors import DetectorError
from detector.fastpdq import max_scale, pdq_from_luma
from detector.video_frames import DEFAULT_SECONDS_PER_HASH, Frame, pack

# Media types scanned as video; animated GIF/WebP/PNG stay images (``detector.decode``).
VIDEO_MEDIA_TYPES: frozenset[str] = frozenset(
    {
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/matroska",
        "video/x-msvideo",
        "video/avi",
        "video/msvideo",
        "video/mpeg",
        "video/3gpp",
        "video/x-m4v",
    }
)
# Containers accepted (PyAV's format names); anything else is refused before a frame is decoded.
CONTAINERS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "mpeg", "mpegts")


class VideoError(DetectorError):
    """The video cannot be scanned."""

    status = 422
    code = "corrupt_media"


class CorruptVideo(VideoError):
    """The video is truncated or corrupt and cannot be decoded."""

    code = "corrupt_media"


class UnsupportedVideo(VideoError):
    """The file is not a video this service decodes (MP4/MOV, WebM/MKV, AVI)."""

    status = 415
    code = "unsupported_media_type"


class VideoLimitExceeded(VideoError):
    """The video exceeds a limit of this service."""

    code = "video_limit_exceeded"
    limit = "unknown"

    def __init__(self, limit: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.limit = limit
        self.status = status


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoLimits:
    """The HASHGUARD_VIDEO_* limits, as one picklable value."""

    max_bytes: int = 512 * 1024 * 1024
    max_duration_s: float = 3 * 3600.0
    max_frame_pixels: int = 3840 * 2160
    max_frames: int = 20_000  # frames hashed
    wall_s: float = 120.0
    memory_bytes: int = 2048 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoJob:
    path: str
    limits: VideoLimits
    seconds_per_hash: float = DEFAULT_SECONDS_PER_HASH
    hashing: HashingPath = HashingPath.FAST
    hash_frames: bool = True  # False: decode only (the benchmark's floor)


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoHash:
    value: bytes  # packed frames (detector.video_frames.pack); empty when hash_frames is False
    width: int
    height: int
    fps: float
    frames_decoded: int
    frames_hashed: int
    container: str


def _limit(name: str, message: str, status: int = 422) -> VideoLimitExceeded:
    return VideoLimitExceeded(name, message, status)


_PLANAR_8BIT = frozenset(
    {
        "yuv420p",
        "yuv422p",
        "yuv444p",
        "yuv440p",
        "yuv411p",
        "yuv410p",
        "yuvj420p",
        "yuvj422p",
        "yuvj444p",
        "yuvj440p",
        "nv12",
        "nv21",
        "gray",
    }
)


def _luma(frame: Any) -> tuple[npt.NDArray[np.float32], int, int]:
    """The frame's luma on PDQ's scale (0.299R + 0.587G + 0.114B of the RGB picture), full size."""
    width, height = frame.width, frame.height
    name = frame.format.name
    if name in _PLANAR_8BIT:
        plane = frame.planes[0]
        raw = np.frombuffer(plane, dtype=np.uint8)
        y = raw[: plane.line_size * height].reshape(height, plane.line_size)[:, :width].astype(np.float32)
        full = name.startswith(("yuvj", "gray")) or int(getattr(frame, "color_range", 0) or 0) == 2  # AVCOL_RANGE_JPEG
        # Limited-range Y' (16-235) expanded as the RGB conversion expands it: PDQ's bits do not depend on an
        # affine map of the luma, but its quality does.
        return (y if full else np.clip((y - 16.0) * (255.0 / 219.0), 0.0, 255.0).astype(np.float32)), width, height
    rgb = frame.to_ndarray(format="rgb24").astype(np.float64)
    luma = (rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114).astype(np.float32)
    return luma, width, height


def _block_mean(luma: npt.NDArray[np.float32], sy: int, sx: int) -> npt.NDArray[np.float32]:
    if sx == sy == 1:
        return luma
    h, w = luma.shape
    rows = np.add.reduceat(luma, np.arange(0, h, sy), axis=0)
    both = np.add.reduceat(rows, np.arange(0, w, sx), axis=1)
    row_counts = np.minimum(sy, h - np.arange(0, h, sy)).astype(np.float32)
    col_counts = np.minimum(sx, w - np.arange(0, w, sx)).astype(np.float32)
    out: npt.NDArray[np.float32] = (both / row_counts[:, None] / col_counts[None, :]).astype(np.float32)
    return out


def frame_pdq(frame: Any, hashing: HashingPath) -> tuple[bytes, int]:
    """PDQ hash and quality of one decoded frame."""
    if hashing is HashingPath.REFERENCE:
        import pdqhash

        vector, quality = pdqhash.compute(frame.to_ndarray(format="rgb24"))
        return np.packbits(vector.astype(np.uint8)).tobytes(), int(quality)
    luma, width, height = _luma(frame)
    sy, sx = max_scale(height), max_scale(width)
    return pdq_from_luma(_block_mean(luma, sy, sx), width, height, sx, sy)


def _declared_duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None


def hash_video_file(job: VideoJob) -> VideoHash:
    """Decode ``job.path`` and hash its sampled frames. Raises ``VideoError`` (4xx) for what it refuses."""
    import av
    import av.error

    limits = job.limits
    started = time.monotonic()
    av.logging.set_level(None)
    try:
        container = av.open(job.path, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise CorruptVideo("the file is not a readable video container") from exc
    with container:
        names = set(container.format.name.split(","))
        if not names & set(CONTAINERS):
            raise UnsupportedVideo(f"container {container.format.name!r} is not accepted: send MP4/MOV, WebM/MKV or AVI")
        streams = container.streams.video
        if not streams:
            raise CorruptVideo("the file has no video stream")
        stream = streams[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width * height > limits.max_frame_pixels:
            raise _limit(
                "frame_size", f"the video's frames are {width}x{height}; at most {limits.max_frame_pixels} pixels a frame"
            )
        declared = _declared_duration(container, stream)
        if declared is not None and declared > limits.max_duration_s:
            raise _limit(
                "duration",
                f"the video declares {declared:.0f} s; at most {limits.max_duration_s:g} s (HASHGUARD_VIDEO_MAX_SECONDS)",
            )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            raise CorruptVideo("the video stream declares no usable frame rate")
        ctx.thread_count = 1
        every = max(1, int(job.seconds_per_hash * fps))
        frames: list[Frame] = []
        decoded = 0
        try:
            for frame in container.decode(stream):
                if frame.width * frame.height > limits.max_frame_pixels:
                    raise _limit(
                        "frame_size", f"a frame is {frame.width}x{frame.height}; at most {limits.max_frame_pixels} pixels"
                    )
                seconds = decoded / fps
                if seconds > limits.max_duration_s:
                    raise _limit("duration", f"the video runs past {limits.max_duration_s:g} s (HASHGUARD_VIDEO_MAX_SECONDS)")
                if time.monotonic() - started > limits.wall_s:
                    raise _limit("wall_time", f"decoding took longer than {limits.wall_s:g} s (HASHGUARD_VIDEO_WALL_S)")
                if decoded % every == 0 and job.hash_frames:
                    if len(frames) >= limits.max_frames:
                        raise _limit(
                            "frames", f"the video has more than {limits.max_frames} frames to hash (HASHGUARD_VIDEO_MAX_FRAMES)"
                        )
                    pdq, quality = frame_pdq(frame, job.hashing)
                    frames.append(Frame(number=decoded, quality=quality, pdq=pdq, seconds=seconds))
                decoded += 1
        except av.error.FFmpegError as exc:
            raise CorruptVideo("the video is truncated or corrupt and cannot be decoded") from exc
        if decoded == 0:
            raise CorruptVideo("the video stream holds no decodable frame")
        if declared is not None and declared > 4.0 and decoded / fps < declared / 2:
            # A stream that stops well before the length it declares was cut short (or lies about its length).
            raise CorruptVideo(
                f"the video declares {declared:.0f} s but its frames stop at {decoded / fps:.1f} s: truncated or corrupt"
            )
        return VideoHash(
            value=pack(frames) if job.hash_frames else b"",
            width=width,
            height=height,
            fps=fps,
            frames_decoded=decoded,
            frames_hashed=len(frames),
            container=container.format.name,
        )


# -- isolation -------------------------------------------------------------------------------

_CONTEXT: Any = None


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["detector.video_decode", "av", "numpy", "detector.fastpdq", "pdqhash"])
        _CONTEXT = ctx
    return _CONTEXT


def _child(job: VideoJob, out: Connection) -> None:
    limits = job.limits
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        cpu = math.ceil(limits.wall_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    except (ValueError, OSError):  # pragma: no cover - a platform without these limits
        pass
    try:
        result: tuple[Any, ...] = ("ok", hash_video_file(job))
    except VideoLimitExceeded as exc:
        result = ("limit", exc.limit, exc.message, exc.status)
    except VideoError as exc:
        result = ("error", type(exc).__name__, exc.message)
    except MemoryError:
        result = ("limit", "memory", "decoding the video needs more memory than HASHGUARD_VIDEO_MEMORY_MB allows", 422)
    except Exception as exc:  # anything else a hostile file provokes inside FFmpeg or PyAV
        result = ("error", "CorruptVideo", f"the video cannot be decoded ({type(exc).__name__})")
    try:
        out.send(result)
    finally:
        out.close()


_ERRORS: dict[str, type[VideoError]] = {
    "CorruptVideo": CorruptVideo,
    "UnsupportedVideo": UnsupportedVideo,
    "VideoError": VideoError,
}


def run_isolated(job: VideoJob, grace_s: float = 2.0) -> VideoHash:
    """``hash_video_file`` in a fresh worker process under the job's limits; blocking (call it in a thread).

    The process is killed at ``wall_s + grace_s`` if it has not answered; a process that dies
    without answering (a crash, the memory limit hit inside C code, the CPU limit) is a 422.
    """
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(job, send), daemon=True)
    process.start()
    send.close()
    try:
        if not receive.poll(job.limits.wall_s + grace_s):
            raise _limit("wall_time", f"decoding took longer than {job.limits.wall_s:g} s (HASHGUARD_VIDEO_WALL_S)")
        try:
            answer = receive.recv()
        except EOFError:
            process.join(1.0)
            raise CorruptVideo(
                "the video decoder stopped without an answer (it crashed or exceeded its memory or CPU limit)"
            ) from None
    finally:
        receive.close()
        if process.is_alive():
            process.kill()
        process.join(5.0)
        process.close() if process.exitcode is not None else None
    kind = answer[0]
    if kind == "ok":
        result: VideoHash = answer[1]
        return result
    if kind == "limit":
        raise _limit(answer[1], answer[2], answer[3])
    raise _ERRORS.get(answer[1], CorruptVideo)(answer[2])


def worker_pid_limit() -> int:
    """How many decodes this machine runs at once by default: one per CPU."""
    return max(1, os.cpu_count() or 1)
