"""The scan and lookup use cases: hash off the event loop, match against the current snapshot,
resolve hits into matches. Storage is reached only through the injected ``resolve`` (``detector.resolve.Resolver``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Literal, TypeVar

from detector.decode import DEFAULT_DECODE_BUDGET, HashingPath, decode_cost
from detector.errors import NotReady, ScanTimeout
from detector.hashjob import HashJob, hash_upload, prepare_worker
from detector.match import Match
from detector.matcher import Hit, MatchSnapshot
from detector.tools.policy import ToolNotActive
from detector.tools.registry import ToolRegistry

T = TypeVar("T")
log = logging.getLogger(__name__)

Verdict = Literal["match", "no_match"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanContext:
    """Who asked about what: the platform's content id, the caller's key and the key's tenant.

    Content ids are the platform's own names, unique only within its tenant: every record a scan
    leaves (evidence, upload hashes, tickets) carries ``tenant_id`` so no other tenant reaches it.
    """

    content_id: str
    content_url: str | None
    api_key_id: int | None
    tenant_id: int
    # MD5 and SHA-256 of the uploaded bytes, taken when a scan matched: what a hotline report names and
    # an evidence file fetched later is checked against (takedown.reports). Not a list's values.
    file_digests: Mapping[str, bytes] | None = None
    # What the platform sent of the upload's account (detector.http.uploader_fields): account_id,
    # screen_name, ip, port, upload_time; kept by takedown with the ticket's evidence.
    uploader: Mapping[str, object] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    scan_id: uuid.UUID
    content_id: str
    verdict: Verdict
    matches: tuple[Match, ...]
    elapsed_ms: float
    ticket_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """What storing a scan's hits produced: the answered (non-shadow) matches, and the ticket opened or joined."""

    matches: list[Match]
    ticket_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Pending:
    """One scanned item with hits, to be resolved: its scan id, who asked, the hits and the hashes asked about."""

    scan_id: uuid.UUID
    context: ScanContext
    hits: Sequence[Hit]
    hashes: Mapping[str, bytes]


# Resolves every item of one call that has hits, in one transaction, answering in the same order.
Resolve = Callable[[Sequence[Pending]], Awaitable[list[Resolution]]]
# Keeps one call's uploads' hashes for look-back (HASHGUARD_LOOKBACK_DAYS), in one statement; None when that is off.
Remember = Callable[[Sequence[tuple[uuid.UUID, ScanContext, Mapping[str, bytes]]]], Awaitable[None]]


def _file_digests(data: bytes) -> dict[str, bytes]:
    return {"md5": hashlib.md5(data).digest(), "sha256": hashlib.sha256(data).digest()}


class SnapshotHolder:
    """The one reference scans read; replacing it is a single atomic assignment."""

    def __init__(self) -> None:
        self.current: MatchSnapshot | None = None
        # When ``current`` was last known to match the database (time.monotonic()): installed, or a
        # reload check found nothing changed. /readyz turns 503 once it is older than HASHGUARD_INDEX_STALE_S.
        self.confirmed_at: float | None = None

    def require(self) -> MatchSnapshot:
        if self.current is None:
            raise NotReady("the hash index is not loaded yet; hold the upload and retry")
        return self.current


class MemoryBudget:
    """Estimated decode memory in flight across the pool (``HASHGUARD_DECODE_MEMORY_TOTAL_MB``).

    A decode takes its plan's cost (``detector.decode.plan``) before it takes a hashing slot and
    gives it back when its worker finishes. A large decode waits until the total has room for it,
    so however many hostile uploads arrive at once their decodes cannot add up past ``total``;
    a small decode (at most ``small`` bytes: ordinary photos, JPEGs decoded at reduced size) never
    waits, so ordinary scans proceed beside them (it is counted, so large ones wait for it too).
    Large ones are served in arrival order. A cost above ``total`` is counted as ``total`` (it runs alone).
    """

    def __init__(self, total: int, small: int) -> None:
        self.total = total
        self.small = min(small, total)
        self.used = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def acquire(self, cost: int) -> int:
        """Wait until ``cost`` fits and take it; returns the amount taken, to hand back to ``release``."""
        cost = min(cost, self.total)
        if cost <= self.small or (not self._waiters and self.used + cost <= self.total):
            self.used += cost
            return cost
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((cost, waiter))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(cost)  # granted just as the caller gave up
            else:
                if (cost, waiter) in self._waiters:
                    self._waiters.remove((cost, waiter))
                self._wake()
            raise
        return cost

    def release(self, cost: int) -> None:
        self.used -= cost
        self._wake()

    def _wake(self) -> None:
        # Large decodes in arrival order, as many as fit.
        while self._waiters:
            cost, waiter = self._waiters[0]
            if not waiter.done() and self.used + cost > self.total:
                break
            self._waiters.pop(0)
            if not waiter.done():  # (a cancelled waiter leaves on its own)
                self.used += cost
                waiter.set_result(None)


