"""Background work of the takedown context: delivering platform actions from the outbox, and
purging evidence past its preservation deadline. An I/O edge, like ``http.py`` and the ``*_store`` modules:
this module sends HTTP requests (aiohttp's client) and reads the database (through the ``*_store`` modules).

Delivery is at-least-once by design: a row is marked delivered only after the platform answered
2xx, so a crash between the send and the mark sends the same request (same body, same
``Idempotency-Key``) again. Exactly-once *effect* is the receiver's half of the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp
import asyncpg
from prometheus_client import Counter, Gauge

from takedown import outbox_store, queue_store, retention_store, webhooks
from takedown.workflow import State

log = logging.getLogger(__name__)

# How often the ticket gauges (per state, overdue) are recomputed: a count over the tickets table.
_GAUGE_INTERVAL_S = 15.0


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookConfig:
    """How actions are delivered. ``url``/``secret``: the global webhook (HASHGUARD_WEBHOOK_URL and
    _SECRET), which the default tenant's actions use unless it has its own; None when unset, and
    then only tenants with their own webhook (``hashguard tenants webhook``) are delivered."""

    url: str | None
    secret: str | None
    timeout_s: float = 10.0
    max_attempts: int = 20
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 900.0
    poll_s: float = 1.0
    batch: int = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class JobMetrics:
    deliveries: Counter  # labels: action, result (delivered, retry, failed)
    outbox_pending: Gauge
    outbox_failed: Gauge
    outbox_oldest_pending: Gauge
    tickets: Gauge  # labels: state
    tickets_overdue: Gauge
    evidence_purged: Counter


class Waker:
    """Lets request handlers nudge the delivery loop right after they commit a decision."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._event.clear()


class OutboxDeliverer:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        config: WebhookConfig,
        metrics: JobMetrics | None = None,
        waker: Waker | None = None,
    ) -> None:
        self._pool = pool
        self._session = session
        self._config = config
        self._metrics = metrics
        self._waker = waker or Waker()
        # A claimed row is retried after this long if this process dies before marking it.
        self._lease_s = config.timeout_s * 2 + 5.0

    async def run_once(self) -> int:
        """Claim due rows and send them concurrently; return how many were attempted."""
        async with self._pool.acquire() as conn:
            claimed = await outbox_store.claim_deliveries(
                conn, self._config.batch, self._lease_s, global_webhook=self._config.url is not None and bool(self._config.secret)
            )
        if claimed:
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _deliver(self, delivery: outbox_store.Delivery) -> None:
        payload = delivery.body.encode()
        if delivery.webhook is not None:
            url, secret = delivery.webhook
        else:  # claimed only when the global webhook is configured
            assert self._config.url is not None and self._config.secret is not None
            url, secret = self._config.url, self._config.secret
        headers = webhooks.headers(secret, int(time.time()), payload, str(delivery.idempotency_key), delivery.action.value)
        status: int | None = None
        try:
            async with self._session.post(
                url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=self._config.timeout_s)
            ) as response:
                status = response.status
                await response.read()
            error = None if 200 <= status < 300 else f"the platform answered HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self._config.timeout_s} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        async with self._pool.acquire() as conn:
            if error is None:
                assert status is not None
                await outbox_store.mark_delivered(conn, delivery.id, status)
                result = "delivered"
            else:
                give_up = delivery.attempts >= self._config.max_attempts
                delay = webhooks.backoff_s(delivery.attempts, self._config.backoff_base_s, self._config.backoff_cap_s)
                await outbox_store.mark_attempt_failed(
                    conn, delivery.id, status=status, error=error, retry_in_s=delay, give_up=give_up
                )
                result = "failed" if give_up else "retry"
                log.warning(
                    "webhook %s for ticket %s, attempt %d: %s (%s)",
                    delivery.action,
                    delivery.ticket_id,
                    delivery.attempts,
                    error,
                    "gave up" if give_up else f"retry in {delay:.1f} s",
                )
        if self._metrics is not None:
            self._metrics.deliveries.labels(action=delivery.action.value, result=result).inc()

    async def run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("outbox delivery pass failed, will retry: %s", exc)
                sent = 0
            if sent == 0:
                await self._waker.wait(self._config.poll_s)


async def refresh_gauges(pool: asyncpg.Pool, metrics: JobMetrics) -> None:
    async with pool.acquire() as conn:
        counts = await outbox_store.outbox_counts(conn)
        by_state, overdue = await queue_store.queue_gauges(conn)
    metrics.outbox_pending.set(counts.pending)
    metrics.outbox_failed.set(counts.failed)
    metrics.outbox_oldest_pending.set(counts.oldest_pending.timestamp() if counts.oldest_pending else 0)
    for state in State:
        metrics.tickets.labels(state=state.value).set(by_state.get(state.value, 0))
    metrics.tickets_overdue.set(overdue)


async def queue_loop(pool: asyncpg.Pool, metrics: JobMetrics, interval_s: float = _GAUGE_INTERVAL_S) -> None:
    """Every ``interval_s``: return tickets with expired leases to the queue, then refresh the gauges."""
    while True:
        try:
            async with pool.acquire() as conn:
                await queue_store.expire_leases(conn)
            await refresh_gauges(pool, metrics)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("the takedown queue upkeep failed, will retry: %s", exc)
        await asyncio.sleep(interval_s)


async def retention_loop(
    pool: asyncpg.Pool,
    interval_s: float,
    scans: retention_store.ScanMatches,
    metrics: JobMetrics | None = None,
    retention_days: int = 365,
) -> None:
    """Purge expired evidence now and then every ``interval_s``; replicas may run it together (SKIP LOCKED).

    ``scans`` is the detector's copy of match evidence, cleared with takedown's (the root passes it in).
    """
    while True:
        try:
            async with pool.acquire() as conn:
                purged = await retention_store.purge_expired_evidence(conn, scans)
                await retention_store.purge_unticketed_matches(conn, retention_days, scans)
            if purged:
                log.info("purged the evidence of %d tickets past their preservation deadline", purged)
                if metrics is not None:
                    metrics.evidence_purged.inc(purged)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("evidence purge failed, will retry: %s", exc)
        await asyncio.sleep(interval_s)
