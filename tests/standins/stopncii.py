"""A loopback stand-in for StopNCII.org's FetchHashes/SubmitFeedback API (JSON, key headers, continuation tokens),
misbehaving on request (a 500, refused keys, expired tokens). Synthetic hashes only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

SUBSCRIPTION, FETCH_KEY, FEEDBACK_KEY = "sub-key", "fetch-key", "feedback-key"


@dataclass
class Record:
    signal_type: str
    value: str
    modified: int
    status: str = "Active"


@dataclass
class Faults:
    errors: dict[int, int] = field(default_factory=dict)  # offset -> times to answer 500
    revoked: bool = False
    refuse_tokens: bool = False


class StopNciiStandIn:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], Record] = {}
        self.faults = Faults()
        self.feedback: list[dict[str, object]] = []
        self.url = ""

    def put(self, record: Record) -> None:
        self.records[(record.signal_type, record.value)] = record

    def content(self, signal_type: str = "ImagePDQ") -> set[str]:
        return {
            r.value for r in self.records.values() if r.signal_type == signal_type and r.status not in ("Withdrawn", "Deleted")
        }

    @web.middleware
    async def _keys(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        wanted = FEEDBACK_KEY if request.path.endswith("SubmitFeedback") else FETCH_KEY
        if self.faults.revoked or request.headers.get("Ocp-Apim-Subscription-Key") != SUBSCRIPTION:
            return web.json_response({"message": "unauthorised"}, status=401)
        if request.headers.get("x-functions-key") != wanted:
            return web.json_response({"message": "forbidden"}, status=403)
        return await handler(request)

    async def fetch(self, request: web.Request) -> web.Response:
        start = int(request.query["startTimestamp"])
        size = int(request.query.get("pageSize", "800"))
        token = request.query.get("nextPageToken")
        offset = 0
        if token:
            kind, _, rest = token.partition(":")
            token_start, _, token_offset = rest.partition(":")
            if self.faults.refuse_tokens or kind != "t" or int(token_start) != start:
                return web.json_response({"message": "invalid token"}, status=400)
            offset = int(token_offset)
        if self.faults.errors.get(offset, 0) > 0:
            self.faults.errors[offset] -= 1
            return web.json_response({"message": "boom"}, status=500)
        matching = sorted(
            (r for r in self.records.values() if r.modified >= start), key=lambda r: (r.modified, r.signal_type, r.value)
        )
        chunk = matching[offset : offset + size]
        more = offset + size < len(matching)
        newest = max((r.modified for r in matching), default=start - 1)
        return web.json_response(
            {
                "count": len(chunk),
                "nextPageToken": f"t:{start}:{offset + size}" if more else None,
                "nextSetTimestamp": newest + 1,
                "hasMoreRecords": more,
                "hashRecords": [
                    {
                        "lastModtimestamp": r.modified,
                        "signalType": r.signal_type,
                        "hashValue": r.value,
                        "hashStatus": r.status,
                        "caseNumbers": {},
                        "CSPFeedbacks": [],
                    }
                    for r in chunk
                ],
            }
        )

    async def submit_feedback(self, request: web.Request) -> web.Response:
        self.feedback.append(json.loads(await request.read()))
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._keys])
        app.router.add_get("/v1/FetchHashes", self.fetch)
        app.router.add_post("/v1/SubmitFeedback", self.submit_feedback)
        return app


@asynccontextmanager
async def serving(stand_in: StopNciiStandIn) -> AsyncIterator[str]:
    runner = web.AppRunner(stand_in.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield stand_in.url
    finally:
        await runner.cleanup()
