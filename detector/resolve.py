"""From index hits to matches, their evidence and the content's ticket: the use case behind a match.

``Resolver`` is what ``ScanService`` calls when a scan or lookup has hits. In one transaction it
asks the lists what the matched entries are (``ListCatalogue``, implemented by hashsets), checks
for floods, records the evidence (``detector.evidence``) and hands the answered matches to the
takedown side (``TicketDesk``, implemented in the composition root over takedown). Both are
Protocols so the detector imports neither context; the root passes the implementations in.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from detector import evidence, probing_store
from detector.errors import NotReady
from detector.match import Match
from detector.matcher import Hit
from detector.probing import Finding, ProbeRules, ProbeTracker, Query
from detector.scan import Pending, Resolution, ScanContext
from detector.tools.registry import ToolRegistry
from kernel import keycontrols, keystore
from kernel.errors import KeySuspended
from kernel.metrics import Metrics

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

log = logging.getLogger(__name__)

# Who suspensions by the probing detector are attributed to in the audit log.
PROBING_ACTOR = "probing-detector"


class ListEntryRef(Protocol):
    """What a match reports of a stored list entry: never its hash."""

    @property
    def hashset(self) -> str: ...
    @property
    def hashset_version(self) -> int: ...  # the version that added the entry
    @property
    def entry_id(self) -> str: ...


class Quarantine(Protocol):
    """The lists' flood quarantine: entries matching far more often than usual go to review."""

    async def quarantine(self, conn: asyncpg.Connection, seen: Mapping[int, int]) -> int:
        """Quarantine these entry rows (with the matches seen in the window); returns how many are new.

        An entry released earlier is quarantined again: only matches after its release were counted."""
        ...

    async def quarantined_among(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> Collection[int]: ...

    async def released_at(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> Mapping[int, datetime]:
        """When each of these entries was last released from quarantine (absent: never)."""
        ...

    async def count_quarantined(self, conn: asyncpg.Connection) -> int: ...


class ListCatalogue(Quarantine, Protocol):
    """What the detector needs of the hash lists to resolve a hit (hashsets implements it)."""

    async def describe(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> Mapping[int, ListEntryRef]: ...


class OpenedTicket(Protocol):
    @property
    def ticket_id(self) -> uuid.UUID: ...


TicketT = TypeVar("TicketT", bound=OpenedTicket)


@dataclass(frozen=True, kw_only=True, slots=True)
class Answered:
    """One item's answered matches (shadow ones left out), for which the content's ticket is opened or joined."""

    scan_id: uuid.UUID
    context: ScanContext
    matches: Sequence[Match]
    # The upload's own hashes (tool -> value), which a hotline report names and an evidence file is
    # checked against; never a list entry's.
    hashes: Mapping[str, bytes] | None = None


class TicketDesk(Protocol[TicketT]):
    """The takedown side of a match: open (or join) each content's ticket for the answered matches."""

    async def open_for_many(self, conn: asyncpg.Connection, items: Sequence[Answered]) -> list[TicketT]:
        """One ticket per item, in order, for a whole call (a scan, or a batch of up to 1,000) at once.

        Runs in the evidence's transaction: the tickets and the evidence commit or roll back together.
        An implementation keeps this to a few statements whatever the batch holds (the batch's cost
        should be its matching, not its database round trips)."""
        ...

    def committed(self, ticket: TicketT) -> None:
        """After the commit: count it, wake whoever delivers its actions."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class FloodRule:
    """An entry floods when more than ``limit`` distinct contents matched it within ``window_s``,
    counting at most ``cap`` from any one source (the caller's tenant). With ``min_sources`` 2 (the
    default) and two or more tenants holding platform keys, no single tenant, let alone a key, can
    reach the limit alone: one key sending 101 lookups cannot switch automated action off for
    everyone (issue 11, finding 5)."""

    limit: int
    window_s: float
    min_sources: int = 2

    def required_sources(self, tenants: int) -> int:
        """The sources a flood needs when ``tenants`` tenants hold platform keys: never more than exist.

        An install serving one platform (one tenant) keeps its flood quarantine: its own keys are the
        only ones that can reach its entries, and what a flood there switches off is that platform's
        own automated action. With several tenants, one of them alone never reaches the limit."""
        return max(1, min(self.min_sources, tenants))

    def cap(self, tenants: int) -> int:
        """At most this many distinct contents count from any one source."""
        return -(-(self.limit + 1) // self.required_sources(tenants))


async def flood_check(
    conn: asyncpg.Connection,
    lists: Quarantine,
    entry_rows: Sequence[int],
    rule: FloodRule,
    adding: Sequence[evidence.Seen] = (),
) -> tuple[set[int], int]:
    """Quarantine entries that flood under ``rule``, counting the matches being added (``adding``) too.

    Returns the entries among ``entry_rows`` that are (now or already) quarantined and how many were
    newly quarantined. Only matches after an entry's last release count, so a released entry can
    be quarantined again by a later flood. Runs in the caller's transaction, before ``adding`` is recorded.
    """
    if not entry_rows:
        return set(), 0
    released = await lists.released_at(conn, entry_rows)
    tenants = await keystore.count_platform_tenants(conn)
    counts = await evidence.recent_match_counts(
        conn, entry_rows, rule.window_s, released=released, adding=adding, cap=rule.cap(tenants)
    )
    over = {row: n for row, n in counts.items() if n > rule.limit}
    newly = await lists.quarantine(conn, over) if over else 0
    return set(await lists.quarantined_among(conn, entry_rows)), newly


class ProbeGuard:
    """The probing detector over one call's queries: the rules (``detector.probing``) over what the
    key sent in the window (``detector.probing_store``), in the resolving transaction."""

    def __init__(self, *, rules: ProbeRules, window_s: float, thresholds: Mapping[str, int]) -> None:
        self._rules = rules
        self._window_s = window_s
        self._thresholds = dict(thresholds)

    async def judge(self, conn: asyncpg.Connection, key_id: int, queries: Sequence[Query]) -> Finding | bool:
        """The first finding among ``queries`` (in the order sent), False for none, True when the key was
        suspended already (by another replica, since this one cached its controls). Remembers the queries."""
        if await probing_store.lock_key(conn, key_id):
            return True
        pairs = sorted({(q.tool, q.entry_row) for q in queries})
        tracker = ProbeTracker(self._rules, self._thresholds)
        tracker.load(await probing_store.previous(conn, key_id, pairs, self._window_s))
        finding = None
        for query in queries:
            finding = tracker.feed(query)
            if finding is not None:
                break
        await probing_store.remember(conn, key_id, queries)
        return finding if finding is not None else False


class Resolver(Generic[TicketT]):
    """Turn index hits into matches, keep the evidence and open (or join) each content's ticket: all the
    items of one call (a scan, or a lookup batch of up to 1,000) in one transaction.

    Shadow-list hits are recorded (flagged) and counted but not returned, so the verdict stays
    ``no_match`` for them and nothing acts on them. Entries that flood (``FloodRule``) are
    quarantined: still answered as a match (the platform holds the upload), flagged so the takedown
    side sends them to review instead of acting automatically. First of all the probing detector
    (``ProbeGuard``) judges the call's queries: a key that looks like it is reading an entry back is
    suspended and the whole call refused (``403 key_suspended``), with nothing answered.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        lists: ListCatalogue,
        tickets: TicketDesk[TicketT],
        tools: ToolRegistry,
        metrics: Metrics,
        flood_max_matches: int,
        flood_window_s: float,
        flood_min_sources: int = 2,
        probing: ProbeGuard | None = None,
        on_suspended: Callable[[int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._lists = lists
        self._tickets = tickets
        self._tools = tools
        self._metrics = metrics
        self._flood = (
            FloodRule(limit=flood_max_matches, window_s=flood_window_s, min_sources=flood_min_sources)
            if flood_max_matches > 0
            else None
        )
        self._probing = probing
        self._on_suspended = on_suspended

    async def __call__(self, pending: Sequence[Pending]) -> list[Resolution]:
        if not pending:
            return []
        key_ids = {p.context.api_key_id for p in pending}
        if len(key_ids) != 1:
            raise ValueError("one call's items come from one key")
        [key_id] = key_ids
        suspended: Finding | None = None
        already = False
        async with self._pool.acquire() as conn, conn.transaction():
            if self._probing is not None and key_id is not None:
                queries = [
                    # A variant's hit is judged on the variant's hash, the one its distance is to.
                    Query(tool=h.tool, entry_row=h.row_id, value=h.query or p.hashes[h.tool], distance=h.distance)
                    for p in pending
                    for h in p.hits
                    if not h.shadow and h.tool in p.hashes
                ]
                judged = await self._probing.judge(conn, key_id, queries)
                already = judged is True
                if isinstance(judged, Finding):
                    suspended = judged
                    await self._suspend(conn, key_id, suspended)
            if suspended is None and not already:
                answered = await self._resolve(conn, pending)
        if suspended is not None or already:
            if self._on_suspended is not None and key_id is not None:
                self._on_suspended(key_id)
            raise KeySuspended()
        for _, matches, ticket in answered:
            for m in matches:
                (self._metrics.shadow_matches if m.shadow else self._metrics.matches).labels(hashset=m.hashset, tool=m.tool).inc()
            if ticket is not None:
                self._tickets.committed(ticket)
        return [
            Resolution(
                matches=[m for m in matches if not m.shadow], ticket_id=str(ticket.ticket_id) if ticket is not None else None
            )
            for _, matches, ticket in answered
        ]

    async def _suspend(self, conn: asyncpg.Connection, key_id: int, finding: Finding) -> None:
        entry = (await self._lists.describe(conn, [finding.entry_row])).get(finding.entry_row)
        details = {
            "rule": finding.rule,
            "tool": finding.tool,
            "hashset": entry.hashset if entry is not None else None,
            "entry_id": entry.entry_id if entry is not None else None,
            "distinct_queries": finding.distinct_queries,
        }
        if await keycontrols.suspend(conn, key_id, actor=PROBING_ACTOR, reason=finding.detail, details=details):
            self._metrics.key_suspensions.labels(rule=finding.rule).inc()
            # Entry ids are the issuer's names, never hash values: safe in a log line.
            log.warning(
                "probing detector: key %d suspended (%s: %s; %s %s of %s); release with hashguard keys release",
                key_id,
                finding.rule,
                finding.detail,
                finding.tool,
                details["entry_id"],
                details["hashset"],
            )

    async def _resolve(
        self, conn: asyncpg.Connection, pending: Sequence[Pending]
    ) -> list[tuple[Pending, list[Match], TicketT | None]]:
        described = await self._lists.describe(conn, sorted({h.row_id for p in pending for h in p.hits}))
        quarantined: set[int] = set()
        if self._flood is not None:
            live = sorted({h.row_id for p in pending for h in p.hits if not h.shadow})
            adding = [
                evidence.Seen(entry_row=h.row_id, source=p.context.tenant_id, content_id=p.context.content_id)
                for p in pending
                for h in p.hits
                if not h.shadow
            ]
            quarantined, newly = await flood_check(conn, self._lists, live, self._flood, adding)
            if newly:
                log.warning(
                    "%d list entries matched more than %d distinct contents from %d or more sources in %.0f s:"
                    " quarantined, their matches go to review",
                    newly,
                    self._flood.limit,
                    self._flood.min_sources,
                    self._flood.window_s,
                )
                self._metrics.quarantined_entries.set(await self._lists.count_quarantined(conn))
        items = [(p, [self._match(hit, described, quarantined) for hit in p.hits]) for p in pending]
        await evidence.record_many(conn, [(p.scan_id, p.context, matches) for p, matches in items])
        # Shadow matches are evidence only: no ticket, no action, not in the verdict.
        wanted = [
            Answered(
                scan_id=p.scan_id,
                context=p.context,
                matches=answered,
                hashes={**p.hashes, **(p.context.file_digests or {})},
            )
            for p, matches in items
            if (answered := [m for m in matches if not m.shadow])
        ]
        opened = iter(await self._tickets.open_for_many(conn, wanted)) if wanted else iter(())
        return [(p, matches, next(opened) if any(not m.shadow for m in matches) else None) for p, matches in items]

    def _match(self, hit: Hit, described: Mapping[int, ListEntryRef], quarantined: Collection[int]) -> Match:
        entry = described.get(hit.row_id)
        if entry is None:
            # Entries are never deleted, so this is an inconsistency; a verdict without this hit
            # could be a wrong no_match, so the scan fails and the platform holds the upload.
            log.error("index hit on row %d of %s has no stored entry; answering not_ready", hit.row_id, hit.tool)
            raise NotReady("a matched list entry could not be resolved; hold the upload and retry")
        act = hit.activation
        return Match(
            entry_row=hit.row_id,
            # The version the snapshot held when it matched; the row's own is the one that added it.
            hashset=hit.hashset or entry.hashset,
            hashset_version=hit.hashset_version or entry.hashset_version,
            entry_id=entry.entry_id,
            tool=hit.tool,
            tool_version=act.version if act is not None else self._tools.get(hit.tool).version,
            distance=hit.distance,
            shadow=hit.shadow,
            quarantined=hit.row_id in quarantined,
            approval_id=act.approval_id if act is not None else None,
            local_allowance_id=act.allowance_id if act is not None else None,
            approval_reason=act.reason.value if act is not None else None,
            transform=hit.transform,
            query_share=hit.query_share,
            index_share=hit.index_share,
            matched_frames=hit.matched_frames,
        )
