"""The probing detector's rules, pure: does one key's run of near-identical queries that match the
same list entry look like reading that entry back?

An attacker holding a near copy of a listed picture recovers the entry's hash by asking about many
small changes of one hash and comparing the answers (issue 11): one flipped bit per call, all 256
flips in one batch, groups of flipped bits, or a walk to the threshold and then one bit per call
with yes/no answers. Ordinary traffic asks about a listed picture too, many times: every re-upload
of a known picture is a fresh re-encoding. What tells them apart, measured on 900 re-encodings
(rescaled 0.5-1.0, JPEG quality 40-95) of drawn pictures before these rules were written
(benchmarks/probing.py prints the same figures for its own run):

* **Weight.** PDQ sets a bit where a DCT coefficient is above the median of all 256, so a hash
  computed from any picture has exactly 128 bits set; every one of the 900 had. Flipping one bit,
  or a group of bits, almost never keeps that: a query with another weight was edited, not
  computed. Rule ``off_weight``: that many distinct such queries for one entry.
* **Spread.** Re-encodings differ from one another only in a picture's weak bits (coefficients
  close to the median): at most 39 positions ever varied across 300 re-encodings of one picture.
  Reading an entry needs changes at every position. Rule ``spread``: the positions in which a
  key's queries for one entry differ from one another reach a quarter of the hash.
* **Boundary.** Re-encodings land near the entry (at most 16 of 256 bits away here); a yes/no
  walker sits at the threshold. Rule ``boundary``: that many distinct queries within
  ``boundary_margin`` of the threshold.

Only distinct queries count (asking the same thing again teaches nothing), per key and entry,
within a window; the rules are fed one query at a time, in the order the key sent them, so a batch
is judged item by item and refused as a whole at the item that tips it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Tools whose hash is a median threshold: a computed hash has exactly half its bits set (measured:
# every PDQ hash of 900 re-encodings had 128 of 256, every pHash 32 of 64; dHash has no such rule).
BALANCED_TOOLS = frozenset({"pdq", "phash"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeRules:
    """The limits; 0 turns a rule off."""

    off_weight: int = 8
    spread_fraction: float = 0.25
    boundary: int = 8
    boundary_margin: int = 2
    # At most this many distinct queries are kept per key and entry (the most recent).
    kept: int = 256


@dataclass(frozen=True, kw_only=True, slots=True)
class Query:
    """One matching query: the key's hash for ``tool`` and how far it is from the entry it matched."""

    tool: str
    entry_row: int
    value: bytes
    distance: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """Why a key was judged to be probing an entry."""

    rule: str
    tool: str
    entry_row: int
    distinct_queries: int
    detail: str


@dataclass(slots=True)
class _EntryState:
    bits: int
    seen: set[bytes] = field(default_factory=set)
    first: int | None = None
    varying: int = 0  # positions (as an int bit mask) where the distinct queries are not all equal
    off_weight: int = 0
    near_boundary: int = 0


class ProbeTracker:
    """The queries one key sent per (tool, entry) in the window, judged as each new one arrives."""

    def __init__(self, rules: ProbeRules, thresholds: dict[str, int]) -> None:
        self._rules = rules
        self._thresholds = thresholds
        self._entries: dict[tuple[str, int], _EntryState] = {}

    def load(self, previous: Iterable[Query]) -> None:
        """What the key sent earlier in the window, oldest first; judged already, so nothing is returned."""
        for query in previous:
            self._add(query)

    def feed(self, query: Query) -> Finding | None:
        """Add one new query; the finding if it tips a rule for its entry, else None."""
        state = self._add(query)
        if state is None:
            return None
        rules, n = self._rules, len(state.seen)
        if rules.off_weight and state.off_weight >= rules.off_weight:
            return Finding(
                rule="off_weight",
                tool=query.tool,
                entry_row=query.entry_row,
                distinct_queries=n,
                detail=f"{state.off_weight} distinct queries for one entry with a weight no {query.tool} hash of a picture has",
            )
        spread_limit = int(state.bits * rules.spread_fraction)
        varying = state.varying.bit_count()
        if rules.spread_fraction and varying >= spread_limit:
            return Finding(
                rule="spread",
                tool=query.tool,
                entry_row=query.entry_row,
                distinct_queries=n,
                detail=f"{n} distinct queries for one entry differing from each other in {varying} of {state.bits} bits",
            )
        if rules.boundary and state.near_boundary >= rules.boundary:
            return Finding(
                rule="boundary",
                tool=query.tool,
                entry_row=query.entry_row,
                distinct_queries=n,
                detail=f"{state.near_boundary} distinct queries for one entry at its distance threshold",
            )
        return None

    def _add(self, query: Query) -> _EntryState | None:
        """Record the query; None when it was seen before (it changes nothing) or its tool is exact."""
        threshold = self._thresholds.get(query.tool, 0)
        if threshold <= 0:
            return None  # an exact tool answers only "this very file": nothing to walk
        key = (query.tool, query.entry_row)
        state = self._entries.get(key)
        if state is None:
            state = self._entries[key] = _EntryState(bits=len(query.value) * 8)
        if query.value in state.seen or len(state.seen) >= self._rules.kept:
            return None if query.value in state.seen else state
        state.seen.add(query.value)
        value = int.from_bytes(query.value, "big")
        if state.first is None:
            state.first = value
        state.varying |= value ^ state.first
        if query.tool in BALANCED_TOOLS and value.bit_count() != state.bits // 2:
            state.off_weight += 1
        if query.distance >= threshold - self._rules.boundary_margin:
            state.near_boundary += 1
        return state
