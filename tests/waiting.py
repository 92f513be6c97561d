"""The one way tests wait for something: poll a condition until it holds or a time limit passes.

Never sleep and then assert: wait for a positive signal instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def wait_until(
    condition: Callable[[], object],
    timeout: float = 20.0,
    *,
    interval: float = 0.05,
    since: float | None = None,
    what: str = "the condition",
) -> float:
    """Poll ``condition`` until it is true; return the seconds since ``since`` (default: now).

    Fails with an ``AssertionError`` naming ``what`` once ``timeout`` seconds have passed since ``since``.
    """
    started = time.monotonic() if since is None else since
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


async def eventually(
    condition: Callable[[], Awaitable[object]],
    limit_s: float = 20.0,
    *,
    interval: float = 0.05,
    what: str = "the condition",
) -> float:
    """The asynchronous twin of :func:`wait_until`: await ``condition()`` until it is true, for at most ``limit_s``."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"{what} did not happen within {limit_s} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started
