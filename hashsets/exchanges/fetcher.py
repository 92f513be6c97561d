"""Running fetches: one per source at a time across every replica, each page batch committed with its checkpoint.

``Fetcher.fetch`` takes the source's advisory lock on one connection (another replica holding it:
this one skips), reads the connector's pages from the stored checkpoint and applies them in
batches (``store.apply_pages``: at most ``batch_entries`` updates or ``batch_s`` seconds of pages
per transaction, so a 10M-entry first fetch is not one version per thousand entries). A failure of
the source (down, a revoked credential) is recorded with its kind and retried at the next run; what
was applied stays applied. Pages quarantined earlier are read again first. ``Fetcher.run`` is the
service's schedule: every due, unpaused source, then the feedback outbox.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hashsets.exchanges import registry, store
from hashsets.exchanges.base import Checkpoint, Connector, ExchangeError, Page, Verdict, Vote, resolve_settings
from hashsets.exchanges.store import Applied, Parse, Source

if TYPE_CHECKING:
    import aiohttp
    import asyncpg

log = logging.getLogger(__name__)

FEEDBACK_MAX_ATTEMPTS = 12


@dataclass(kw_only=True, slots=True)
class FetchOutcome:
    source: str
    locked_elsewhere: bool = False
    pages: int = 0
    applied: Applied = field(default_factory=Applied)
    error: ExchangeError | None = None
    retried_pages: int = 0

    def add(self, applied: Applied) -> None:
        total = self.applied
        for name in ("updates", "added", "retracted", "stale", "filtered", "problems", "failed_pages"):
            setattr(total, name, getattr(total, name) + getattr(applied, name))
        total.versions.update(applied.versions)


def hash_parser(tools: Mapping[str, Callable[[str], bytes]]) -> Parse:
    """Hash values by type: an installed tool's parser, else kept as given (hex if it is hex) for a coverage gap."""

    def parse(tool: str, text: str) -> bytes:
        known = tools.get(tool)
        if known is not None:
            return known(text)
        cleaned = text.strip()
        if not cleaned:
            raise ValueError("the value is empty")
        try:
            return bytes.fromhex(cleaned)
        except ValueError:
            return cleaned.encode()

    return parse


