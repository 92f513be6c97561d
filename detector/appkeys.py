"""Typed keys for what the aiohttp application holds for the detector context (shared ones: ``kernel.appkeys``)."""

from __future__ import annotations

from aiohttp import web

from detector.scan import HashPool, ScanService, SnapshotHolder
from detector.tools.registry import ToolRegistry
from detector.video_frames import MatchParams
from detector.video_scan import VideoScanner

TOOLS = web.AppKey("tools", ToolRegistry)
HOLDER = web.AppKey("snapshot_holder", SnapshotHolder)
HASH_POOL = web.AppKey("hash_pool", HashPool)
SCANNER = web.AppKey("scanner", ScanService)
VIDEO = web.AppKey("video_scanner", VideoScanner)
VIDEO_PARAMS = web.AppKey("video_params", dict[str, MatchParams])
