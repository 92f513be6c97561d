"""Typed keys for everything the aiohttp application holds (one place, so wiring is greppable)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from detector.auth import Principal
from detector.metrics import Metrics
from detector.scan import HashPool, ScanService, SnapshotHolder
from detector.settings import Settings
from detector.tools.registry import ToolRegistry

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
TOOLS = web.AppKey("tools", ToolRegistry)
HOLDER = web.AppKey("snapshot_holder", SnapshotHolder)
DB_URL = web.AppKey("database_url", str)
POOL = web.AppKey("pool", asyncpg.Pool)
HASH_POOL = web.AppKey("hash_pool", HashPool)
SCANNER = web.AppKey("scanner", ScanService)
KEY_CACHE = web.AppKey("key_cache", dict[bytes, tuple[float, Principal | None]])