class Fetcher:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        parse: Parse,
        actor: str = "hashguard:exchanges",
        batch_entries: int = 10_000,
        batch_s: float = 2.0,
        error_retry_s: float = 300.0,
        connectors: Mapping[str, type[Connector]] | None = None,
        observe: Callable[[FetchOutcome], None] = lambda outcome: None,
    ) -> None:
        self.pool = pool
        self.session = session
        self.parse = parse
        self.actor = actor
        self.batch_entries = batch_entries
        self.batch_s = batch_s
        self.error_retry_s = error_retry_s
        self.connectors = connectors
        self.observe = observe

    def _class(self, kind: str) -> type[Connector]:
        if self.connectors is not None and kind in self.connectors:
            return self.connectors[kind]
        return registry.connector_class(kind)

    def connector(self, src: Source) -> Connector:
        cls = self._class(src.kind)
        return cls(resolve_settings(cls, src.config), self.session)

    async def fetch(self, name: str) -> FetchOutcome:
        """Fetch one source now, from its checkpoint to the source's present (or its first failure)."""
        outcome = FetchOutcome(source=name)
        async with self.pool.acquire() as conn:
            src = await store.source(conn, name)
            if not await store.try_lock(conn, src.id):
                outcome.locked_elsewhere = True
                return outcome
            try:
                src = await store.source(conn, name)  # read again under the lock: the checkpoint is now ours
                await self._fetch_locked(conn, src, outcome)
            finally:
                await store.unlock(conn, src.id)
        self.observe(outcome)
        return outcome

    async def _fetch_locked(self, conn: asyncpg.Connection, src: Source, outcome: FetchOutcome) -> None:
        try:
            connector = self.connector(src)
            await self._retry_failed_pages(conn, src, connector, outcome)
        except ExchangeError as exc:
            await self._failed(conn, src, outcome, exc)
            return
        checkpoint: Checkpoint | None = src.checkpoint
        batch: list[Page] = []
        entries = 0
        started = time.monotonic()

        async def commit() -> None:
            nonlocal checkpoint, batch, entries
            applied = await store.apply_pages(conn, src, expected=checkpoint, pages=batch, parse=self.parse, actor=self.actor)
            outcome.add(applied)
            outcome.pages += len(batch)
            checkpoint = batch[-1].checkpoint
            batch, entries = [], 0

        try:
            pages = connector.fetch(checkpoint)
            while True:
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    break
                except ExchangeError as exc:  # the source failed: keep what was read, record, retry later
                    if batch:
                        await commit()
                    await self._failed(conn, src, outcome, exc)
                    return
                if not batch:
                    started = time.monotonic()
                batch.append(page)
                entries += len(page.updates)
                if entries >= self.batch_entries or time.monotonic() - started >= self.batch_s:
                    await commit()
            if batch:
                await commit()
        except ExchangeError as exc:  # applying failed (the checkpoint moved, a list changed by hand)
            await self._failed(conn, src, outcome, exc)
            return
        await store.finished(conn, src.id)

    async def _retry_failed_pages(
        self, conn: asyncpg.Connection, src: Source, connector: Connector, outcome: FetchOutcome
    ) -> None:
        for quarantine_id, position in await store.open_page_failures(conn, src.id):
            page = await connector.refetch(position)
            if page is not None and page.failure is not None:
                await store.retry_failed(conn, quarantine_id, page.failure.reason)
                continue
            pages = [page] if page is not None else []
            applied = await store.apply_pages(
                conn, src, expected=None, pages=pages, parse=self.parse, actor=self.actor, resolves=quarantine_id
            )
            outcome.add(applied)
            outcome.retried_pages += 1

    async def _failed(self, conn: asyncpg.Connection, src: Source, outcome: FetchOutcome, exc: ExchangeError) -> None:
        outcome.error = exc
        log.warning("exchange %s: fetch stopped (%s): %s", src.name, exc.kind, exc)
        await store.failed(conn, src.id, exc.kind, str(exc), self.error_retry_s)

    async def run_due(self) -> list[FetchOutcome]:
        async with self.pool.acquire() as conn:
            due = await store.due_sources(conn)
        return [await self.fetch(name) for _, name in due]

    async def deliver_feedback(self, on_result: Callable[[str, str, bool], None] = lambda s, v, ok: None) -> int:
        """Send due verdicts; each row is held (FOR UPDATE SKIP LOCKED) while it is sent, so replicas share the work."""
        sent = 0
        connectors: dict[str, Connector] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await store.due_feedback(conn):
                try:
                    if row["source"] not in connectors:
                        src = await store.source(conn, row["source"])
                        connectors[row["source"]] = self.connector(src)
                    await connectors[row["source"]].send_feedback(
                        Verdict(
                            entry_id=row["entry_id"],
                            hash_type=row["tool"],
                            vote=Vote(row["vote"]),
                            reason=row["reason"],
                            value=row["value"],
                        )
                    )
                except ExchangeError as exc:
                    attempts = row["attempts"] + 1
                    delay = min(3600.0, 2.0**attempts) * (0.5 + random.random() / 2)
                    await store.feedback_retry(conn, row["id"], f"{exc.kind}: {exc}", delay, attempts >= FEEDBACK_MAX_ATTEMPTS)
                    on_result(row["source"], row["vote"], False)
                    continue
                await store.feedback_sent(
                    conn, row["id"], row["source"], {"entry_id": row["entry_id"], "tool": row["tool"], "vote": row["vote"]}
                )
                on_result(row["source"], row["vote"], True)
                sent += 1
        return sent

    async def run(self, poll_s: float, after_round: Callable[[], Awaitable[object]] | None = None) -> None:
        """The schedule, until cancelled: due sources, then ``after_round`` (the root's: feedback, metrics)."""
        while True:
            try:
                await self.run_due()
                if after_round is not None:
                    await after_round()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must not end: the database away, a broken plug-in
                log.exception("exchanges: a fetch round failed; retrying")
            await asyncio.sleep(poll_s)
