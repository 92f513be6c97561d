"""Building the in-memory match snapshot from the stored lists, and the fingerprint that says when to.

``SnapshotLoader`` reads, in one repeatable-read transaction, the lists' generation, every
active and shadow list version, the allow-list (all through ``ListReader``, implemented by
hashsets) and the approval policy's inputs (``detector.approvals.pg``), then builds the
snapshot off the event loop. ``detector.reload.Reloader`` calls ``fingerprint`` to see whether
anything changed and ``load`` to bring the snapshot up to date.

Changes are applied in place (issue 16): the loader remembers, per Hamming or exact tool, the
list versions its index holds. A delta import (a current version whose lineage contains the
held one) reads only the new versions' entries and retractions and applies them with
``with_changes``; a new list is read alone; disables are re-derived from the base (which keeps
disabled rows) at each load; status, threshold and allow-list changes rebuild no index. Only a
full replacement, a rollback or a list leaving rebuilds — that tool alone. Frame-list tools
(vPDQ) rebuild their own index when one of their lists changes (their lists are small).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from detector import index_store
from detector.exactset import ExactHashSet
from detector.index import HammingIndex
from detector.matcher import (
    LoadedVersion,
    MatchSnapshot,
    ToolEntries,
    _Allow,
    _PositionRows,
    _Rows,
    allow_part,
    build_index,
    build_snapshot,
)
from detector.tools.base import HashTool, IndexKind
from detector.tools.policy import Activation, Approval, LocalAllowance, decide_all, next_change
from detector.tools.registry import ToolRegistry
from detector.video_frames import MatchParams
from kernel.metrics import Metrics

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

log = logging.getLogger(__name__)


class ListVersion(Protocol):
    """One stored list version the detector should hold (its current version, active or shadow)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def tool(self) -> str: ...
    @property
    def entry_count(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def threshold(self) -> int | None: ...
    @property
    def hashset_id(self) -> int: ...
    @property
    def version_id(self) -> int: ...
    @property
    def lineage(self) -> tuple[int, ...]: ...


V = TypeVar("V", bound=ListVersion)


class ListReader(Protocol[V]):
    """The stored lists, read inside the loader's transaction (hashsets implements it). Never logs hashes."""

    async def generation(self, conn: asyncpg.Connection) -> int:
        """Bumped by every change to what is matched (versions, status, thresholds, disabled entries, allow-list)."""
        ...

    async def active_versions(self, conn: asyncpg.Connection) -> Sequence[V]: ...

    def stream_entries(self, conn: asyncpg.Connection, version: V) -> AsyncIterator[list[tuple[int, bytes]]]:
        """(row id, hash) chunks of one version's matchable entries."""
        ...

    def stream_added(
        self, conn: asyncpg.Connection, version: V, versions: Sequence[int]
    ) -> AsyncIterator[list[tuple[int, bytes, bool]]]:
        """(row id, hash, disabled now) chunks of the entries ``versions`` (part of ``version``'s
        lineage) add that the lineage does not retract."""
        ...

    async def database_identity(self, conn: asyncpg.Connection) -> str:
        """Names this database (a re-created one differs): index files are keyed by it too."""
        ...

    async def retracted_rows(self, conn: asyncpg.Connection, versions: Sequence[int]) -> Sequence[int]:
        """Rows that ``versions`` retract."""
        ...

    async def disabled_rows(self, conn: asyncpg.Connection, version: V) -> Sequence[int]:
        """Rows of ``version``'s lineage its list's disables stop matching now."""
        ...

    async def allowed_hashes(self, conn: asyncpg.Connection) -> Sequence[tuple[int, str, bytes]]:
        """(allow-list id, tool, hash) of every allow-listed hash."""
        ...

    async def count_quarantined(self, conn: asyncpg.Connection) -> int: ...


PolicyInputs = Callable[["asyncpg.Connection"], Awaitable[tuple[list[Approval], list[LocalAllowance]]]]


def fingerprint(generation: int, activations: Mapping[str, Activation], changes_at: datetime | None) -> Hashable:
    # The lists' generation counter moves with every change to what is matched (versions, status,
    # thresholds, disabled entries, allow-list). The decisions are part of it: an approval suspended, withdrawn or expired changes the
    # fingerprint, so the reloader swaps in a snapshot without that tool's index. So is the next
    # validity boundary, so passing one always installs a snapshot that schedules the next.
    return generation, tuple(sorted(activations.items())), changes_at


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _HeldList:
    version_id: int
    lineage: frozenset[int]
    slot: int  # this list's place in the tool's row table


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _HeldTool:
    """What one Hamming or exact tool's index holds, kept between loads to apply the next change as a delta.

    ``base`` holds every row of the held lineages that no version retracts, disabled ones too;
    ``index`` (served) is ``base`` less ``disabled``, so re-enabling an entry needs no read.
    """

    lists: Mapping[int, _HeldList]  # by hashset id
    base: HammingIndex | ExactHashSet
    rows: _Rows
    disabled: np.ndarray  # sorted row ids
    index: HammingIndex | ExactHashSet


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _HeldFrames:
    """A frame-list tool's snapshot part, reused while its lists and disables are unchanged."""

    key: Hashable
    entries: ToolEntries


@dataclasses.dataclass(kw_only=True, slots=True)
class _ToolWork:
    """What one load read for one Hamming or exact tool; turned into a ``_HeldTool`` off the loop."""

    tool: HashTool
    rebuild: bool
    lists: dict[int, _HeldList]
    ids: list[np.ndarray] = dataclasses.field(default_factory=list)
    codes: list[bytes] = dataclasses.field(default_factory=list)
    slots: list[np.ndarray] = dataclasses.field(default_factory=list)
    retracted: list[int] = dataclasses.field(default_factory=list)
    disabled: list[int] = dataclasses.field(default_factory=list)
    disabled_counts: list[int] = dataclasses.field(default_factory=list)  # per list, in read order
    start: _HeldTool | None = None  # a base mapped from HASHGUARD_INDEX_DIR, caught up from here


def _chunk_arrays(chunk: list[tuple[int, bytes, bool]], slot: int) -> tuple[np.ndarray, bytes, np.ndarray]:
    ids = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
    return ids, b"".join(r[1] for r in chunk), np.full(len(chunk), slot, dtype=np.int32)


def _apply(work: _ToolWork, held: _HeldTool | None, versions: tuple[LoadedVersion | None, ...]) -> tuple[_HeldTool, str]:
    """Build or update one tool's index (CPU-bound: runs in an executor). Returns the new state and how."""
    tool = work.tool
    ids = np.concatenate(work.ids) if work.ids else np.empty(0, dtype=np.int64)
    codes = np.frombuffer(b"".join(work.codes), dtype=np.uint8).reshape(-1, tool.width)
    slots = np.concatenate(work.slots) if work.slots else np.empty(0, dtype=np.int32)
    disabled = np.unique(np.asarray(work.disabled, dtype=np.int64))
    if work.rebuild or held is None:
        base = build_index(tool, codes, ids)
        rows = _Rows(chunks=(_Rows.chunk(ids, slots),), versions=versions)
        how = "rebuild"
    else:
        base, rows, how = held.base, dataclasses.replace(held.rows, versions=versions), "unchanged"
        retracted = np.asarray(work.retracted, dtype=np.int64)
        if ids.shape[0] or retracted.shape[0]:
            # with_changes removes before it adds: a row added and retracted within this catch-up
            # (two deltas at once) must not be added at all.
            keep = ~np.isin(ids, retracted)
            ids, codes, slots = ids[keep], codes[keep], slots[keep]
            if isinstance(base, HammingIndex):
                base = base.with_changes(codes, ids, remove_ids=retracted, compact=False)
                if base.wants_compaction():
                    base = base.with_changes(compact=True)  # a background rebuild of the grown base
                    how = "compaction"
                    rows = rows.with_rows(ids, slots).merged()
                    ids = ids[:0]
                else:
                    how = "delta"
            else:
                base, how = base.with_changes(codes, ids, remove_ids=retracted), "delta"
            rows = rows.with_rows(ids, slots)
    if held is not None and base is held.base and np.array_equal(disabled, held.disabled):
        index = held.index  # nothing matched changed for this tool: share the served index
    elif disabled.shape[0]:
        index = (
            base.with_changes(remove_ids=disabled, compact=False)
            if isinstance(base, HammingIndex)
            else base.with_changes(remove_ids=disabled)
        )
    else:
        index = base
    return _HeldTool(lists=work.lists, base=base, rows=rows, disabled=disabled, index=index), how


class SnapshotLoader(Generic[V]):
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        lists: ListReader[V],
        policy_inputs: PolicyInputs,
        tools: ToolRegistry,
        jurisdictions: Sequence[str],
        metrics: Metrics,
        halt: str | None = None,
        video_params: Mapping[str, MatchParams] | None = None,
        index_dir: Path | None = None,
    ) -> None:
        self._index_dir = index_dir  # None: nothing on disk (tests, a single throwaway process)
        self._scope = ""  # the database's identity, part of every index file's key
        self._video_params = dict(video_params or {})
        self._pool = pool
        self._lists = lists
        self._policy_inputs = policy_inputs
        self._tools = tools
        self._jurisdictions = jurisdictions
        self._halt = halt  # detector.tools.policy.eu_detection_halt: no tool scans while set
        self._metrics = metrics
        # What each tool's index holds, to apply the next change as a delta. Replaced only once a
        # load has fully succeeded, so a failed load leaves the next one to start from what serves.
        self._held: dict[str, _HeldTool] = {}
        self._frames: dict[str, _HeldFrames] = {}
        self._lock = asyncio.Lock()
        # How the last load brought each tool up to date (tests and the benchmark read it).
        self.last_changes: dict[str, str] = {}

    async def _decide_tools(self, conn: asyncpg.Connection) -> tuple[dict[str, Activation], datetime | None]:
        """The approval policy's decision for every installed tool now, and when it may next change by itself."""
        approvals, allowances = await self._policy_inputs(conn)
        now = datetime.now(UTC)
        decisions = decide_all(
            {t.name: t.version for t in self._tools},
            approvals=approvals,
            allowances=allowances,
            jurisdictions=self._jurisdictions,
            now=now,
            halt=self._halt,
        )
        return decisions, next_change(approvals, now)

    async def fingerprint(self) -> Hashable:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            generation = await self._lists.generation(conn)
            activations, changes_at = await self._decide_tools(conn)
            return fingerprint(generation, activations, changes_at)

    def forget(self) -> None:
        """Drop what the indexes hold: the next load rebuilds every tool (a full reload)."""
        self._held.clear()
        self._frames.clear()

    async def load(self) -> tuple[Hashable, MatchSnapshot]:
        """Read every active and shadow list version in one consistent database snapshot and bring the
        index up to date: deltas where the held versions allow, a rebuild of a tool where not.

        The fingerprint is the lists' generation counter read in the same transaction, so a change
        committed while loading is seen as a change at the next check.
        """
        async with self._lock:
            if self._index_dir is None:
                return await self._load()
            # One process of the replica at a time: the first to need a rebuild writes the file, the
            # others then find it and map it (the lock is taken in a thread: flock blocks).
            held = index_store.lock(self._index_dir)
            await asyncio.get_running_loop().run_in_executor(None, held.__enter__)
            try:
                return await self._load()
            finally:
                held.__exit__(None, None, None)

    async def _from_disk(self, tool: HashTool, versions: Sequence[V]) -> _HeldTool | None:
        """The tool's base from HASHGUARD_INDEX_DIR when a file there is current or can be caught up."""
        if self._index_dir is None:
            return None
        current = {v.hashset_id: (v.version_id, tuple(v.lineage)) for v in versions}
        stored, refused = await asyncio.get_running_loop().run_in_executor(
            None, index_store.find, self._index_dir, tool.name, current, self._scope
        )
        if refused:
            self._metrics.index_file_refused.inc(refused)
        if stored is None or (isinstance(stored.base, ExactHashSet) != (tool.index_kind() is IndexKind.EXACT)):
            return None
        self._metrics.index_file_bytes.labels(tool=tool.name).set(
            index_store.file_size(stored.path) + index_store.file_size(stored.path.with_suffix(".rows"))
        )
        return _HeldTool(
            lists={
                s.hashset_id: _HeldList(version_id=s.version_id, lineage=frozenset(s.lineage), slot=s.slot) for s in stored.lists
            },
            base=stored.base,
            rows=_Rows(chunks=((stored.ids, stored.slots),), versions=()),
            disabled=np.empty(0, dtype=np.int64),
            index=stored.base,
        )

    async def _read_tool(self, conn: asyncpg.Connection, tool: HashTool, versions: Sequence[V]) -> _ToolWork:
        """Read what ``tool``'s index lacks: only the new versions of its lists, unless it must rebuild."""
        current = {v.hashset_id for v in versions}

        def must_rebuild(held: _HeldTool | None) -> bool:
            return (
                held is None
                or any(hashset_id not in current for hashset_id in held.lists)  # a list left: its rows must go
                or any(
                    v.hashset_id in held.lists
                    and v.version_id != held.lists[v.hashset_id].version_id
                    and held.lists[v.hashset_id].version_id not in v.lineage  # a full replacement or a rollback
                    for v in versions
                )
            )

        held = self._held.get(tool.name)
        start = None
        if must_rebuild(held) and (start := await self._from_disk(tool, versions)) is not None and not must_rebuild(start):
            held = start  # mapped from disk (another worker may just have written it): catch up from there
        else:
            start = None
        rebuild = must_rebuild(held)
        lists: dict[int, _HeldList] = {}
        work = _ToolWork(tool=tool, rebuild=rebuild, lists=lists, start=start)
        next_slot = 0 if rebuild or held is None else max((h.slot for h in held.lists.values()), default=-1) + 1
        for version in versions:
            before = None if rebuild or held is None else held.lists.get(version.hashset_id)
            if before is None:
                slot, next_slot = next_slot, next_slot + 1
                new_versions: list[int] = list(version.lineage)
            else:
                slot = before.slot
                new_versions = [v for v in version.lineage if v not in before.lineage]
            lists[version.hashset_id] = _HeldList(version_id=version.version_id, lineage=frozenset(version.lineage), slot=slot)
            if new_versions:
                async for chunk in self._lists.stream_added(conn, version, new_versions):
                    ids, codes, slots = _chunk_arrays(chunk, slot)
                    work.ids.append(ids)
                    work.codes.append(codes)
                    work.slots.append(slots)
                if before is not None:
                    work.retracted.extend(await self._lists.retracted_rows(conn, new_versions))
            off = set(await self._lists.disabled_rows(conn, version))
            work.disabled.extend(off)
            work.disabled_counts.append(len(off))
        return work

    async def _read_frames(
        self, conn: asyncpg.Connection, tool: HashTool, versions: Sequence[V], disabled: Sequence[int]
    ) -> ToolEntries:
        """A frame-list tool's entries, read again only when its lists or their disables changed."""
        key = (tuple((v.hashset_id, v.version_id) for v in versions), tuple(sorted(disabled)))
        held = self._frames.get(tool.name)
        if held is not None and held.key == key:
            return held.entries
        ids: list[np.ndarray] = []
        values: list[bytes] = []
        spans: list[tuple[int, int]] = []
        for i, version in enumerate(versions):
            spans.append((len(values), i))
            async for chunk in self._lists.stream_entries(conn, version):
                ids.append(np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk)))
                values.extend(r[1] for r in chunk)
        return ToolEntries(
            ids=np.concatenate(ids) if ids else np.empty(0, dtype=np.int64),
            codes=np.empty((0, tool.width), dtype=np.uint8),
            spans=tuple(spans),
            values=tuple(values),
        )

    async def _load(self) -> tuple[Hashable, MatchSnapshot]:
        tools = self._tools
        gaps: list[LoadedVersion] = []
        by_tool: dict[str, list[V]] = {}
        works: dict[str, _ToolWork] = {}
        frames: dict[str, tuple[Hashable, ToolEntries]] = {}
        disabled: dict[int, int] = {}  # by hashset id: how many of its rows are disabled now
        allow_ids: dict[str, list[int]] = {}
        allow_codes: dict[str, list[bytes]] = {}
        # Streaming rows allocates millions of short-lived records, which triggers full garbage
        # collections; each would walk every object of the process (~100 ms with a service's heap)
        # on the event loop. Frozen objects are skipped: a collection walks only what the load made.
        gc.freeze()
        try:
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                generation = await self._lists.generation(conn)
                versions = await self._lists.active_versions(conn)
                activations, changes_at = await self._decide_tools(conn)
                if self._index_dir is not None and not self._scope:
                    self._scope = await self._lists.database_identity(conn)
                for version in versions:
                    if version.tool not in tools.names() or not activations[version.tool].active:
                        # Stored, not matched: a coverage gap, reported; the list comes back into use when
                        # its tool is enabled and approved again.
                        log.warning(
                            "list %s holds %d %s entries, but no active tool computes %s hashes (%s): a coverage gap",
                            version.name,
                            version.entry_count,
                            version.tool,
                            version.tool,
                            activations[version.tool].reason if version.tool in activations else "not enabled",
                        )
                        gaps.append(
                            LoadedVersion(
                                hashset=version.name, version=version.version, tool=version.tool, entries=version.entry_count
                            )
                        )
                        continue
                    by_tool.setdefault(version.tool, []).append(version)
                active = [t for t in tools if activations[t.name].active]
                for tool in active:
                    tool_versions = by_tool.get(tool.name, [])
                    if tool.index_kind() is IndexKind.FRAMES:
                        off: list[int] = []
                        for version in tool_versions:
                            rows = set(await self._lists.disabled_rows(conn, version))
                            disabled[version.hashset_id] = len(rows)
                            off.extend(rows)
                        entries = await self._read_frames(conn, tool, tool_versions, off)
                        frames[tool.name] = (
                            (tuple((v.hashset_id, v.version_id) for v in tool_versions), tuple(sorted(off))),
                            entries,
                        )
                    else:
                        work = works[tool.name] = await self._read_tool(conn, tool, tool_versions)
                        for version, count in zip(tool_versions, work.disabled_counts, strict=True):
                            disabled[version.hashset_id] = count
                for allow_id, tool_name, value in await self._lists.allowed_hashes(conn):
                    if tool_name in works:
                        allow_ids.setdefault(tool_name, []).append(allow_id)
                        allow_codes.setdefault(tool_name, []).append(value)
                self._metrics.quarantined_entries.set(await self._lists.count_quarantined(conn))
        finally:
            gc.unfreeze()
        # The snapshot's list versions, in the order the lists were read (metadata: status and
        # threshold changes end here, with no index work).
        held_versions: dict[str, dict[int, LoadedVersion]] = {}
        for tool in active:
            for version in by_tool.get(tool.name, []):
                held_versions.setdefault(tool.name, {})[version.hashset_id] = LoadedVersion(
                    hashset=version.name,
                    version=version.version,
                    tool=version.tool,
                    entries=version.entry_count - disabled.get(version.hashset_id, 0),
                    status=version.status,
                    threshold=version.threshold,
                )
        snapshot = await asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(self._assemble, active, held_versions, works, frames, (allow_ids, allow_codes), activations, gaps),
        )
        snapshot = dataclasses.replace(snapshot, policy_changes_at=changes_at)
        return fingerprint(generation, activations, changes_at), snapshot

    def _assemble(
        self,
        active: list[HashTool],
        held_versions: dict[str, dict[int, LoadedVersion]],
        works: dict[str, _ToolWork],
        frames: dict[str, tuple[Hashable, ToolEntries]],
        allow: tuple[dict[str, list[int]], dict[str, list[bytes]]],
        activations: Mapping[str, Activation],
        gaps: list[LoadedVersion],
    ) -> MatchSnapshot:
        """Apply what was read (in an executor) and put the snapshot together; state moves only on success."""
        allow_ids, allow_codes = allow
        loaded: list[LoadedVersion] = []
        held: dict[str, _HeldTool] = {}
        changes: dict[str, str] = {}
        hamming: dict[str, HammingIndex] = {}
        exact: dict[str, ExactHashSet] = {}
        rows: dict[str, _Rows | _PositionRows] = {}
        allowed: dict[str, _Allow] = {}
        videos: dict[str, Any] = {}
        video_params: dict[str, MatchParams] = {}
        kept_frames: dict[str, _HeldFrames] = {}
        for tool in active:
            by_id = held_versions.get(tool.name, {})
            if tool.name in frames:
                key, entries = frames[tool.name]
                previous = self._frames.get(tool.name)
                tool_versions = list(by_id.values())
                part = build_snapshot([tool], tool_versions, {tool.name: entries}, video_params=self._video_params)
                changes[tool.name] = "unchanged" if previous is not None and previous.key == key else "rebuild"
                kept_frames[tool.name] = _HeldFrames(key=key, entries=entries)
                loaded.extend(tool_versions)
                rows.update(part.rows)
                videos.update(part.videos)
                video_params.update(part.video_params)
                continue
            work = works[tool.name]
            loaded.extend(by_id.values())
            slots: list[LoadedVersion | None] = [None] * (max((h.slot for h in work.lists.values()), default=-1) + 1)
            for hashset_id, list_held in work.lists.items():
                slots[list_held.slot] = by_id[hashset_id]
            started = time.process_time()
            before = None if work.rebuild else work.start or self._held.get(tool.name)
            state, how = _apply(work, before, tuple(slots))
            self._metrics.index_delta_seconds.labels(tool=tool.name).observe(time.process_time() - started)
            if work.start is not None and how in ("unchanged", "delta"):
                how = "file" if how == "unchanged" else "catch-up"
            if self._index_dir is not None and how in ("rebuild", "compaction"):
                # A new base goes to disk for the next start and the other workers; deltas applied
                # later are caught up again from this file (a start maps it, then reads only them).
                stored = [
                    index_store.StoredList(hashset_id=hid, version_id=h.version_id, lineage=tuple(sorted(h.lineage)), slot=h.slot)
                    for hid, h in work.lists.items()
                ]
                _path, size = index_store.save(self._index_dir, tool.name, state.base, state.rows.chunks, stored, self._scope)
                self._metrics.index_file_bytes.labels(tool=tool.name).set(size)
            held[tool.name] = state
            changes[tool.name] = how
            if isinstance(state.index, HammingIndex):
                hamming[tool.name] = state.index
            else:
                exact[tool.name] = state.index
            rows[tool.name] = state.rows
            if tool.name in allow_ids:
                benign = ToolEntries(
                    ids=np.array(allow_ids[tool.name], dtype=np.int64),
                    codes=np.frombuffer(b"".join(allow_codes[tool.name]), dtype=np.uint8).reshape(-1, tool.width),
                )
                allowed[tool.name] = allow_part(tool, state.index, state.rows, benign)
        for name, how in changes.items():
            self._metrics.index_changes.labels(tool=name, kind=how).inc()
        self._held = held
        self._frames = kept_frames
        self.last_changes = changes
        return MatchSnapshot(
            versions=tuple(loaded),
            hamming=hamming,
            exact=exact,
            rows=rows,
            allow=allowed,
            coverage_gaps=tuple(gaps),
            activations=dict(activations),
            videos=videos,
            video_params=video_params,
        )
