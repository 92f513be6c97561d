"""Building the in-memory match snapshot from the stored lists, and the fingerprint that says when to.

``SnapshotLoader`` reads, in one repeatable-read transaction, the lists' generation, every
active and shadow list version with its entries, the allow-list (all through ``ListReader``,
implemented by hashsets) and the approval policy's inputs (``detector.approvals.pg``), then
builds the index off the event loop. ``detector.reload.Reloader`` calls ``fingerprint`` to see
whether anything changed and ``load`` to rebuild.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np

from detector.matcher import LoadedVersion, MatchSnapshot, ToolEntries, build_snapshot
from detector.tools.base import IndexKind
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
    ) -> None:
        self._video_params = dict(video_params or {})
        self._pool = pool
        self._lists = lists
        self._policy_inputs = policy_inputs
        self._tools = tools
        self._jurisdictions = jurisdictions
        self._halt = halt  # detector.tools.policy.eu_detection_halt: no tool scans while set
        self._metrics = metrics

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

    async def load(self) -> tuple[Hashable, MatchSnapshot]:
        """Read every active and shadow list version in one consistent database snapshot and index it.

        The fingerprint is the lists' generation counter read in the same transaction, so a change
        committed while loading is seen as a change at the next check.
        """
        tools = self._tools
        ids: dict[str, list[np.ndarray]] = {}
        codes: dict[str, list[bytes]] = {}
        frame_lists: dict[str, list[bytes]] = {}  # IndexKind.FRAMES tools (vPDQ): one packed frame list per row
        spans: dict[str, list[tuple[int, int]]] = {}
        offsets: dict[str, int] = {}
        loaded: list[LoadedVersion] = []
        gaps: list[LoadedVersion] = []
        allow_ids: dict[str, list[int]] = {}
        allow_codes: dict[str, list[bytes]] = {}
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            generation = await self._lists.generation(conn)
            versions = await self._lists.active_versions(conn)
            activations, changes_at = await self._decide_tools(conn)
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
                start = offsets.get(version.tool, 0)
                count = 0
                async for chunk in self._lists.stream_entries(conn, version):
                    ids.setdefault(version.tool, []).append(np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk)))
                    if tools.get(version.tool).index_kind() is IndexKind.FRAMES:
                        frame_lists.setdefault(version.tool, []).extend(r[1] for r in chunk)
                    else:
                        codes.setdefault(version.tool, []).append(b"".join(r[1] for r in chunk))
                    count += len(chunk)
                spans.setdefault(version.tool, []).append((start, len(loaded)))
                offsets[version.tool] = start + count
                loaded.append(
                    LoadedVersion(
                        hashset=version.name,
                        version=version.version,
                        tool=version.tool,
                        entries=count,
                        status=version.status,
                        threshold=version.threshold,
                    )
                )
            for allow_id, tool_name, value in await self._lists.allowed_hashes(conn):
                if (
                    tool_name in tools.names()
                    and activations[tool_name].active
                    and tools.get(tool_name).index_kind() is not IndexKind.FRAMES
                ):
                    allow_ids.setdefault(tool_name, []).append(allow_id)
                    allow_codes.setdefault(tool_name, []).append(value)
            self._metrics.quarantined_entries.set(await self._lists.count_quarantined(conn))
        entries = {
            name: ToolEntries(
                ids=np.concatenate(ids[name]),
                codes=np.frombuffer(b"".join(codes.get(name, [])), dtype=np.uint8).reshape(-1, tools.get(name).width),
                spans=tuple(spans[name]),
                values=tuple(frame_lists.get(name, ())),
            )
            for name in ids
        }
        allow = {
            name: ToolEntries(
                ids=np.array(allow_ids[name], dtype=np.int64),
                codes=np.frombuffer(b"".join(allow_codes[name]), dtype=np.uint8).reshape(-1, tools.get(name).width),
            )
            for name in allow_ids
        }
        active = [t for t in tools if activations[t.name].active]
        snapshot = await asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(
                build_snapshot,
                active,
                loaded,
                entries,
                activations,
                allow=allow,
                coverage_gaps=gaps,
                video_params=self._video_params,
            ),
        )
        snapshot = dataclasses.replace(snapshot, policy_changes_at=changes_at)
        return fingerprint(generation, activations, changes_at), snapshot
