"""Keeping the in-memory snapshot in step with the database, without restarts.

A change to any hash list fires a PostgreSQL NOTIFY (trigger in the hashsets migration). Each
replica LISTENs and, on a notification or every ``interval_s`` as a fallback for a lost
connection, compares the set of active list versions with what it holds; if they differ it
builds a new snapshot beside the old one and swaps the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

import asyncpg

from detector.matcher import MatchSnapshot

log = logging.getLogger(__name__)

CHANNEL = "hashguard_hashsets"
UNLISTENED_POLL_S = 2.0


class Reloader:
    def __init__(
        self,
        *,
        url: str,
        fingerprint: Callable[[], Awaitable[Hashable]],
        load: Callable[[], Awaitable[tuple[Hashable, MatchSnapshot]]],
        install: Callable[[MatchSnapshot, float], None],
        interval_s: float = 30.0,
        confirmed: Callable[[], None] = lambda: None,
        failed: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self._url = url
        self._fingerprint = fingerprint
        self._load = load
        self._install = install
        self._interval_s = interval_s
        # ``confirmed``: the snapshot served is known to match the database (installed, or checked and
        # unchanged); /readyz reads how long ago. ``failed``: a check or load failed (counted, alerted).
        self._confirmed = confirmed
        self._failed = failed
        self._wake = asyncio.Event()
        self.current: Hashable = None

    def wake(self) -> None:
        """Check for changes now, e.g. at the moment an approval expires (nothing is written then)."""
        self._wake.set()

    async def load_now(self) -> None:
        started = time.perf_counter()
        fingerprint, snapshot = await self._load()
        self.current = fingerprint
        self._install(snapshot, time.perf_counter() - started)
        self._confirmed()

    async def check(self) -> bool:
        """Compare the fingerprint and reload if it moved; True when a new snapshot was installed.

        Never raises (but for cancellation): a failure — the database away, a stored record the loader
        cannot handle — is logged as an alert, counted through ``failed``, and the snapshot served stays
        the last good one; /readyz turns 503 once that is older than HASHGUARD_INDEX_STALE_S.
        """
        try:
            if await self._fingerprint() == self.current:
                self._confirmed()
                return False
            await self.load_now()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop must never end, and one bad record must never stop it
            log.error("ALERT: could not reload the hash lists and tool approvals; the previous index keeps serving", exc_info=exc)
            self._failed(exc)
            return False

    async def run(self) -> None:
        """Runs until cancelled; every failure is logged and retried, the old snapshot keeps serving."""
        listener: asyncpg.Connection | None = None
        try:
            while True:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                # Without a LISTEN connection a suspended tool would keep scanning until the next
                # periodic check: poll within the registry's 5 s promise until listening again.
                wait_s = self._interval_s if listener is not None else min(self._interval_s, UNLISTENED_POLL_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)
                self._wake.clear()
                if await self.check():
                    log.info("hash lists changed; new index snapshot installed")
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await asyncpg.connect(self._url)
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            # A dropped connection hears nothing more: wake at once to reconnect and re-check.
            conn.add_termination_listener(lambda *_: self._wake.set())
            # A notification may have been missed while not listening: check once now.
            self._wake.set()
            return conn
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot LISTEN for changes (%s); polling every %.0f s", exc, min(self._interval_s, UNLISTENED_POLL_S))
            return None
