"""A local stand-in for the CyberTipline Reporting API (ispws), on loopback, in a thread of its own.

It speaks the documented protocol: HTTP Basic auth; ``GET /status`` and ``GET /xsd``; ``POST /submit``
(``<report>``), ``/upload`` (multipart ``id`` + ``file``, answering the file id and the MD5 of the
bytes received), ``/fileinfo`` (``<fileDetails>``), ``/finish`` and ``/retract`` (form ``id``); XML
answers with ``responseCode``/``responseDescription``/``reportId``; a ``Request-ID`` header on every
answer. Incoming documents are validated against hashguard's own XSD (the one ``GET /xsd`` serves
here), answering 4100 as NCMEC does. Faults are injected per call, consumed one request at a time:
``http500``, ``code1000``, ``drop`` (the connection closes before any answer, nothing applied),
``apply_drop`` (applied, then the connection closes: the answer is lost), ``expired`` (5001: the
report is gone), ``auth`` (HTTP 401 with 2000), ``hang`` (no answer until ``release()``, nothing applied:
the caller dies waiting, as a killed process would). ``arrived`` lists every call as it comes in.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from lxml import etree

from takedown.reports.ncmec import DocumentInvalid, own_schema, own_schema_bytes
from tests.harness import free_port

USERNAME = "standin-user"
PASSWORD = "standin-password"


@dataclass
class StoredReport:
    id: int
    document: bytes
    status: str = "open"  # open, finished, retracted, expired
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file id -> md5, size
    fileinfos: list[bytes] = field(default_factory=list)


class NcmecStandIn:
    def __init__(self) -> None:
        self.reports: dict[int, StoredReport] = {}
        self.calls: list[tuple[str, int | None, str]] = []  # (call, code answered, request id)
        self.faults: dict[str, list[str]] = {}
        self.arrived: list[str] = []
        self._release: asyncio.Event | None = None
        self._ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self._schema = own_schema()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = free_port()
        self._thread = threading.Thread(target=self._run, name="ncmec-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the NCMEC stand-in did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ispws"

    def fail(self, call: str, *modes: str) -> None:
        """The next requests to ``call`` (submit, upload, fileinfo, finish, retract, xsd) misbehave, in order."""
        with self._lock:
            self.faults.setdefault(call, []).extend(modes)

    def finished(self) -> list[StoredReport]:
        with self._lock:
            return [r for r in self.reports.values() if r.status == "finished"]

    def by_status(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for r in self.reports.values():
                counts[r.status] = counts.get(r.status, 0) + 1
            return counts

    # ---------------------------------------------------------------- answers

    def _answer(
        self, code: int, description: str, *, status: int = 200, root: str = "reportResponse", **fields: Any
    ) -> web.Response:
        rid = str(uuid.uuid4())
        doc = etree.Element(root)
        etree.SubElement(doc, "responseCode").text = str(code)
        if root == "reportResponse":
            etree.SubElement(doc, "responseDescription").text = description
        for name, value in fields.items():
            if name == "files":
                files = etree.SubElement(doc, "files")
                for f in value:
                    etree.SubElement(files, "fileId").text = f
            elif value is not None:
                etree.SubElement(doc, name).text = str(value)
        return web.Response(
            body=etree.tostring(doc, xml_declaration=True, encoding="UTF-8"),
            status=status,
            content_type="application/xml",
            headers={"Request-ID": rid},
        )

    def _fault(self, call: str) -> str | None:
        with self._lock:
            queue = self.faults.get(call)
            return queue.pop(0) if queue else None

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return scheme == "Basic" and login == USERNAME and password == PASSWORD

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = request.match_info["call"]
        with self._lock:
            self.arrived.append(call)
        fault = self._fault(call)
        if fault == "hang":
            assert self._release is not None
            await self._release.wait()
            return await self._drop(request)
        if fault == "drop":
            return await self._drop(request)
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error", headers={"Request-ID": str(uuid.uuid4())})
        if fault == "auth" or not self._authorised(request):
            return self._log(call, self._answer(2000, "Authentication Required", status=401))
        if fault == "code1000":
            return self._log(call, self._answer(1000, "Server Error"))
        handler = getattr(self, f"_{call}", None)
        if handler is None:
            return self._log(call, self._answer(1210, "Resource Not Found", status=404))
        response: web.Response = await handler(request, fault)
        if fault == "apply_drop":
            return await self._drop(request)
        return self._log(call, response)

    def _log(self, call: str, response: web.Response) -> web.Response:
        body = response.body
        code = None
        if isinstance(body, bytes):
            found = etree.fromstring(body).find("responseCode")
            code = int(found.text) if found is not None and found.text else None
        with self._lock:
            self.calls.append((call, code, response.headers.get("Request-ID", "")))
        return response

    async def _status(self, request: web.Request, fault: str | None) -> web.Response:
        return self._answer(0, f"Remote User : {USERNAME}, Remote IP : {request.remote}")

    async def _xsd(self, request: web.Request, fault: str | None) -> web.Response:
        return web.Response(body=own_schema_bytes(), content_type="application/xml", headers={"Request-ID": str(uuid.uuid4())})

    def _report(self, raw: str | None) -> StoredReport | None:
        try:
            return self.reports.get(int(raw or ""))
        except ValueError:
            return None

    async def _submit(self, request: web.Request, fault: str | None) -> web.Response:
        body = await request.read()
        try:
            self._schema.check(body)
        except DocumentInvalid as exc:
            return self._answer(4100, f"Validation Failed: {exc}", status=400)
        with self._lock:
            report = StoredReport(id=next(self._ids), document=body)
            self.reports[report.id] = report
        return self._answer(0, "Success", reportId=report.id)

    def _gone(self, report: StoredReport | None, fault: str | None) -> web.Response | None:
        if fault == "expired" and report is not None:
            report.status = "expired"
        if report is None or report.status == "expired":
            return self._answer(5001, "Report does not exist")
        if report.status == "finished":
            return self._answer(5102, "Report already finished")
        if report.status == "retracted":
            return self._answer(5101, "Report already retracted")
        return None

    async def _upload(self, request: web.Request, fault: str | None) -> web.Response:
        reader = await request.multipart()
        report_id: str | None = None
        digest, size = hashlib.md5(), 0
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "id":
                report_id = (await part.read()).decode()
            elif part.name == "file":
                while chunk := await part.read_chunk(65536):
                    digest.update(chunk)
                    size += len(chunk)
        report = self._report(report_id)
        if (gone := self._gone(report, fault)) is not None:
            return gone
        assert report is not None
        file_id = f"f{next(self._file_ids):06d}"
        report.files[file_id] = {"md5": digest.hexdigest(), "size": size}
        return self._answer(0, "Success", reportId=report.id, fileId=file_id, hash=digest.hexdigest())

    async def _fileinfo(self, request: web.Request, fault: str | None) -> web.Response:
        body = await request.read()
        try:
            self._schema.check(body)
        except DocumentInvalid as exc:
            return self._answer(4100, f"Validation Failed: {exc}", status=400)
        doc = etree.fromstring(body)
        report = self._report(doc.findtext("reportId"))
        if (gone := self._gone(report, fault)) is not None:
            return gone
        assert report is not None
        if doc.findtext("fileId") not in report.files:
            return self._answer(5002, "File does not exist")
        report.fileinfos.append(body)
        return self._answer(0, "Success", reportId=report.id)

    async def _finish(self, request: web.Request, fault: str | None) -> web.Response:
        form = await request.post()
        report = self._report(str(form.get("id", "")))
        if (gone := self._gone(report, fault)) is not None:
            return gone
        assert report is not None
        report.status = "finished"
        return self._answer(0, "Success", root="reportDoneResponse", reportId=report.id, files=list(report.files))

    async def _retract(self, request: web.Request, fault: str | None) -> web.Response:
        form = await request.post()
        report = self._report(str(form.get("id", "")))
        if (gone := self._gone(report, fault)) is not None:
            return gone
        assert report is not None
        report.status = "retracted"
        return self._answer(0, "Success", reportId=report.id)

    # ---------------------------------------------------------------- the thread

    def release(self) -> None:
        """Let every hanging call end (without an answer)."""
        assert self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/ispws/{call}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


class PlatformStandIn:
    """The platform's side of an evidence fetch: serves files by path, checks hashguard's signature
    (``takedown.reports.evidence.verify_fetch``), answers 401 to an unsigned or wrongly signed fetch."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.files: dict[str, bytes] = {}
        self.fetches: list[tuple[str, bool]] = []  # (path, signature good)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = free_port()
        self._thread = threading.Thread(target=self._run, name="platform-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the platform stand-in did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        from takedown.reports.evidence import verify_fetch

        url = str(request.url)
        good = verify_fetch(
            self.secret,
            request.headers.get("X-Hashguard-Timestamp", ""),
            url,
            request.headers.get("X-Hashguard-Signature", ""),
        )
        path = request.match_info["path"]
        self.fetches.append((path, good))
        if not good:
            return web.Response(status=401, text="bad signature")
        if path not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[path], content_type="application/octet-stream")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{path}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
