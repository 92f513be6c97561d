"""The scan and lookup use cases: hash off the event loop, match against the current snapshot,
resolve hits into list details. Storage is reached only through the injected ``resolve``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

from detector.decode import Media
from detector.errors import NotReady, ScanTimeout
from detector.matcher import Hit, MatchSnapshot
from detector.tools.base import HashResult
from detector.tools.policy import ToolNotActive
from detector.tools.registry import ToolRegistry

T = TypeVar("T")
log = logging.getLogger(__name__)

Verdict = Literal["match", "no_match"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanContext:
    """Who asked about what: the platform's content id and the caller's key."""

    content_id: str
    content_url: str | None
    api_key_id: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchView:
    """A match as a platform sees it: which list entry, never the entry's hash."""

    hashset: str
    hashset_version: int
    entry_id: str
    tool: str
    tool_version: str
    distance: int
    # The entry is flood-quarantined: the platform still gets "match", but the takedown side
    # must send it to review rather than act automatically. Not part of the platform's JSON.
    quarantined: bool = False
    # The approval the tool ran under (None under a local allowance) and why it was active.
    approval_id: int | None = None
    approval_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    scan_id: uuid.UUID
    content_id: str
    verdict: Verdict
    matches: tuple[MatchView, ...]
    elapsed_ms: float
    ticket_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """What storing a scan's hits produced: the matches as platforms see them, and the ticket opened or joined."""

    matches: list[MatchView]
    ticket_id: str | None = None


Resolve = Callable[[uuid.UUID, ScanContext, Sequence[Hit]], Awaitable[Resolution]]
# Keeps an upload's hashes for look-back (HASHGUARD_LOOKBACK_DAYS); None when that is off.
Remember = Callable[[uuid.UUID, ScanContext, Mapping[str, bytes]], Awaitable[None]]


class SnapshotHolder:
    """The one reference scans read; replacing it is a single atomic assignment."""

    def __init__(self) -> None:
        self.current: MatchSnapshot | None = None

    def require(self) -> MatchSnapshot:
        if self.current is None:
            raise NotReady("the hash index is not loaded yet; hold the upload and retry")
        return self.current


class HashPool:
    """CPU work off the event loop, at most ``workers`` jobs at once, each within a deadline.

    The slot is released when the worker thread really finishes, not when a caller gives up,
    so timeouts cannot oversubscribe the CPUs.
    """

    def __init__(self, workers: int, timeout_s: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hashguard-hash")
        self._slots = asyncio.Semaphore(workers)
        self._timeout_s = timeout_s

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        deadline = time.monotonic() + self._timeout_s
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout_s)
        except TimeoutError:
            raise ScanTimeout("every hashing worker stayed busy; hold the upload and retry") from None
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ScanTimeout() from None

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def require_active_tools(snapshot: MatchSnapshot) -> None:
    """A scan with no tool allowed to run would be a no_match that checked nothing: refuse it."""
    if not snapshot.active_tools():
        raise NotReady(
            "no detection tool is active: no approval in HASHGUARD_JURISDICTIONS covers an installed tool and none is"
            " allowed locally; hold the upload and retry"
        )


class ScanService:
    def __init__(
        self,
        *,
        tools: ToolRegistry,
        holder: SnapshotHolder,
        pool: HashPool,
        max_pixels: int,
        resolve: Resolve,
        remember: Remember | None = None,
    ) -> None:
        self._remember = remember
        self._tools = tools
        self._holder = holder
        self._pool = pool
        self._max_pixels = max_pixels
        self._resolve = resolve
        self._thresholds = {t.name: t.threshold() for t in tools}

    @property
    def thresholds(self) -> Mapping[str, int]:
        return self._thresholds

    def _hash_and_match(self, data: bytes, snapshot: MatchSnapshot) -> tuple[dict[str, HashResult], list[Hit]]:
        media = Media(data=data, max_pixels=self._max_pixels)
        # Decode first even if only exact tools have lists: an upload that is not a readable
        # image gets its 4xx here instead of a verdict computed on bytes we could not check.
        media.rgb()
        wanted = snapshot.tools
        results = {t.name: t.hash(media) for t in self._tools if t.name in wanted}
        return results, snapshot.match({n: r.value for n, r in results.items()}, self._thresholds)

    async def scan(self, data: bytes, context: ScanContext) -> Outcome:
        started = time.perf_counter()
        snapshot = self._holder.require()
        require_active_tools(snapshot)
        results, hits = await self._pool.run(self._hash_and_match, data, snapshot)
        return await self._outcome(started, context, hits, {n: r.value for n, r in results.items()})

    async def lookup(self, items: Sequence[tuple[ScanContext, Mapping[str, bytes]]]) -> list[Outcome]:
        """Verdicts for hashes the platform computed itself, one per item, in order."""
        started = time.perf_counter()
        snapshot = self._holder.require()
        require_active_tools(snapshot)
        active = snapshot.active_tools()
        for _, hashes in items:
            for name in hashes:
                if name not in active:
                    decision = snapshot.activations.get(name)
                    raise ToolNotActive(name, decision.reason if decision else "not enabled", active)

        def match_all() -> list[list[Hit]]:
            return [snapshot.match(hashes, self._thresholds) for _, hashes in items]

        all_hits = await self._pool.run(match_all)
        return [
            await self._outcome(started, context, hits, hashes) for (context, hashes), hits in zip(items, all_hits, strict=True)
        ]

    async def _outcome(
        self, started: float, context: ScanContext, hits: Sequence[Hit], hashes: Mapping[str, bytes] | None = None
    ) -> Outcome:
        scan_id = uuid.uuid4()
        # Only a match touches the database; a failure there surfaces as an error, never no_match.
        resolved = await self._resolve(scan_id, context, hits) if hits else Resolution(matches=[])
        matches = resolved.matches
        if self._remember is not None and hashes:
            try:
                await self._remember(scan_id, context, hashes)
            except Exception:  # best effort: look-back is a later re-check, the verdict stands either way
                log.exception("could not keep the upload's hashes for look-back (scan %s)", scan_id)
        return Outcome(
            scan_id=scan_id,
            content_id=context.content_id,
            verdict="match" if matches else "no_match",
            matches=tuple(matches),
            elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
            ticket_id=resolved.ticket_id if matches else None,
        )

    def tool_version(self, tool: str) -> str:
        return self._tools.get(tool).version
