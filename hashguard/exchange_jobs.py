"""The service's side of the hash-sharing sources: the fetch schedule, the feedback outbox, freshness metrics.

Every replica with HASHGUARD_EXCHANGES=on runs the loop; the advisory lock per source makes one of
them fetch it. A fetched page is a committed list version, and the list trigger's NOTIFY is what
every replica's reloader already listens for: nothing more is needed for new entries to be matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from detector.tools.registry import discover as discover_tools
from hashsets.exchanges import store
from hashsets.exchanges.fetcher import Fetcher, FetchOutcome, hash_parser
from kernel.appkeys import METRICS, POOL, SETTINGS
from kernel.metrics import Metrics

FRESHNESS: web.AppKey[list[dict[str, Any]]] = web.AppKey("exchange_freshness", list)


def _observe(metrics: Metrics, outcome: FetchOutcome) -> None:
    if outcome.error is not None:
        metrics.exchange_errors.labels(source=outcome.source, kind=outcome.error.kind).inc()


async def refresh(app: web.Application) -> None:
    """Freshness of every source from the database (any replica may have fetched it), for /metrics and /readyz."""
    metrics = app[METRICS]
    async with app[POOL].acquire() as conn:
        found = await store.sources(conn)
    now = time.time()
    rows: list[dict[str, Any]] = []
    for s in found:
        metrics.exchange_last_page.labels(source=s.name).set(s.last_page_at.timestamp() if s.last_page_at else 0)
        metrics.exchange_last_success.labels(source=s.name).set(s.last_success_at.timestamp() if s.last_success_at else 0)
        metrics.exchange_source_time.labels(source=s.name).set(s.source_time.timestamp() if s.source_time else 0)
        metrics.exchange_interval.labels(source=s.name).set(s.interval_s)
        metrics.exchange_entries_fetched.labels(source=s.name).set(s.entries_fetched)
        metrics.exchange_quarantined.labels(source=s.name).set(s.quarantined)
        rows.append(
            {
                "name": s.name,
                "kind": s.kind,
                "paused": s.paused,
                "last_page_at": s.last_page_at.isoformat() if s.last_page_at else None,
                "lag_s": round(now - s.source_time.timestamp(), 1) if s.source_time else None,
                "entries_fetched": s.entries_fetched,
                "quarantined": s.quarantined,
                "last_error_kind": s.last_error_kind,
            }
        )
    app[FRESHNESS][:] = rows


async def exchanges_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    metrics = app[METRICS]
    session = aiohttp.ClientSession()
    fetcher = Fetcher(
        pool=app[POOL],
        session=session,
        # Every installed tool's parser, enabled or not: a disabled tool's entries are kept (a coverage gap).
        parse=hash_parser({name: tool.parse_hex for name, tool in discover_tools().items()}),
        batch_entries=settings.exchanges_batch_entries,
        observe=lambda outcome: _observe(metrics, outcome),
    )

    async def deliver_and_refresh() -> None:
        await fetcher.deliver_feedback(
            lambda source, vote, ok: metrics.exchange_feedback.labels(
                source=source, vote=vote, outcome="sent" if ok else "retry"
            ).inc()
        )
        await refresh(app)

    task = asyncio.create_task(fetcher.run(settings.exchanges_poll_s, deliver_and_refresh), name="hashguard-exchanges")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await session.close()
