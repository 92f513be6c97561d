"""Fuzzing decode-and-hash: mutated JPEG, PNG, GIF, WebP, TIFF and BMP files drawn here.

Every input must end in a hash or a 4xx error (``corrupt_media``, ``image_too_large``,
``unsupported_media_type``), on both hashing paths, within a time and memory bound. Anything
else (another exception, a hang, memory past the decode budget) is a finding.

The seeds are pictures drawn by ``detector.synthetic`` and encoded here; the mutations are
byte flips, truncations, insertions, deletions, and header fields set to chosen values
(width, height, chunk and segment lengths, strip counts): the edits that make a decoder trust
a size its data does not back. ``tests/unit/test_fuzz_decode.py`` runs a fixed, derandomized
number of inputs through the same ``mutate`` and ``outcome`` with Hypothesis; long runs are

    python -m benchmarks.fuzz --minutes 5 --seed 1

which runs inputs in a worker process (restarted after a hang or crash), measures each input's
peak resident memory there (``VmHWM``, reset per input through ``/proc/self/clear_refs``) and
writes ``benchmarks/results/fuzz.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import statistics
import struct
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.machine import commit, describe
from detector.decode import DEFAULT_DECODE_BUDGET, HashingPath, Media
from detector.synthetic import draw, encode
from kernel.errors import ServiceError

RESULTS = Path(__file__).parent / "results" / "fuzz.md"
MAX_PIXELS = 100_000_000  # HASHGUARD_MAX_PIXELS's default
# A hang: an input that takes longer than this through both paths (the service's scan timeout is 30 s).
HANG_S = 20.0
# Mutation kinds, each applied at a position (a fraction of the file or of its header fields) with a value.
KINDS = ("flip", "truncate", "insert", "delete", "field", "field", "field")
# Values a header field is set to: the edges a decoder might trust.
FIELD_VALUES = (0, 1, 2, 7, 8, 255, 256, 4096, 65_535, 65_536, 100_000, 1 << 24, (1 << 31) - 1, (1 << 32) - 1)


def seeds() -> dict[str, bytes]:
    """The seed files, drawn and encoded here: every container and the modes the decoder meets."""
    small, big = draw(41, (96, 64)), draw(42, (1400, 1000))
    grey16 = Image.fromarray(np.asarray(small.convert("L"), np.uint16) << 8)
    rgba = small.convert("RGBA")
    return {
        "jpeg": encode(small, "JPEG", quality=80),
        "jpeg-progressive": encode(small, "JPEG", progressive=True),
        "jpeg-grey": encode(small.convert("L"), "JPEG"),
        "jpeg-draft": encode(big, "JPEG", quality=70),  # large enough for the reduced (1/8) decode
        "jpeg-restarts": encode(small, "JPEG", restart_marker_rows=1),
        "png": encode(small, "PNG"),
        "png-palette": encode(small.quantize(32), "PNG"),
        "png-interlaced": encode(small, "PNG", interlace=1),
        "png-grey16": encode(grey16, "PNG"),
        "png-rgba": encode(rgba, "PNG"),
        "gif": encode(small.quantize(64), "GIF"),
        "webp-lossy": encode(small, "WEBP", quality=70),
        "webp-lossless": encode(small, "WEBP", lossless=True),
        "tiff": encode(small, "TIFF"),
        "tiff-lzw": encode(small, "TIFF", compression="tiff_lzw"),
        "bmp": encode(small, "BMP"),
        "bmp-palette": encode(small.quantize(16), "BMP"),
    }


@dataclass(frozen=True, slots=True)
class Field:
    """A header field: ``size`` bytes at ``offset``, big- or little-endian."""

    offset: int
    size: int
    big_endian: bool


def header_fields(data: bytes) -> list[Field]:
    """Width, height and length fields of ``data``'s container, found by parsing it (best effort)."""
    found: list[Field] = []
    try:
        if data.startswith(b"\x89PNG"):
            pos = 8
            while pos + 8 <= len(data):
                (length,) = struct.unpack(">I", data[pos : pos + 4])
                found.append(Field(pos, 4, True))  # chunk length
                if data[pos + 4 : pos + 8] == b"IHDR":
                    found += [Field(pos + 8, 4, True), Field(pos + 12, 4, True)]
                pos += 12 + length
        elif data.startswith(b"\xff\xd8"):
            pos = 2
            while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
                (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
                found.append(Field(pos + 2, 2, True))  # segment length
                if data[pos + 1] in (0xC0, 0xC1, 0xC2):
                    found += [Field(pos + 5, 2, True), Field(pos + 7, 2, True)]  # height, width
                pos += 2 + length
        elif data.startswith(b"GIF"):
            found += [Field(6, 2, False), Field(8, 2, False)]
            descriptor = data.find(b"\x2c", 13)
            if descriptor > 0:
                found += [Field(descriptor + 5, 2, False), Field(descriptor + 7, 2, False)]
        elif data.startswith(b"BM"):
            found += [Field(2, 4, False), Field(10, 4, False), Field(18, 4, False), Field(22, 4, False), Field(34, 4, False)]
        elif data.startswith(b"RIFF"):
            found += [Field(4, 4, False), Field(16, 4, False)]  # RIFF size, first chunk size
            if data[12:16] == b"VP8 ":
                found += [Field(26, 2, False), Field(28, 2, False)]
            elif data[12:16] == b"VP8L":
                found += [Field(21, 4, False)]  # 14-bit width-1 and height-1, packed
        elif data[:4] in (b"II*\x00", b"MM\x00*"):
            big = data.startswith(b"MM")
            (ifd,) = struct.unpack(">I" if big else "<I", data[4:8])
            (count,) = struct.unpack(">H" if big else "<H", data[ifd : ifd + 2])
            for k in range(count):
                entry = ifd + 2 + 12 * k
                (tag,) = struct.unpack(">H" if big else "<H", data[entry : entry + 2])
                if tag in (256, 257, 273, 278, 279, 258, 277):
                    found.append(Field(entry + 8, 4, big))
    except (struct.error, IndexError):
        pass
    return [f for f in found if f.offset + f.size <= len(data)]


def mutate(data: bytes, ops: Sequence[tuple[str, float, int]]) -> bytes:
    """Apply each ``(kind, where, value)``: ``where`` in [0, 1) picks the byte or field, ``value`` the change."""
    out = bytearray(data)
    for kind, where, value in ops:
        if not out:
            break
        at = min(len(out) - 1, int(where * len(out)))
        if kind == "flip":
            out[at] ^= value % 255 + 1
        elif kind == "truncate":
            del out[max(1, at) :]
        elif kind == "insert":
            out[at:at] = bytes([value % 256]) * (value % 64 + 1)
        elif kind == "delete":
            del out[at : at + value % 64 + 1]
        elif kind == "field":
            fields = header_fields(bytes(out))
            if not fields:
                out[at] ^= value % 255 + 1
                continue
            spot = fields[min(len(fields) - 1, int(where * len(fields)))]
            current = int.from_bytes(out[spot.offset : spot.offset + spot.size], "big" if spot.big_endian else "little")
            choice = value % (len(FIELD_VALUES) + 3)
            new = (
                FIELD_VALUES[choice]
                if choice < len(FIELD_VALUES)
                else (current * 102 // 100 + 1, current * 2, max(0, current - 1))[choice - len(FIELD_VALUES)]
            )
            new %= 1 << (8 * spot.size)
            out[spot.offset : spot.offset + spot.size] = new.to_bytes(spot.size, "big" if spot.big_endian else "little")
    return bytes(out)


class Finding(Exception):
    """An input ended in something other than a hash or a 4xx error."""


def outcome(data: bytes, path: HashingPath, budget: int = DEFAULT_DECODE_BUDGET) -> str:
    """``"hash"`` or the 4xx error code decode-and-hash ended in; raises ``Finding`` for anything else."""
    from detector.tools.imagehashes import DHashTool, PHashTool
    from detector.tools.pdq import PdqTool

    media = Media(data=data, max_pixels=MAX_PIXELS, hashing=path, memory_budget=budget)
    try:
        # Pillow warns about corrupt metadata (EXIF, ICC) it skips; the service logs those, they are no outcome.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            media.decode()
            for tool in (PdqTool(), PHashTool(), DHashTool()):
                tool.hash(media)
    except ServiceError as exc:
        if not 400 <= exc.status < 500:
            raise Finding(f"{type(exc).__name__} ({exc.status}): {exc}") from exc
        return exc.code
    except Exception as exc:
        raise Finding(f"{type(exc).__name__}: {exc}") from exc
    return "hash"


# Video seeds (issue 15): short drawn clips in each accepted container; their outcomes come from the
# isolated decode (``detector.video_decode.run_isolated``) under small limits, so a crash or a hang in
# FFmpeg shows up as its 4xx, and anything that is neither a hash nor a 4xx is a finding.
VIDEO_CODES = frozenset({"hash", "corrupt_media", "unsupported_media_type", "video_limit_exceeded"})


def video_seeds() -> dict[str, bytes]:
    """Small clips drawn by ``detector.synthetic_video``: MP4 (H.264), MKV, WebM (VP8) and AVI (MPEG-4)."""
    import tempfile

    from detector.synthetic_video import Clip
    from detector.synthetic_video import encode as encode_video

    clip = Clip(seed=77, seconds=2.0, fps=5.0, width=96, height=64)
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, container, codec in (
            ("video-mp4", "mp4", "libx264"),
            ("video-mkv", "mkv", "libx264"),
            ("video-webm", "webm", "libvpx"),
            ("video-avi", "avi", "mpeg4"),
        ):
            path = str(Path(folder) / f"seed.{container}")
            encode_video(path, clip, container=container, codec=codec)
            out[name] = Path(path).read_bytes()
    return out


def video_outcome(data: bytes, *, isolated: bool = True, wall_s: float = HANG_S) -> str:
    """``"hash"`` or the 4xx code a video upload ends in; raises ``Finding`` for anything else."""
    import tempfile

    from detector.video_decode import VideoJob, VideoLimits, hash_video_file, run_isolated

    limits = VideoLimits(max_duration_s=600, max_frame_pixels=4096 * 4096, max_frames=2000, wall_s=wall_s, memory_bytes=1 << 31)
    fd, path = tempfile.mkstemp(prefix="hashguard-fuzz-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        job = VideoJob(path=path, limits=limits)
        (run_isolated if isolated else hash_video_file)(job)
    except ServiceError as exc:
        if not 400 <= exc.status < 500:
            raise Finding(f"{type(exc).__name__} ({exc.status}): {exc}") from exc
        return exc.code
    except Exception as exc:
        raise Finding(f"{type(exc).__name__}: {exc}") from exc
    finally:
        os.unlink(path)
    return "hash"


# ---------------------------------------------------------------------------------------------
# Long runs


def _peak_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM, the peak resident set
    except OSError:
        pass


def _peak_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            return int(next(line.split()[1] for line in status if line.startswith("VmHWM")))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(inputs: Any, results: Any) -> None:
    from detector.hashjob import prepare_worker

    prepare_worker()
    outcome(seeds()["png"], HashingPath.FAST)  # warm: imports and caches are not the input's memory
    while True:
        item = inputs.get()
        if item is None:
            return
        index, name, data = item
        _peak_reset()
        before = _peak_kib()
        started = time.perf_counter()
        try:
            if name.startswith("video-"):  # decoded here, in this worker: a crash is a finding ("the worker died")
                ends = [video_outcome(data, isolated=False)] * 2
            else:
                ends = [outcome(data, path) for path in (HashingPath.FAST, HashingPath.REFERENCE)]
            error = None
        except Finding as exc:
            ends, error = [], f"{exc}\n{traceback.format_exc(limit=6)}"
        results.put((index, ends, error, time.perf_counter() - started, max(0, _peak_kib() - before)))


@dataclass(slots=True)
class Run:
    inputs: int = 0
    ends: Counter[str] = field(default_factory=Counter)
    by_seed: Counter[str] = field(default_factory=Counter)
    findings: list[tuple[str, str, str]] = field(default_factory=list)  # seed, ops, error
    hangs: list[tuple[str, str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)
    worst: tuple[int, str] = (0, "")
    slowest: tuple[float, str] = (0.0, "")


def run(minutes: float, seed: int, limit: int | None = None) -> Run:
    rng = random.Random(seed)
    files = {**seeds(), **video_seeds()}
    names = sorted(files)
    context = mp.get_context("spawn")
    result = Run()
    deadline = time.monotonic() + minutes * 60

    def start() -> tuple[Any, Any, Any]:
        inputs, results = context.Queue(), context.Queue()
        process = context.Process(target=_worker, args=(inputs, results), daemon=True)
        process.start()
        return process, inputs, results

    process, inputs, results = start()
    while time.monotonic() < deadline and (limit is None or result.inputs < limit):
        name = rng.choice(names)
        ops = [(rng.choice(KINDS), rng.random(), rng.randrange(1 << 32)) for _ in range(rng.randint(1, 4))]
        data = mutate(files[name], ops)
        inputs.put((result.inputs, name, data))
        described = f"{name} {ops}"
        try:
            _, ends, error, seconds, peak = results.get(timeout=HANG_S + 60)  # the first input also waits for start-up
        except Exception:
            result.hangs.append((name, described))
            process.kill()
            process, inputs, results = start()
            result.inputs += 1
            continue
        result.inputs += 1
        result.by_seed[name] += 1
        if not process.is_alive() or error is not None:
            result.findings.append((name, described, error or "the worker died"))
            if not process.is_alive():
                process, inputs, results = start()
            continue
        if seconds > HANG_S:
            result.hangs.append((name, described))
        result.seconds.append(seconds)
        result.peak_kib.append(peak)
        if peak > result.worst[0]:
            result.worst = (peak, described)
        if seconds > result.slowest[0]:
            result.slowest = (seconds, described)
        for path, end in zip(("fast", "reference"), ends, strict=True):
            result.ends[f"{path}: {end}"] += 1
    inputs.put(None)
    process.join(10)
    if process.is_alive():
        process.kill()
    return result


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def report(result: Run, *, minutes: float, seed: int, command: str, started: datetime) -> str:
    budget_mib = DEFAULT_DECODE_BUDGET >> 20
    peak_mib = max(result.peak_kib, default=0) / 1024
    lines = [
        "# Fuzzing decode-and-hash",
        "",
        f"- command: `{command}`",
        f"- seed: {seed}",
        f"- commit: {commit()}",
        f"- machine: {describe()}",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, {minutes:g} minutes",
        "",
        "Mutated JPEG (baseline, progressive, greyscale, 1400x1000 for the 1/8 decode, restart markers), PNG (RGB,",
        "palette, interlaced, 16-bit grey, RGBA), GIF, WebP (lossy, lossless), TIFF (raw, LZW) and BMP (RGB, palette)",
        "seeds drawn by the script: 1 to 4 byte flips, truncations, insertions, deletions and header fields (width,",
        "height, chunk/segment lengths, strip offsets and counts) set to edge values, each input through both hashing",
        f"paths with HASHGUARD_MAX_PIXELS={MAX_PIXELS:,} and the default decode budget ({budget_mib} MiB). Peak memory is",
        "the worker's resident-set high-water mark during the input above its level before it (VmHWM, reset per input).",
        "",
        "## Summary",
        "",
        "| inputs | findings (crash or non-4xx error) | hangs (over 20 s) | median ms | p99 ms | max ms | median peak MiB | p99 peak MiB | max peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result.inputs} | {len(result.findings)} | {len(result.hangs)} | {statistics.median(result.seconds or [0]) * 1000:.1f}"
        f" | {_quantile(result.seconds, 0.99) * 1000:.1f} | {max(result.seconds, default=0) * 1000:.1f}"
        f" | {statistics.median(result.peak_kib or [0]) / 1024:.1f} | {_quantile([float(p) for p in result.peak_kib], 0.99) / 1024:.1f}"
        f" | {peak_mib:.1f} |",
        "",
        f"Largest peak ({peak_mib:.1f} MiB, budget {budget_mib} MiB): `{result.worst[1][:300]}`",
        f"Slowest input ({max(result.seconds, default=0):.2f} s, both paths): `{result.slowest[1][:300]}`",
        "",
        "## How inputs ended (per path)",
        "",
        "| path: end | inputs |",
        "|---|---:|",
        *(f"| {end} | {count} |" for end, count in sorted(result.ends.items())),
        "",
        "## Inputs per seed",
        "",
        "| seed file | inputs |",
        "|---|---:|",
        *(f"| {name} | {count} |" for name, count in sorted(result.by_seed.items())),
        "",
        "## Findings",
        "",
    ]
    if not result.findings and not result.hangs:
        lines.append("None: every input ended in a hash or a 4xx error on both paths.")
    for name, described, error in result.findings[:20]:
        lines += [f"- {name}: `{described[:300]}`", "", "```", error.strip()[:1500], "```"]
    for name, described in result.hangs[:20]:
        lines.append(f"- hang, {name}: `{described[:300]}`")
    lines += ["", f"Rerun: `{command}` (the same seed gives the same inputs; the count depends on the machine's speed)."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--inputs", type=int, default=None, help="stop after this many inputs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = run(args.minutes, args.seed, args.inputs)
    command = f"python -m benchmarks.fuzz --minutes {args.minutes:g} --seed {args.seed}"
    text = report(result, minutes=args.minutes, seed=args.seed, command=command, started=started)
    args.out.write_text(text)
    print(text)
    return 1 if result.findings or result.hangs else 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
