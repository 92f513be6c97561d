"""The in-memory match snapshot: one index per tool over every active list, swapped whole.

A ``MatchSnapshot`` is immutable. Reloads build a new one beside the old and replace a single
reference, so a scan always sees one consistent set of list versions — never a half-built
index, never a mix of two versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from detector.exactset import ExactHashSet
from detector.index import HammingIndex
from detector.tools.base import HashTool, IndexKind
from detector.tools.policy import Activation
from detector.variants import ORIGINAL, is_dihedral
from detector.video_frames import MatchParams
from detector.video_match import VideoIndex, passes


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedVersion:
    """One list version held in the snapshot (reported by /readyz and /metrics; no hash values)."""

    hashset: str
    version: int
    tool: str
    entries: int
    status: str = "active"  # or "shadow": matched, recorded and counted, never answered as a match
    threshold: int | None = None  # the list's own distance threshold; None: the tool's


@dataclass(frozen=True, kw_only=True, slots=True)
class Hit:
    """A raw index hit: the stored entry's row id and its distance. Resolved to list details later."""

    tool: str
    row_id: int
    distance: int
    hashset: str = ""
    hashset_version: int = 0  # the version held by the snapshot that matched (not the one that added the row)
    shadow: bool = False
    # The policy decision the tool was active under when this snapshot was built (provenance).
    activation: Activation | None = None
    # The query variant of the upload that found it (detector.variants): "original", "mirror_h", ...
    transform: str = ORIGINAL
    # That variant's hash (None for the original): what the probing detector must judge, since the
    # distance is to it. Never leaves the process.
    query: bytes | None = None
    # A frame-list (vPDQ) hit: the shares of matching frames, in percent, and the query frames that matched.
    query_share: float | None = None
    index_share: float | None = None
    matched_frames: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolEntries:
    """Everything one tool matches against: row ids and hash codes, one row per entry."""

    ids: np.ndarray  # int64, (n,)
    codes: np.ndarray  # uint8, (n, width)
    # (first row, index into the snapshot's versions) of each list's rows, in row order.
    spans: tuple[tuple[int, int], ...] = ()
    # A frame-list tool's entries (IndexKind.FRAMES): each row's packed frames; ``codes`` is then empty.
    values: tuple[bytes, ...] = ()


_MAX_CHUNKS = 8  # row-table chunks before the delta chunks are folded into one


