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
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from detector import evidence
from detector.errors import NotReady
from detector.match import Match
from detector.matcher import Hit
from detector.scan import Resolution, ScanContext
from detector.tools.registry import ToolRegistry
from kernel.metrics import Metrics

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

log = logging.getLogger(__name__)


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

        A released entry stays released: a reviewer has looked at it."""
        ...

    async def quarantined_among(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> Collection[int]: ...

    async def count_quarantined(self, conn: asyncpg.Connection) -> int: ...


class ListCatalogue(Quarantine, Protocol):
    """What the detector needs of the hash lists to resolve a hit (hashsets implements it)."""

    async def describe(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> Mapping[int, ListEntryRef]: ...


class OpenedTicket(Protocol):
    @property
    def ticket_id(self) -> uuid.UUID: ...


TicketT = TypeVar("TicketT", bound=OpenedTicket)


class TicketDesk(Protocol[TicketT]):
    """The takedown side of a match: open (or join) the content's ticket for the answered matches."""

    async def open_for_matches(
        self, conn: asyncpg.Connection, *, scan_id: uuid.UUID, context: ScanContext, matches: Sequence[Match]
    ) -> TicketT:
        """Runs in the evidence's transaction: the ticket and the evidence commit or roll back together."""
        ...

    def committed(self, ticket: TicketT) -> None:
        """After the commit: count it, wake whoever delivers its actions."""
        ...


async def flood_check(
    conn: asyncpg.Connection, lists: Quarantine, entry_rows: Sequence[int], *, window_s: float, limit: int
) -> tuple[set[int], int]:
    """Quarantine entries that matched more than ``limit`` times within ``window_s``.

    Returns the entries among ``entry_rows`` that are (now or already) quarantined and how many
    entries were newly quarantined. Runs in the caller's transaction, before this scan's matches
    are recorded (so this match is the ``+ 1``).
    """
    if not entry_rows:
        return set(), 0
    counts = await evidence.recent_match_counts(conn, entry_rows, window_s)
    over = {row: n + 1 for row, n in counts.items() if n + 1 > limit}
    newly = await lists.quarantine(conn, over) if over else 0
    return set(await lists.quarantined_among(conn, entry_rows)), newly


class Resolver(Generic[TicketT]):
    """Turn index hits into matches, keep the evidence and open (or join) the content's ticket, in one transaction.

    Shadow-list hits are recorded (flagged) and counted but not returned, so the verdict stays
    ``no_match`` for them and nothing acts on them. Entries matching far more often than the flood
    limit are quarantined: still answered as a match (the platform holds the upload), flagged so
    the takedown side sends them to review instead of acting automatically.
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
    ) -> None:
        self._pool = pool
        self._lists = lists
        self._tickets = tickets
        self._tools = tools
        self._metrics = metrics
        self._flood_max = flood_max_matches
        self._flood_window_s = flood_window_s

    async def __call__(self, scan_id: uuid.UUID, context: ScanContext, hits: Sequence[Hit]) -> Resolution:
        async with self._pool.acquire() as conn, conn.transaction():
            described = await self._lists.describe(conn, sorted({h.row_id for h in hits}))
            quarantined: set[int] = set()
            if self._flood_max > 0:
                live = sorted({h.row_id for h in hits if not h.shadow})
                quarantined, newly = await flood_check(
                    conn, self._lists, live, window_s=self._flood_window_s, limit=self._flood_max
                )
                if newly:
                    log.warning(
                        "%d list entries matched more than %d times in %.0f s: quarantined, their matches go to review",
                        newly,
                        self._flood_max,
                        self._flood_window_s,
                    )
                    self._metrics.quarantined_entries.set(await self._lists.count_quarantined(conn))
            matches = [self._match(hit, described, quarantined) for hit in hits]
            await evidence.record_matches(conn, scan_id, context, matches)
            answered = [m for m in matches if not m.shadow]
            # Shadow matches are evidence only: no ticket, no action, not in the verdict.
            ticket = (
                await self._tickets.open_for_matches(conn, scan_id=scan_id, context=context, matches=answered)
                if answered
                else None
            )
        for m in matches:
            (self._metrics.shadow_matches if m.shadow else self._metrics.matches).labels(hashset=m.hashset, tool=m.tool).inc()
        if ticket is not None:
            self._tickets.committed(ticket)
        return Resolution(matches=answered, ticket_id=str(ticket.ticket_id) if ticket is not None else None)

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
        )
