"""The in-memory match snapshot: one index per tool over every active list, swapped whole.

A ``MatchSnapshot`` is immutable. Reloads build a new one beside the old and replace a single
reference, so a scan always sees one consistent set of list versions — never a half-built
index, never a mix of two versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from detector.exactset import ExactHashSet
from detector.index import HammingIndex
from detector.tools.base import HashTool, IndexKind
from detector.tools.policy import Activation


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedVersion:
    """One list version held in the snapshot (reported by /readyz and /metrics; no hash values)."""

    hashset: str
    version: int
    tool: str
    entries: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Hit:
    """A raw index hit: the stored entry's row id and its distance. Resolved to list details later."""

    tool: str
    row_id: int
    distance: int
    # The policy decision the tool was active under when this snapshot was built (provenance).
    activation: Activation | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolEntries:
    """Everything one tool matches against: row ids and hash codes, one row per entry."""

    ids: np.ndarray  # int64, (n,)
    codes: np.ndarray  # uint8, (n, width)


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchSnapshot:
    versions: tuple[LoadedVersion, ...]
    hamming: Mapping[str, HammingIndex] = field(default_factory=dict)
    exact: Mapping[str, ExactHashSet] = field(default_factory=dict)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The policy's decision for every installed tool; only active tools have an index here.
    activations: Mapping[str, Activation] = field(default_factory=dict)
    # When an approval next starts or ends: the decisions above may change then with no write.
    policy_changes_at: datetime | None = None

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
        return counts

    def match(self, hashes: Mapping[str, bytes], thresholds: Mapping[str, int]) -> list[Hit]:
        """Every stored entry within its tool's threshold of the given hashes, nearest first."""
        hits: list[Hit] = []
        for tool, value in hashes.items():
            act = self.activations.get(tool)
            if (index := self.hamming.get(tool)) is not None:
                code = np.frombuffer(value, dtype=np.uint8)
                hits.extend(Hit(tool=tool, row_id=i, distance=d, activation=act) for i, d in index.search(code, thresholds[tool]))
            elif (exact := self.exact.get(tool)) is not None:
                hits.extend(Hit(tool=tool, row_id=i, distance=0, activation=act) for i in exact.lookup(value))
        hits.sort(key=lambda h: (h.distance, h.tool, h.row_id))
        return hits


def empty_codes(width: int) -> ToolEntries:
    return ToolEntries(ids=np.empty(0, dtype=np.int64), codes=np.empty((0, width), dtype=np.uint8))


def build_snapshot(
    tools: Iterable[HashTool],
    versions: Iterable[LoadedVersion],
    entries: Mapping[str, ToolEntries],
    activations: Mapping[str, Activation] | None = None,
) -> MatchSnapshot:
    """Build one index per tool. CPU-bound: callers run it in an executor.

    ``tools`` are the tools to index — with a policy, only the active ones; ``activations``
    records the decision for every installed tool so scans, /readyz and /metrics can say why.
    """
    hamming: dict[str, HammingIndex] = {}
    exact: dict[str, ExactHashSet] = {}
    for tool in tools:
        data = entries.get(tool.name) or empty_codes(tool.width)
        if tool.index_kind() is IndexKind.EXACT:
            exact[tool.name] = ExactHashSet.build(data.codes, data.ids)
        else:
            hamming[tool.name] = HammingIndex.build(data.codes, data.ids)
    return MatchSnapshot(versions=tuple(versions), hamming=hamming, exact=exact, activations=dict(activations or {}))
