"""The video scan use case: a spooled upload in, a verdict out; the upload file gone whatever happens.

``Spool`` writes the upload to a private temporary file (``mkstemp``: mode 0600, in TMPDIR) as it
arrives, computing its MD5 and SHA-256 on the way, so no video is ever whole in memory and the exact
tools need no second read. ``VideoScanner.scan`` decodes and hashes it in an isolated worker process
(``detector.video_decode.run_isolated``), at most ``workers`` at once, deletes the file as soon as
the worker is done (or failed), then matches the hashes like a lookup: vPDQ against the frame index,
MD5/SHA-256 against the exact sets. Nothing of the media is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from detector.decode import HashingPath
from detector.errors import ScanTimeout
from detector.scan import Outcome, ScanContext, ScanService, SnapshotHolder, require_active_tools
from detector.video_decode import VideoError, VideoHash, VideoJob, VideoLimitExceeded, VideoLimits, run_isolated
from kernel.metrics import Metrics

CHUNK = 1 << 16


class Spool:
    """An upload being written to a private temporary file; ``discard`` deletes it (idempotent)."""

    def __init__(self, limit: int, folder: str | None = None) -> None:
        self.limit = limit
        fd, self.path = tempfile.mkstemp(prefix="hashguard-video-", dir=folder)
        self._file = os.fdopen(fd, "wb")
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()

    async def fill(self, read: Callable[[int], Awaitable[bytes]]) -> Spool:
        """Copy a body or form part to the file, refusing with 413 as soon as it passes the limit."""
        try:
            while chunk := await read(CHUNK):
                self.size += len(chunk)
                if self.size > self.limit:
                    raise VideoLimitExceeded(
                        "bytes", f"the video is larger than {self.limit} bytes (HASHGUARD_VIDEO_MAX_BYTES)", status=413
                    )
                self._md5.update(chunk)
                self._sha256.update(chunk)
                self._file.write(chunk)
            self._file.close()
        except BaseException:
            self.discard()
            raise
        return self

    @property
    def md5(self) -> bytes:
        return self._md5.digest()

    @property
    def sha256(self) -> bytes:
        return self._sha256.digest()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoSettings:
    limits: VideoLimits
    workers: int
    seconds_per_hash: float = 1.0
    hashing: HashingPath = HashingPath.FAST
    queue_timeout_s: float = 30.0
    tmp_dir: str | None = None


class VideoScanner:
    def __init__(self, settings: VideoSettings, metrics: Metrics) -> None:
        self.settings = settings
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.workers)

    def spool(self) -> Spool:
        return Spool(self.settings.limits.max_bytes, self.settings.tmp_dir)

    def refused(self, reason: str) -> None:
        self._metrics.video_refused.labels(reason=reason).inc()
        self._metrics.video_scans.labels(outcome="refused").inc()

    async def hash(self, spool: Spool) -> VideoHash:
        """Decode and hash a spooled video in a worker process; the file is deleted when this returns or raises."""
        settings = self.settings
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), settings.queue_timeout_s)
            except TimeoutError:
                raise ScanTimeout("every video worker stayed busy; hold the upload and retry") from None
            try:
                job = VideoJob(
                    path=spool.path,
                    limits=settings.limits,
                    seconds_per_hash=settings.seconds_per_hash,
                    hashing=settings.hashing,
                )
                started = time.perf_counter()
                result = await asyncio.to_thread(run_isolated, job)
                self._metrics.video_decode_seconds.observe(time.perf_counter() - started)
            finally:
                self._slots.release()
        except VideoLimitExceeded as exc:
            self.refused(exc.limit)
            raise
        except VideoError:
            self.refused("corrupt")
            raise
        finally:
            spool.discard()
        self._metrics.video_scans.labels(outcome="hashed").inc()
        return result

    async def scan(self, spool: Spool, context: ScanContext, service: ScanService, holder: SnapshotHolder) -> Outcome:
        """Hash the spooled video (deleting it) and match it: vPDQ frames, MD5 and SHA-256 of the bytes."""
        try:
            snapshot = holder.require()
            require_active_tools(snapshot)
        except BaseException:
            spool.discard()
            raise
        started = time.perf_counter()
        digests = {"md5": spool.md5, "sha256": spool.sha256}
        # Decoded even when only the exact tools have lists: an upload that is not a readable video
        # gets its 4xx instead of a verdict computed on bytes nobody could check.
        video = await self.hash(spool)
        hashes = {"vpdq": video.value, **digests}
        wanted = {name: value for name, value in hashes.items() if name in snapshot.tools}
        return await service.match_hashes(wanted, context, started)


def limit_too_large(size: int | None, limit: int) -> None:
    """Refuse a declared body length over the video limit before reading it."""
    if size is not None and size > limit:
        raise VideoLimitExceeded(
            "bytes",
            f"the upload is {size} bytes; at most {limit} bytes of video are accepted (HASHGUARD_VIDEO_MAX_BYTES)",
            status=413,
        )