class HashPool:
    """CPU work off the event loop, at most ``workers`` jobs at once, each within a deadline.

    ``run`` runs a hashing job in a thread, or with ``processes=True`` in a worker process, in
    which case the callable and its arguments must pickle (a module-level function over plain
    values, like ``detector.hashjob.hash_upload``; ScanService only submits such jobs, so
    both modes work). Threads are the default because they measured fastest on the fast path
    (benchmarks/results/hashing.md: 1080p JPEGs through the service, 153 scans/s in threads
    against 144 in processes; in its pool table, taken on a loaded 2-core machine, two threads
    gave 1.09x one thread and two processes 0.99x, the difference being pickling and IPC):
    JPEG decoding, Pillow's resize and numpy release the GIL. Processes isolate the service from a crashing decoder or runaway memory, and let
    GIL-bound tools (pdqhash's Cython entry point never releases it) use more than one CPU.
    ``run_here`` always runs in a thread of this process, for work that needs this process's
    memory: matching against the in-memory snapshot.

    A job says how much decode memory it will hold (``memory``); large ones wait for room in
    ``MemoryBudget`` and may hold all slots but one, which stays for ordinary scans.

    A slot is released when the worker really finishes, not when a caller gives up, so
    timeouts cannot oversubscribe the CPUs. A worker process that dies (a decoder crash, the
    OOM killer) breaks the process pool: the jobs in flight fail with ``BrokenProcessPool``
    (a 500, never a verdict) and the next job gets a fresh pool.
    """

    def __init__(
        self,
        workers: int,
        timeout_s: float,
        *,
        processes: bool = False,
        memory_total: int = 2 * DEFAULT_DECODE_BUDGET,
        memory_small: int = DEFAULT_DECODE_BUDGET // 16,
    ) -> None:
        self._workers = workers
        self.memory = MemoryBudget(memory_total, memory_small)
        self._processes = processes
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hashguard-hash")
        if not processes:
            prepare_worker()  # this process hashes: one BLAS thread per job, not per CPU per job
        self._executor: Executor = self._new_processes() if processes else self._threads
        self._slots = asyncio.Semaphore(workers)
        # Large decodes (above ``memory_small``) may hold every slot but one, so an ordinary scan
        # never queues behind them for a worker (with a single worker there is nothing to keep back).
        self._large_slots = asyncio.Semaphore(max(1, workers - 1))
        self._timeout_s = timeout_s

    @property
    def in_processes(self) -> bool:
        return self._processes

    def _new_processes(self) -> ProcessPoolExecutor:
        # spawn, not fork: the service process has threads (asyncio, the executor, asyncpg)
        # and forking a threaded process can deadlock the child.
        pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=get_context("spawn"), initializer=prepare_worker)
        for _ in range(self._workers):
            pool.submit(int)  # start every worker now, so the first scans do not pay for the start-up
        return pool

    async def run(self, fn: Callable[..., T], *args: object, memory: int = 0) -> T:
        """Run ``fn(*args)`` in a hashing thread, or a worker process if the pool was made with ``processes=True``.

        ``memory`` is the job's estimated peak (bytes), held against the pool's ``MemoryBudget``
        from before it takes a slot until its worker finishes.
        """
        executor = self._executor
        try:
            return await self._submit(executor, fn, *args, memory=memory)
        except BrokenProcessPool:
            if self._processes and executor is self._executor:
                self._executor = self._new_processes()
                executor.shutdown(wait=False)
            raise

    async def run_here(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in a thread of this process, under the same slots and deadline."""
        return await self._submit(self._threads, fn, *args)

    async def _submit(self, executor: Executor, fn: Callable[..., T], *args: object, memory: int = 0) -> T:
        deadline = time.monotonic() + self._timeout_s
        large = memory > self.memory.small
        taken: list[asyncio.Semaphore] = []

        def remaining() -> float:
            return max(0.0, deadline - time.monotonic())

        try:
            held = await asyncio.wait_for(self.memory.acquire(memory), self._timeout_s)
        except TimeoutError:
            raise ScanTimeout("the decode memory budget stayed taken by other uploads; hold the upload and retry") from None
        try:
            for semaphore in (self._large_slots, self._slots) if large else (self._slots,):
                await asyncio.wait_for(semaphore.acquire(), remaining())
                taken.append(semaphore)
            future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except BaseException as exc:
            for semaphore in taken:
                semaphore.release()
            self.memory.release(held)
            if isinstance(exc, TimeoutError):
                raise ScanTimeout("every hashing worker stayed busy; hold the upload and retry") from None
            raise

        def finished(_: object) -> None:
            for semaphore in taken:
                semaphore.release()
            self.memory.release(held)

        future.add_done_callback(finished)
        try:
            return await asyncio.wait_for(asyncio.shield(future), remaining())
        except TimeoutError:
            raise ScanTimeout() from None

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._threads.shutdown(wait=True, cancel_futures=True)


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
        hashing: HashingPath = HashingPath.FAST,
        memory_budget: int = DEFAULT_DECODE_BUDGET,
        variants: tuple[str, ...] = (),
    ) -> None:
        self._variants = variants  # HASHGUARD_QUERY_VARIANTS (detector.variants): extra queries per upload
        self._memory_budget = memory_budget
        self._remember = remember
        self._tools = tools
        self._holder = holder
        self._pool = pool
        self._max_pixels = max_pixels
        self._resolve = resolve
        self._hashing = hashing
        self._thresholds = {t.name: t.threshold() for t in tools}
        self._limits = {
            t.name: {v: t.variant_threshold(v) for v in t.supported_variants if t.variant_threshold(v) < t.threshold()}
            for t in tools
        }

    @property
    def thresholds(self) -> Mapping[str, int]:
        return self._thresholds

    async def scan(self, data: bytes, context: ScanContext) -> Outcome:
        started = time.perf_counter()
        snapshot = self._holder.require()
        require_active_tools(snapshot)
        wanted = tuple(t for t in self._tools if t.name in snapshot.tools)
        # Hashing may run in a worker process (HASHGUARD_HASH_POOL); matching needs the
        # in-memory snapshot, so it runs in this process.
        # The header alone says what the decode will cost: an image over the per-decode budget is refused
        # here, before it waits for a slot; the rest hold their cost against the pool's global budget.
        # (In a thread: some containers' headers, TIFF's tag directories, are not free to parse.)
        cost = await asyncio.to_thread(decode_cost, data, self._max_pixels, self._hashing, self._memory_budget)
        job = HashJob(
            data=data,
            max_pixels=self._max_pixels,
            hashing=self._hashing,
            tools=wanted,
            memory_budget=self._memory_budget,
            variants=self._variants,
        )
        if self._pool.in_processes:
            results = await self._pool.run(hash_upload, job, memory=cost)
            hashes = {n: r.value for n, r in results.items()}
            queries = {n: r.variants for n, r in results.items() if r.variants}
            hits = await self._pool.run_here(snapshot.match_variants, hashes, queries, self._thresholds, self._limits)
        else:
            # With threads, hash and match in one job: the upload takes one slot, not two, and never
            # queues again behind other uploads' hashing between the two steps.
            hashes, hits = await self._pool.run(self._hash_and_match, job, snapshot, memory=cost)
        if hits:
            context = dataclasses.replace(context, file_digests=await asyncio.to_thread(_file_digests, data))
        [outcome] = await self._outcomes(started, [(context, hits, hashes)])
        return outcome

    async def match_hashes(self, hashes: Mapping[str, bytes], context: ScanContext, started: float) -> Outcome:
        """The verdict for hashes computed elsewhere in this service (a video's, by ``detector.video_scan``)."""
        snapshot = self._holder.require()
        hits = await self._pool.run_here(snapshot.match, hashes, self._thresholds)
        [outcome] = await self._outcomes(started, [(context, hits, hashes)])
        return outcome

    def _hash_and_match(self, job: HashJob, snapshot: MatchSnapshot) -> tuple[dict[str, bytes], list[Hit]]:
        results = hash_upload(job)
        hashes = {n: r.value for n, r in results.items()}
        queries = {n: r.variants for n, r in results.items() if r.variants}
        return hashes, snapshot.match_variants(hashes, queries, self._thresholds, self._limits)

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

        all_hits = await self._pool.run_here(match_all)
        return await self._outcomes(
            started, [(context, hits, hashes) for (context, hashes), hits in zip(items, all_hits, strict=True)]
        )

    async def _outcomes(
        self, started: float, items: Sequence[tuple[ScanContext, Sequence[Hit], Mapping[str, bytes]]]
    ) -> list[Outcome]:
        scan_ids = [uuid.uuid4() for _ in items]
        # Only a match touches the database, and all of one call's matches in one transaction (a
        # 1,000-item batch used to cost 1,000); a failure there surfaces as an error, never no_match.
        pending = [
            Pending(scan_id=scan_id, context=context, hits=hits, hashes=hashes)
            for scan_id, (context, hits, hashes) in zip(scan_ids, items, strict=True)
            if hits
        ]
        resolved = iter(await self._resolve(pending)) if pending else iter(())
        if self._remember is not None:
            try:  # one statement for the whole call
                await self._remember(
                    [(s, context, hashes) for s, (context, _, hashes) in zip(scan_ids, items, strict=True) if hashes]
                )
            except Exception:  # best effort: look-back is a later re-check, the verdict stands either way
                log.exception("could not keep %d uploads' hashes for look-back", len(items))
        outcomes = []
        for scan_id, (context, hits, _) in zip(scan_ids, items, strict=True):
            resolution = next(resolved) if hits else Resolution(matches=[])
            matches = resolution.matches
            outcomes.append(
                Outcome(
                    scan_id=scan_id,
                    content_id=context.content_id,
                    verdict="match" if matches else "no_match",
                    matches=tuple(matches),
                    elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
                    ticket_id=resolution.ticket_id if matches else None,
                )
            )
        return outcomes

    def tool_version(self, tool: str) -> str:
        return self._tools.get(tool).version
