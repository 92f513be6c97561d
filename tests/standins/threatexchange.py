"""A loopback stand-in for Meta ThreatExchange's Graph API ``/{group}/threat_updates/`` (JSON, access token,
``paging.next`` cursors in time order), misbehaving on request (a 500, a revoked token). Synthetic hashes only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

TOKEN = "1234567890|stand-in-token-abcdefghij"


@dataclass
class Update:
    id: int
    type: str
    indicator: str
    last_updated: int
    should_delete: bool = False


@dataclass
class Faults:
    errors: dict[int, int] = field(default_factory=dict)  # offset -> times to answer 500
    revoked: bool = False


class ThreatExchangeStandIn:
    def __init__(self, group: str = "303") -> None:
        self.group = group
        self.updates: dict[int, Update] = {}
        self.faults = Faults()
        self.requests: list[str] = []
        self.url = ""

    def put(self, update: Update) -> None:
        self.updates[update.id] = update

    def content(self, kind: str = "HASH_PDQ") -> dict[str, str]:
        return {f"{self.group}-{u.id}": u.indicator for u in self.updates.values() if u.type == kind and not u.should_delete}

    async def threat_updates(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        q = request.query
        if self.faults.revoked or q.get("access_token") != TOKEN:
            return web.json_response(
                {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}, status=400
            )
        if request.match_info["group"] != self.group:
            return web.json_response(
                {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100}}, status=400
            )
        start, stop = int(q["start_time"]), int(q["stop_time"])
        limit = int(q.get("limit", "500"))
        offset = int(q.get("after", "0"))
        if self.faults.errors.get(offset, 0) > 0:
            self.faults.errors[offset] -= 1
            return web.json_response({"error": {"message": "An unknown error occurred", "code": 1}}, status=500)
        types = set(q.get("types", "").split(",")) - {""}
        window = sorted(
            (u for u in self.updates.values() if start <= u.last_updated < stop and (not types or u.type in types)),
            key=lambda u: (u.last_updated, u.id),
        )
        chunk = window[offset : offset + limit]
        body: dict[str, object] = {
            "data": [
                {
                    "id": str(u.id),
                    "indicator": u.indicator,
                    "type": u.type,
                    "last_updated": u.last_updated,
                    "should_delete": u.should_delete,
                }
                for u in chunk
            ]
        }
        if offset + limit < len(window):
            query = {k: v for k, v in q.items() if k != "after"} | {"after": str(offset + limit)}
            body["paging"] = {
                "cursors": {"after": str(offset + limit)},
                "next": f"{self.url}/{self.group}/threat_updates/?{urlencode(query)}",
            }
        return web.json_response(body)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v26.0/{group}/threat_updates/", self.threat_updates)
        return app


@asynccontextmanager
async def serving(stand_in: ThreatExchangeStandIn) -> AsyncIterator[str]:
    runner = web.AppRunner(stand_in.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.url = f"http://127.0.0.1:{port}/v26.0"
    try:
        yield stand_in.url
    finally:
        await runner.cleanup()
