"""Typed keys for what the aiohttp application holds that every context's handlers read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from kernel.dbfaults import DatabaseHealth
from kernel.keys import Principal
from kernel.metrics import Metrics
from kernel.ratelimit import KeyGuard
from kernel.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DB_URL = web.AppKey("database_url", str)
POOL = web.AppKey("pool", asyncpg.Pool)
KEY_CACHE = web.AppKey("key_cache", dict[bytes, tuple[float, Principal | None]])
KEY_GUARD = web.AppKey("key_guard", KeyGuard)
DB_HEALTH = web.AppKey("database_health", DatabaseHealth)
# Extra /readyz detail by name (e.g. the hash-sharing sources' freshness), each computed without I/O.
READY_DETAILS: web.AppKey[dict[str, Callable[[], Any]]] = web.AppKey("ready_details")
