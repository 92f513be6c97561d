"""A local stand-in for NCMEC's hash-sharing API v2 on loopback: the real XML, Basic auth, ``from``/``to``
windows paged through ``next`` links (``start``/``size``/``max``), entries in no time order, tombstones,
feedback — and faults on request (a malformed page, a 500, a revoked credential, a page that hangs).

The content is synthetic: hashes are random bytes, never from a real list.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from hashsets.exchanges import ncmec_xml

USER, PASSWORD = "esp-user", "s3cret-pass"


@dataclass
class Entry:
    member: str
    id: str
    at: int  # unix seconds
    fingerprints: dict[str, str] = field(default_factory=dict)  # xml tag -> value
    classification: str | None = "A1"
    deleted: bool = False
    video: bool = False

    @property
    def key(self) -> str:
        return f"{self.member}-{self.id}"


@dataclass
class Faults:
    malformed: dict[int, int] = field(default_factory=dict)  # page start -> times to answer garbage
    errors: dict[int, int] = field(default_factory=dict)  # page start -> times to answer 500
    hang: set[int] = field(default_factory=set)  # page starts that never answer (until released)
    revoked: bool = False
    bad_entry: set[str] = field(default_factory=set)  # entry keys written without an id element


class NcmecStandIn:
    def __init__(self, page_size: int = 1000) -> None:
        self.entries: dict[str, Entry] = {}
        self._windows: dict[tuple[int, int], list[Entry]] = {}
        self.page_size = page_size
        self.faults = Faults()
        self.requests: list[str] = []
        self.feedback: list[tuple[str, bytes]] = []
        self.released = asyncio.Event()
        self.hanging = threading.Event()  # set on the stand-in's loop, waited for from a test thread
        self.url = ""

    def put(self, entry: Entry) -> None:
        self.entries[entry.key] = entry
        self._windows.clear()

    def changed(self) -> None:
        """Entries were changed in place: forget the cached windows."""
        self._windows.clear()

    def _window(self, lo: int, hi: int) -> list[Entry]:
        """The window's entries in no time order (as the real API): by a digest of the id; kept while nothing is put."""
        key = (lo, hi)
        if key not in self._windows:
            self._windows[key] = sorted(
                (e for e in self.entries.values() if lo <= e.at <= hi), key=lambda e: hashlib.sha256(e.key.encode()).digest()
            )
        return self._windows[key]

    def content(self, tag: str, members: set[str] | None = None) -> dict[str, bytes]:
        """What a faithful copy holds for one fingerprint type: entry key -> hash bytes."""
        return {
            e.key: bytes.fromhex(e.fingerprints[tag])
            for e in self.entries.values()
            if not e.deleted and tag in e.fingerprints and (members is None or e.member in members)
        }

    def _authorised(self, request: web.Request) -> bool:
        how, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return how == "Basic" and not self.faults.revoked and given == f"{USER}:{PASSWORD}"

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if not self._authorised(request):
            return web.Response(status=401, text="unauthorised")
        return await handler(request)

    async def status(self, request: web.Request) -> web.Response:
        return _xml(
            f'<status xmlns="{ncmec_xml.NAMESPACE}"><ipAddress>127.0.0.1</ipAddress>'
            f'<username>{USER}</username><member id="7">Stand-in Platform</member></status>'
        )

    async def reasons(self, request: web.Request) -> web.Response:
        kind = request.match_info["type"]
        return _xml(
            f'<availableFeedbackReasons xmlns="{ncmec_xml.NAMESPACE}">'
            f'<reason guid="0000000{len(kind)}-aaaa-bbbb-cccc-000000000001" name="Not the content" type="{kind}"/>'
            "</availableFeedbackReasons>"
        )

    async def put_feedback(self, request: web.Request) -> web.Response:
        self.feedback.append((request.path, await request.read()))
        return _xml(f'<submissionResult xmlns="{ncmec_xml.NAMESPACE}"/>')

    async def entries_page(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            start_at = ncmec_xml.parse_time(q["from"])
            end_at = ncmec_xml.parse_time(q["to"])
        except (KeyError, ValueError):
            return web.Response(status=400, text="from and to are required")
        lo, hi = int(start_at.timestamp()), int(end_at.timestamp())
        window = self._window(lo, hi)
        start = int(q.get("start", "1"))
        size = int(q.get("size", str(self.page_size)))
        if start in self.faults.hang:
            self.hanging.set()
            await self.released.wait()
        if self.faults.errors.get(start, 0) > 0:
            self.faults.errors[start] -= 1
            return web.Response(status=500, text="internal error")
        if self.faults.malformed.get(start, 0) > 0:
            self.faults.malformed[start] -= 1
            return web.Response(body=b"<queryResult><images><image><id>broken", content_type="application/xml")
        chunk = window[start - 1 : start - 1 + size]
        top = len(window)
        following = ""
        if start + size <= top:
            query = urlencode({"from": q["from"], "to": q["to"], "start": start + size, "size": size, "max": top})
            following = f"<paging><next>/v2/entries?{query.replace('&', '&amp;')}</next></paging>"
        return _xml(f'<queryResult xmlns="{ncmec_xml.NAMESPACE}">{self._groups(chunk)}{following}</queryResult>')

    def _groups(self, chunk: list[Entry]) -> str:
        out = []
        for video, group in ((False, "images"), (True, "videos")):
            items = [e for e in chunk if e.video == video]
            if not items:
                continue
            newest = datetime.fromtimestamp(max(e.at for e in items), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(f'<{group} count="{len(items)}" maxTimestamp="{newest}">')
            out.extend(self._entry(e) for e in items)
            out.append(f"</{group}>")
        return "".join(out)

    def _entry(self, e: Entry) -> str:
        tag = ("deletedVideo" if e.deleted else "video") if e.video else ("deletedImage" if e.deleted else "image")
        at = datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ident = "" if e.key in self.faults.bad_entry else f"<id>{e.id}</id>"
        body = f'<member id="{e.member}">Member {e.member}</member><timestamp>{at}</timestamp>{ident}'
        if not e.deleted:
            if e.classification:
                body += f"<classification>{e.classification}</classification>"
            body += "<fingerprints>" + "".join(f"<{k}>{v}</{k}>" for k, v in e.fingerprints.items()) + "</fingerprints>"
        return f"<{tag}>{body}</{tag}>"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/hashsharing/v2/status", self.status)
        app.router.add_get("/hashsharing/v2/entries", self.entries_page)
        app.router.add_get("/hashsharing/v2/feedback/{type}/reasons", self.reasons)
        app.router.add_put("/hashsharing/v2/entries/{esp}/{entry}/{type}/feedback", self.put_feedback)
        return app


def _xml(text: str) -> web.Response:
    return web.Response(
        body=('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + text).encode(), content_type="application/xml"
    )


@asynccontextmanager
async def serving(stand_in: NcmecStandIn) -> AsyncIterator[str]:
    """Serve on a free loopback port; yields the base URL (the environment's ``…/hashsharing``)."""
    runner = web.AppRunner(stand_in.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.url = f"http://127.0.0.1:{port}/hashsharing"
    try:
        yield stand_in.url
    finally:
        stand_in.released.set()
        await runner.cleanup()


class InThread:
    """The stand-in served from its own event loop in a thread, for tests whose service runs in another."""

    def __init__(self, stand_in: NcmecStandIn) -> None:
        self.stand_in = stand_in
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="ncmec-stand-in", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with serving(self.stand_in):
                self._ready.set()
                await self._stop.wait()

        self.loop.run_until_complete(main())

    def call(self, fn: Callable[[], object]) -> None:
        """Change the stand-in's content from the test's thread, on the stand-in's loop."""
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)

    def __enter__(self) -> NcmecStandIn:
        self._thread.start()
        assert self._ready.wait(20), "the stand-in did not start"
        return self.stand_in

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            self.loop.call_soon_threadsafe(stop.set)
        self._thread.join(20)
        self.loop.close()
