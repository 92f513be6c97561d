"""What a lost database means to a request, in one place: which driver errors say "PostgreSQL is not
reachable", the 503 they become, and a cheap, cached check of whether it is reachable now.

While PostgreSQL is down the service cannot authenticate a key its cache does not hold, record
evidence, open a ticket or re-read the lists, so every ``/v1/`` call answers ``503 not_ready`` with
``Retry-After`` (``kernel.web.errors_middleware``) and ``/readyz`` answers 503 — never a 500 with a
traceback, and never a ``no_match`` for something that was not checked. The pool reconnects by itself
once the server is back; nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from kernel.errors import ServiceError

log = logging.getLogger(__name__)

# What a client is told to wait before retrying (seconds): about two checks of the database.
RETRY_AFTER_S = 2

# The PostgreSQL errors that mean "the server is not there or not taking work": class 08
# (connection exceptions, including a connection closed mid-query), the server shutting down or
# starting (57P01-57P03), and no free connection slot (53300).
_SERVER_GONE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class DatabaseUnavailable(ServiceError):
    """The database is unreachable; hold the upload and retry."""

    status = 503
    code = "not_ready"


def _raised_by_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("asyncpg"):
            return True
        tb = tb.tb_next
    return False


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached, rather than a bug.

    A socket error or timeout counts only when it came out of the driver (connecting, a pool acquire
    timing out, a socket reset mid-query); an ``InterfaceError`` only when it is about a closed
    connection or pool ("another operation is in progress" is a bug and stays a 500).
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, _SERVER_GONE):
            return True
        if isinstance(current, asyncpg.InterfaceError) and ("closed" in str(current) or "closing" in str(current)):
            return True
        if isinstance(current, OSError) and _raised_by_driver(current):  # TimeoutError is an OSError
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def describe(exc: BaseException) -> str:
    """One short line naming a connection failure (driver messages hold no query parameters)."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DatabaseHealth:
    """Whether PostgreSQL answers, checked with ``SELECT 1`` on a connection of its own (so a busy pool
    is not mistaken for a lost server), at most once per ``cache_s``; concurrent callers share one check.

    It also keeps the log to one warning line per ``warn_every_s`` while requests are refused, and one
    line when the database is back.
    """

    def __init__(self, url: str, *, cache_s: float = 1.0, timeout_s: float = 5.0, warn_every_s: float = 30.0) -> None:
        self._url = url
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._warn_every_s = warn_every_s
        self._conn: asyncpg.Connection | None = None
        self._checked_at = -float("inf")
        self._up = True
        self._problem: str | None = None
        self._inflight: asyncio.Future[bool] | None = None
        self._down_since: float | None = None
        self._warned_at = -float("inf")
        self._refused = 0
        self._refused_total = 0

    @property
    def problem(self) -> str | None:
        """The kind of failure that stopped the last check (an exception's class name), or None."""
        return self._problem

    async def reachable(self) -> bool:
        if time.monotonic() - self._checked_at < self._cache_s:
            return self._up
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._check())
        # Shielded: a caller that gives up (a client hanging up) does not cancel the check others wait on.
        return await asyncio.shield(self._inflight)

    async def explains(self, exc: BaseException) -> bool:
        """Whether ``exc``, met by a request, is the database being unreachable: a connection failure by
        its kind (``is_connection_failure``), or any other error out of the driver while a fresh check
        fails (a session cut by a shutdown can leave the driver mid-protocol: "another operation is in
        progress"). Any other error is a bug, and stays one."""
        if is_connection_failure(exc):
            self.suspect()
            return True
        if not isinstance(exc, _DRIVER_ERRORS) and not _raised_by_driver(exc):
            return False
        self.suspect()
        return not await self.reachable()

    def suspect(self) -> None:
        """A request just met a connection failure: check again on the next call instead of trusting the cache."""
        self._checked_at = -float("inf")

    def refused(self, reason: str) -> None:
        """Count a request answered 503 for the database; log it, at most one line per ``warn_every_s``."""
        self._refused += 1
        self._refused_total += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
        now = time.monotonic()
        if now - self._warned_at >= self._warn_every_s:
            log.warning(
                "the database is unreachable (%s): /v1/ calls answer 503 not_ready; %d refused since the last warning",
                reason,
                self._refused,
            )
            self._warned_at = now
            self._refused = 0

    async def _check(self) -> bool:
        try:
            await self._ping()
        except Exception as exc:
            # Anything at all that stops a ping means "not reachable", however the driver phrases it.
            self._problem = type(exc).__name__
            self._up = False
            if self._down_since is None:
                self._down_since = time.monotonic()
        else:
            if self._down_since is not None:
                log.info(
                    "the database is reachable again (%d requests were answered 503 over %.1f s)",
                    self._refused_total,
                    time.monotonic() - self._down_since,
                )
            self._problem = None
            self._up = True
            self._down_since = None
            self._refused = 0
            self._refused_total = 0
            self._warned_at = -float("inf")
        finally:
            self._checked_at = time.monotonic()
            self._inflight = None
        return self._up

    async def _ping(self) -> None:
        # A connection from before a restart fails once; a fresh one then says whether the server is back.
        for fresh in (self._conn is None, True):
            if self._conn is None or self._conn.is_closed():
                self._conn = None
                self._conn = await asyncpg.connect(self._url, timeout=self._timeout_s)
            try:
                await self._conn.fetchval("SELECT 1", timeout=self._timeout_s)
                return
            except Exception:
                self._conn.terminate()
                self._conn = None
                if fresh:
                    raise

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = None


class _QuietDriverWarnings(logging.Filter):
    """A log record about a plain connection failure keeps its line, with the failure named, and loses
    its traceback (the pool logs one on every retry while the server is down)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # The driver's internal state errors are what a session cut mid-protocol leaves; their traceback
        # is the driver's own frames.
        if exc is not None and (is_connection_failure(exc) or isinstance(exc, asyncpg.InternalClientError)):
            record.msg = f"{record.getMessage()} ({describe(exc)})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_driver_logs() -> None:
    """Keep connection failures to one line each in the log (idempotent).

    Installed on the driver's pool logger and on the root logger's handlers, so a background loop's
    ``log.exception`` for a lost server (the reloader's, a job's) is one line too, not a traceback.
    """
    for holder in (logging.getLogger("asyncpg.pool"), *logging.getLogger().handlers):
        if not any(isinstance(f, _QuietDriverWarnings) for f in holder.filters):
            holder.addFilter(_QuietDriverWarnings())