@dataclass(frozen=True, kw_only=True, slots=True)
class _Rows:
    """A Hamming or exact tool's row table: the index holds database row ids; this maps each to
    the list it belongs to (a slot in ``versions``).

    Kept as sorted chunks — the base's, then one per applied delta — so a delta appends a small
    chunk instead of copying a 10M-entry table, and a threshold or status change only replaces
    ``versions``. Rows retracted from the index may stay here: the index never returns them.
    """

    chunks: tuple[tuple[np.ndarray, np.ndarray], ...]  # (sorted int64 row ids, int32 slot of each)
    versions: tuple[LoadedVersion | None, ...]

    @staticmethod
    def chunk(ids: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(ids, kind="stable")
        return np.ascontiguousarray(ids[order], dtype=np.int64), np.ascontiguousarray(slots[order], dtype=np.int32)

    def slot(self, row_id: int) -> int:
        for ids, slots in reversed(self.chunks):  # the newest first: a delta's rows are there
            at = int(np.searchsorted(ids, row_id))
            if at < ids.shape[0] and int(ids[at]) == row_id:
                return int(slots[at])
        return -1

    def resolve(self, row_id: int) -> tuple[int, LoadedVersion | None]:
        slot = self.slot(row_id)
        return row_id, self.versions[slot] if slot >= 0 else None

    def with_rows(self, ids: np.ndarray, slots: np.ndarray) -> _Rows:
        if ids.shape[0] == 0:
            return self
        chunks = (*self.chunks, _Rows.chunk(ids, slots))
        if len(chunks) > _MAX_CHUNKS:
            # Many small deltas: fold every delta chunk into one (small); the base's chunk is kept as is.
            deltas = chunks[1:]
            merged = _Rows.chunk(np.concatenate([c[0] for c in deltas]), np.concatenate([c[1] for c in deltas]))
            chunks = (chunks[0], merged)
        return _Rows(chunks=chunks, versions=self.versions)

    def merged(self) -> _Rows:
        """One chunk again (after a compaction: the cost of re-sorting every row id is paid there)."""
        if len(self.chunks) <= 1:
            return self
        ids = np.concatenate([c[0] for c in self.chunks])
        slots = np.concatenate([c[1] for c in self.chunks])
        return _Rows(chunks=(_Rows.chunk(ids, slots),), versions=self.versions)


@dataclass(frozen=True, kw_only=True, slots=True)
class _PositionRows:
    """A frame-list tool's row table: its index holds positions 0..n-1; this maps them to database
    row ids and, by contiguous spans, to the list version they belong to (rebuilt with the tool)."""

    ids: np.ndarray
    starts: np.ndarray
    versions: tuple[LoadedVersion | None, ...]

    def resolve(self, position: int) -> tuple[int, LoadedVersion | None]:
        span = int(np.searchsorted(self.starts, position, side="right")) - 1
        return int(self.ids[position]), self.versions[span] if span >= 0 else None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Allow:
    """Allow-listed hashes of one tool and, per allow entry, the list rows it collides with."""

    index: HammingIndex | ExactHashSet
    collisions: Mapping[int, frozenset[int]]


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchSnapshot:
    versions: tuple[LoadedVersion, ...]
    hamming: Mapping[str, HammingIndex] = field(default_factory=dict)
    exact: Mapping[str, ExactHashSet] = field(default_factory=dict)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    rows: Mapping[str, _Rows | _PositionRows] = field(default_factory=dict)
    allow: Mapping[str, _Allow] = field(default_factory=dict)
    coverage_gaps: tuple[LoadedVersion, ...] = ()  # lists held in a hash type no enabled tool computes
    # The policy's decision for every installed tool; only active tools have an index here.
    activations: Mapping[str, Activation] = field(default_factory=dict)
    # When an approval next starts or ends: the decisions above may change then with no write.
    policy_changes_at: datetime | None = None
    # Lists whose entries the dihedral query variants must not match (their issuer added them already).
    dihedral_off: frozenset[str] = frozenset()
    # Frame-list tools (vPDQ): every listed video's frames in one index, and the tool's matching values.
    videos: Mapping[str, VideoIndex] = field(default_factory=dict)
    video_params: Mapping[str, MatchParams] = field(default_factory=dict)

    def active_tools(self) -> list[str]:
        """Tools the policy lets scan in this snapshot (with or without lists loaded)."""
        return [name for name, a in self.activations.items() if a.active]

    @property
    def tools(self) -> frozenset[str]:
        """Tools with at least one entry loaded; only these need to hash an upload."""
        return frozenset(name for name, count in self.entries_by_tool().items() if count)

    def entries_by_tool(self) -> dict[str, int]:
        counts = {name: len(index) for name, index in self.hamming.items()}
        counts.update({name: len(exact) for name, exact in self.exact.items()})
        counts.update({name: len(videos) for name, videos in self.videos.items()})
        return counts

    def _video_hits(self, tool: str, value: bytes, default: int, act: Activation | None) -> list[Hit]:
        """vPDQ: listed videos whose shares of matching frames reach the tool's thresholds, per list distance."""
        videos = self.videos[tool]
        params = self.video_params.get(tool, MatchParams(distance=default))
        default = params.distance
        table = self.rows.get(tool)
        distances = {default}
        if table is not None:
            distances |= {v.threshold for v in table.versions if v is not None and v.threshold is not None}
        hits: list[Hit] = []
        for distance in sorted(distances):
            for found in videos.search(value, distance):
                if not passes(found, params):
                    continue
                row_id, version = table.resolve(found.video) if table is not None else (found.video, None)
                limit = default if version is None or version.threshold is None else version.threshold
                if limit != distance:
                    continue  # this list is searched at its own distance
                hits.append(
                    Hit(
                        tool=tool,
                        row_id=row_id,
                        distance=found.distance,
                        hashset=version.hashset if version else "",
                        hashset_version=version.version if version else 0,
                        shadow=version is not None and version.status == "shadow",
                        activation=act,
                        query_share=round(found.query_share, 3),
                        index_share=round(found.index_share, 3),
                        matched_frames=found.matched_frames,
                    )
                )
        return hits

    def _search_limit(self, tool: str, default: int) -> int:
        table = self.rows.get(tool)
        overrides = [v.threshold for v in table.versions if v is not None and v.threshold is not None] if table else []
        return max([default, *overrides])

    def _raw(self, tool: str, value: bytes, limit: int) -> list[tuple[int, int]]:
        if (index := self.hamming.get(tool)) is not None:
            return [(int(i), int(d)) for i, d in index.search(np.frombuffer(value, dtype=np.uint8), limit)]
        if (exact := self.exact.get(tool)) is not None:
            return [(int(i), 0) for i in exact.lookup(value)]
        return []

    def _allowed(self, tool: str, value: bytes, threshold: int) -> dict[int, int]:
        """Rows an allow-listed hash near this upload collides with, and the upload's distance to the
        nearest such allow-listed hash."""
        allow = self.allow.get(tool)
        if allow is None:
            return {}
        if isinstance(allow.index, HammingIndex):
            near = [(int(i), int(d)) for i, d in allow.index.search(np.frombuffer(value, dtype=np.uint8), threshold)]
        else:
            near = [(int(i), 0) for i in allow.index.lookup(value)]
        blocked: dict[int, int] = {}
        for allow_id, distance in near:
            for position in allow.collisions.get(allow_id, frozenset()):
                blocked[position] = min(distance, blocked.get(position, distance))
        return blocked

    def match(self, hashes: Mapping[str, bytes], thresholds: Mapping[str, int]) -> list[Hit]:
        """Every stored entry within its list's threshold of the given hashes, nearest first.

        The index is searched once per tool at the widest threshold any list asks for; each hit
        is then held to its own list's threshold (the tool's unless the list overrides it).
        A row an allow-listed hash collides with is dropped when the upload is at least as near to
        that benign hash as to the row's entry.
        """
        hits: list[Hit] = []
        for tool, value in hashes.items():
            act = self.activations.get(tool)
            default = thresholds[tool]
            if tool in self.videos:
                hits.extend(self._video_hits(tool, value, default, act))
                continue
            raw = self._raw(tool, value, self._search_limit(tool, default))
            if not raw:
                continue
            blocked = self._allowed(tool, value, default)
            table = self.rows.get(tool)
            for position, distance in raw:
                benign = blocked.get(position)
                # An allow-listed hash hides an entry only from uploads at least as near to the benign
                # picture as to the entry: a copy of the listed picture itself (nearer to the entry)
                # must still match, whatever benign hash lies near it.
                if benign is not None and benign <= distance:
                    continue
                if table is None:  # a snapshot built without row tables
                    hits.append(Hit(tool=tool, row_id=position, distance=distance, activation=act))
                    continue
                row_id, version = table.resolve(position)
                limit = default if version is None or version.threshold is None else version.threshold
                if distance > limit:
                    continue
                hits.append(
                    Hit(
                        tool=tool,
                        row_id=row_id,
                        distance=distance,
                        hashset=version.hashset if version else "",
                        hashset_version=version.version if version else 0,
                        shadow=version is not None and version.status == "shadow",
                        activation=act,
                    )
                )
        hits.sort(key=lambda h: (h.distance, h.tool, h.row_id))
        return hits

    def match_variants(
        self,
        hashes: Mapping[str, bytes],
        variants: Mapping[str, Sequence[tuple[str, bytes]]],
        thresholds: Mapping[str, int],
        limits: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[Hit]:
        """``match`` for the original hashes plus every query variant (``detector.variants``), nearest first.

        Each variant is one more search of the tool's index, with the same thresholds and allow-list.
        An entry found by the original is reported once, as ``original``; one found only by variants
        is reported once, under the variant nearest to it (ties: the first asked). Dihedral variants
        skip the lists in ``dihedral_off``. ``limits`` caps a variant's distance below the threshold
        (``HashTool.variant_thresholds``: tool -> transform -> bits), whatever a list's own threshold.
        """
        hits = self.match(hashes, thresholds)
        if not variants:
            return hits
        found = {(h.tool, h.row_id) for h in hits}
        extra: dict[tuple[str, int], Hit] = {}
        for tool, queries in variants.items():
            caps = (limits or {}).get(tool, {})
            for transform, value in queries:
                cap = caps.get(transform)
                # A capped variant searches only as far as its cap (a smaller radius is a faster search),
                # unless a list asks for more; the cap then holds below that list's threshold too.
                for hit in self.match({tool: value}, thresholds if cap is None else {**thresholds, tool: cap}):
                    key = (hit.tool, hit.row_id)
                    if key in found or (is_dihedral(transform) and hit.hashset in self.dihedral_off):
                        continue
                    if cap is not None and hit.distance > cap:
                        continue
                    if key not in extra or hit.distance < extra[key].distance:
                        extra[key] = dataclasses.replace(hit, transform=transform, query=value)
        hits.extend(extra.values())
        hits.sort(key=lambda h: (h.distance, h.tool, h.row_id))
        return hits


def empty_codes(width: int) -> ToolEntries:
    return ToolEntries(ids=np.empty(0, dtype=np.int64), codes=np.empty((0, width), dtype=np.uint8))


def build_snapshot(
    tools: Iterable[HashTool],
    versions: Iterable[LoadedVersion],
    entries: Mapping[str, ToolEntries],
    activations: Mapping[str, Activation] | None = None,
    allow: Mapping[str, ToolEntries] | None = None,
    coverage_gaps: Iterable[LoadedVersion] = (),
    video_params: Mapping[str, MatchParams] | None = None,
) -> MatchSnapshot:
    """Build one index per tool, plus its row table and allow-list. CPU-bound: run it in an executor.

    ``tools`` are the tools to index — with a policy, only the active ones; ``activations``
    records the decision for every installed tool so scans, /readyz and /metrics can say why.

    A Hamming or exact index answers database row ids, so a delta adds and retracts rows by id
    (``detector.snapshots``); the row table maps a row id to its list (12 bytes per entry). A
    frame-list index answers positions, mapped by contiguous spans (lists loaded one after the other).
    """
    loaded = tuple(versions)
    hamming: dict[str, HammingIndex] = {}
    exact: dict[str, ExactHashSet] = {}
    rows: dict[str, _Rows | _PositionRows] = {}
    allowed: dict[str, _Allow] = {}
    videos: dict[str, VideoIndex] = {}
    params = dict(video_params or {})
    for tool in tools:
        data = entries.get(tool.name) or empty_codes(tool.width)
        spans = data.spans or ((0, -1),)
        starts = np.array([start for start, _ in spans], dtype=np.int64)
        held = tuple(loaded[i] if i >= 0 else None for _, i in spans)
        if tool.index_kind() is IndexKind.FRAMES:
            chosen = params.setdefault(tool.name, MatchParams(distance=tool.threshold()))
            videos[tool.name] = VideoIndex.build(data.values, chosen.quality)
            rows[tool.name] = _PositionRows(ids=data.ids, starts=starts, versions=held)
            continue  # no allow-list for frame lists: an allow-listed still frame is an image hash
        index = build_index(tool, data.codes, data.ids)
        if isinstance(index, ExactHashSet):
            exact[tool.name] = index
        else:
            hamming[tool.name] = index
        # The slot of each row: the span it lies in.
        slots = np.searchsorted(starts, np.arange(data.ids.shape[0]), side="right") - 1
        table = rows[tool.name] = _Rows(chunks=(_Rows.chunk(data.ids, slots),), versions=held)
        benign = (allow or {}).get(tool.name)
        if benign is not None and benign.ids.shape[0]:
            allowed[tool.name] = allow_part(tool, index, table, benign)
    return MatchSnapshot(
        versions=loaded,
        hamming=hamming,
        exact=exact,
        rows=rows,
        allow=allowed,
        coverage_gaps=tuple(coverage_gaps),
        activations=dict(activations or {}),
        videos=videos,
        video_params={name: p for name, p in params.items() if name in videos},
    )


def build_index(tool: HashTool, codes: np.ndarray, ids: np.ndarray) -> HammingIndex | ExactHashSet:
    """The index of a Hamming or exact tool over ``codes``, answering database row ``ids``."""
    if tool.index_kind() is IndexKind.EXACT:
        return ExactHashSet.build(codes, ids)
    return HammingIndex.build(codes, ids)


def allow_part(tool: HashTool, index: HammingIndex | ExactHashSet, table: _Rows, benign: ToolEntries) -> _Allow:
    """A tool's allow-list: every allow-listed hash and the listed rows it collides with (small; rebuilt at each change)."""
    default = tool.threshold()
    widest = max([default, *(v.threshold for v in table.versions if v is not None and v.threshold is not None)])
    collisions: dict[int, frozenset[int]] = {}
    for allow_id, code in zip(benign.ids.tolist(), benign.codes, strict=True):
        if isinstance(index, HammingIndex):
            near = []
            for position, distance in index.search(code, widest):
                _, version = table.resolve(int(position))
                limit = default if version is None or version.threshold is None else version.threshold
                if distance <= limit:
                    near.append(int(position))
        else:
            near = [int(p) for p in index.lookup(code.tobytes())]
        collisions[int(allow_id)] = frozenset(near)
    benign_index: HammingIndex | ExactHashSet = (
        HammingIndex.build(benign.codes, benign.ids)
        if isinstance(index, HammingIndex)
        else ExactHashSet.build(benign.codes, benign.ids)
    )
    return _Allow(index=benign_index, collisions=collisions)
