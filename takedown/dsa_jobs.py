"""Sending statements of reasons to the DSA Transparency Database. An I/O edge, like ``jobs.py``:
aiohttp's client out, the outbox through ``takedown.dsa_store``; what the answers mean is
``takedown.dsa_db``'s.

The submitter claims up to 100 due statements (the multi-statement endpoint's limit), checks
each against the schema we ship (a statement that fails is kept, rejected, with the schema's
errors, and never sent), asks the database about any statement an earlier attempt may already
have delivered (``existing-puid``: a crash or a lost answer must not file it twice), sends the
rest in one call within the database's rate limits, and marks each by the answer: accepted,
already there, rejected with the database's ``errors`` (terminal), or retried with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
from prometheus_client import Counter, Gauge

from takedown import dsa_db, dsa_store, webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class DsaConfig:
    url: str
    token: str
    timeout_s: float = 30.0
    rate_per_s: float = 200.0
    rate_per_min: float = 12000.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 900.0
    poll_s: float = 5.0
    batch: int = dsa_db.MAX_BATCH
    lease_s: float | None = None  # how long a claimed row stays claimed (default: three timeouts + 10 s)


@dataclass(frozen=True, kw_only=True, slots=True)
class DsaMetrics:
    submissions: Counter  # labels: outcome (dsa_db.Outcome)
    pending: Gauge
    failed: Gauge
    oldest_pending: Gauge


class DsaSubmitter:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        config: DsaConfig,
        metrics: DsaMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= config.batch <= dsa_db.MAX_BATCH:
            raise ValueError(f"a batch is 1 to {dsa_db.MAX_BATCH} statements")
        self._pool = pool
        self._session = session
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._limit = dsa_db.RateLimit(per_second=config.rate_per_s, per_minute=config.rate_per_min, now=clock())
        self._base = config.url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {config.token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        # Claimed rows come back to the queue after this long if this process dies mid-call.
        self._lease_s = config.lease_s if config.lease_s is not None else config.timeout_s * 3 + 10.0
        self.calls = 0  # calls made (for the rate-limit test and the log)

    async def _slot(self) -> None:
        """Wait until both rate limits allow one more call, then take it."""
        while (wait := self._limit.wait_s(self._clock())) > 0:  # noqa: ASYNC110 - waiting on the clock, not an event
            await asyncio.sleep(wait)
        self._limit.take(self._clock())
        self.calls += 1

    async def _request(self, method: str, path: str, payload: Any = None) -> tuple[int | None, bytes, str | None]:
        await self._slot()
        try:
            async with self._session.request(
                method,
                self._base + path,
                data=None if payload is None else json.dumps(payload).encode(),
                headers=self._headers,
                allow_redirects=False,  # existing-puid answers 302 with the statement: that is the answer
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
            ) as response:
                return response.status, await response.read(), response.headers.get("Retry-After")
        except TimeoutError:
            log.warning("DSA Transparency Database: no answer to %s %s within %s s", method, path, self._config.timeout_s)
        except aiohttp.ClientError as exc:
            log.warning("DSA Transparency Database: %s %s failed: %s: %s", method, path, type(exc).__name__, exc)
        return None, b"", None

    async def _held(self, puid: str) -> tuple[bool | None, str | None]:
        """Whether the database holds ``puid`` (None: it did not say), and its uuid for it."""
        status, body, _ = await self._request("GET", dsa_db.EXISTING_PUID_PATH.format(puid=quote(puid, safe="")))
        if status == 302:
            try:
                found = json.loads(body)
            except ValueError:
                found = {}
            return True, str(found["uuid"]) if isinstance(found, dict) and found.get("uuid") else None
        if status == 404:
            return False, None
        return None, None

    def _count(self, outcome: dsa_db.Outcome, n: int = 1) -> None:
        if self._metrics is not None and n:
            self._metrics.submissions.labels(outcome=outcome.value).inc(n)

    def _delay(self, attempts: int, retry_after_s: float | None = None) -> float:
        delay = webhooks.backoff_s(attempts, self._config.backoff_base_s, self._config.backoff_cap_s)
        return max(delay, retry_after_s or 0.0)

    async def run_once(self) -> int:
        """Claim one batch and settle it; return how many statements were claimed."""
        async with self._pool.acquire() as conn:
            claimed = await dsa_store.claim(conn, self._config.batch, self._lease_s)
        if not claimed:
            return 0
        to_send: list[dsa_store.Submission] = []
        async with self._pool.acquire() as conn:
            for sub in claimed:
                if found := dsa_db.problems(sub.body):
                    await dsa_store.mark_rejected(conn, sub.id, None, "the statement does not meet our schema", found)
                    log.error("DSA statement %s not sent: it does not meet our schema: %s", sub.puid, found)
                    self._count(dsa_db.Outcome.REJECTED)
                else:
                    to_send.append(sub)
        # A statement claimed before (attempts > 1) may be in the database already: the earlier
        # call may have been stored with its answer lost. Ask before sending it again.
        earlier = [s for s in to_send if s.attempts > 1]
        if earlier:
            answers = await asyncio.gather(*(self._held(s.puid) for s in earlier))
            async with self._pool.acquire() as conn:
                for sub, (held, db_uuid) in zip(earlier, answers, strict=True):
                    if held:
                        await dsa_store.mark_submitted(conn, sub.id, 302, db_uuid)
                        self._count(dsa_db.Outcome.ALREADY_PRESENT)
                    elif held is None:  # unknown: sending could duplicate it; wait and ask again
                        await dsa_store.mark_retry(
                            conn,
                            sub.id,
                            None,
                            "could not ask the database whether it holds this statement",
                            self._delay(sub.attempts),
                            counts=True,
                        )
                        self._count(dsa_db.Outcome.RETRY)
            to_send = [s for s, (held, _) in zip(earlier, answers, strict=True) if held is False] + [
                s for s in to_send if s.attempts <= 1
            ]
        if to_send:
            await self._send(to_send)
        return len(claimed)

    async def _send(self, batch: list[dsa_store.Submission]) -> None:
        puids = [s.puid for s in batch]
        status, body, retry_after = await self._request("POST", dsa_db.STATEMENTS_PATH, {"statements": [s.body for s in batch]})
        verdict = dsa_db.batch_verdict(puids, status, body, retry_after)
        done = (dsa_db.Outcome.SUBMITTED, dsa_db.Outcome.ALREADY_PRESENT)
        async with self._pool.acquire() as conn:
            await dsa_store.mark_submitted_many(
                conn, [(s.id, verdict.db_uuid.get(s.puid)) for s in batch if verdict.outcome[s.puid] in done], status or 0
            )
            for sub in batch:
                outcome = verdict.outcome[sub.puid]
                if outcome is dsa_db.Outcome.REJECTED:
                    errors = verdict.errors.get(sub.puid, {})
                    await dsa_store.mark_rejected(conn, sub.id, status, "the Transparency Database rejected it", errors)
                    log.error("DSA statement %s rejected by the Transparency Database: %s", sub.puid, errors)
                elif outcome is dsa_db.Outcome.RETRY:
                    delay = self._delay(sub.attempts, verdict.retry_after_s) if verdict.backoff else 0.0
                    await dsa_store.mark_retry(conn, sub.id, status, verdict.error, delay, counts=verdict.backoff)
        for outcome, n in Tally(verdict.outcome[s.puid] for s in batch).items():
            self._count(outcome, n)
        if verdict.error and verdict.backoff:
            log.warning("DSA Transparency Database: %d statements to retry: %s", len(batch), verdict.error)

    async def refresh_gauges(self) -> None:
        if self._metrics is None:
            return
        async with self._pool.acquire() as conn:
            counts = await dsa_store.counts(conn)
        self._metrics.pending.set(counts.pending)
        self._metrics.failed.set(counts.failed)
        self._metrics.oldest_pending.set(counts.oldest_pending.timestamp() if counts.oldest_pending else 0)

    async def run(self) -> None:
        while True:
            claimed = 0
            try:
                claimed = await self.run_once()
                await self.refresh_gauges()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("DSA submission pass failed, will retry: %s", exc)
            if claimed == 0:
                await asyncio.sleep(self._config.poll_s)
