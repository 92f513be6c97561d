"""The NCMEC hash-sharing API v2 connector (XML over HTTPS, HTTP Basic auth).

How it survives what broke earlier fetchers (HMA #1679, #1744, #2004):

- Entries are not in time order, so the only safe time checkpoint is the end of a window read to its
  last page. A fetch reads one window ``[from, to]`` (``to`` a few seconds before now) through the
  ``next`` links; after each page the checkpoint holds ``from``, ``to`` and the next link, so a
  resume asks for the same start and end times. A window is never split by time, so a single second
  holding more entries than a page (the "cursed second") is simply paged through.
- A paging link is kept while it is valid (NCMEC advises not keeping them long: 12 hours here); an
  older one, or one the API refuses, restarts the same window from its start. Pages read twice
  change nothing (the fetcher applies updates last-writer-wins per entry).
- A page that is not the documented XML is reported with its link and skipped (the next link is
  computed from ``start``/``size``/``max``), and read again on a later run. Only a window's first
  page, which has no paging parameters yet, cannot be skipped: the fetch stops there with an error
  (counted and retried at the next run) rather than guess.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp

from hashsets.exchanges import ncmec_xml
from hashsets.exchanges.base import (
    Checkpoint,
    Connector,
    CredentialRejected,
    Page,
    PageFailure,
    ProtocolError,
    Setting,
    SourceUnavailable,
    Verdict,
    Vote,
    clip,
)

ENVIRONMENTS = {
    "industry": "https://report.cybertip.org/hashsharing",
    "industry_test": "https://exttest.cybertip.org/hashsharing",
    "ngo": "https://hashsharing.ncmec.org/npo",
    "ngo_test": "https://hashsharing-test.ncmec.org/npo",
    "exploitative": "https://hashsharing.ncmec.org/exploitative",
}
VERSION = "v2"
PAGING_VALID_S = 12 * 3600
# Entries still being written at the window's end could be missed: stop a few seconds short of now.
SETTLE_S = 5
MAX_BODY = 64 << 20
TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=15)


class NcmecConnector(Connector):
    name: ClassVar[str] = "ncmec"
    description: ClassVar[str] = "NCMEC hash-sharing API v2 (industry, NGO and other environments)"
    hash_types: ClassVar[tuple[str, ...]] = ("md5", "sha1", "pdna", "pdq", "netclean", "videntifier", "tmk_pdqf")
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            name="environment",
            help="industry, industry_test, ngo, ngo_test, exploitative, or the base URL",
            default="industry",
            choices=tuple(ENVIRONMENTS),
        ),
        Setting(name="username", help="the NCMEC-issued user name (env:VAR or file:PATH)", secret=True),
        Setting(name="password", help="its password (env:VAR or file:PATH)", secret=True),
        Setting(name="esp_id", help="your own member id, for feedback (default: asked from /status)", required=False),
        Setting(
            name="settle_s",
            help="seconds short of now a window ends, for entries still being written (default 5)",
            required=False,
            default=str(SETTLE_S),
        ),
        Setting(
            name="downvote_reason",
            help="the negative-feedback reason name to send when a reviewer dismisses a match (default: the only one offered)",
            required=False,
        ),
    )
    supports_feedback: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        environment = self.config.get("environment", "industry")
        self.base = ENVIRONMENTS.get(environment, environment).rstrip("/")
        credential = f"{self.config['username']}:{self.config['password']}".encode()
        self._authorization = "Basic " + base64.b64encode(credential).decode("ascii")
        self.settle_s = max(0, int(self.config.get("settle_s", SETTLE_S)))
        self._esp_id: str | None = self.config.get("esp_id") or None
        self._reasons: dict[str, dict[str, str]] = {}

    async def _call(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": self._authorization}
        if body is not None:
            headers["Content-Type"] = "application/xml; charset=utf-8"
        try:
            async with self.session.request(method, url, data=body, headers=headers, timeout=TIMEOUT) as response:
                status = response.status
                data = await read_limited(response, MAX_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceUnavailable(f"NCMEC did not answer: {type(exc).__name__}") from None
        if status in (401, 403):
            raise CredentialRejected(f"NCMEC refused the credential (HTTP {status}): revoked or wrong")
        if status == 429 or status >= 500:
            raise SourceUnavailable(f"NCMEC answered HTTP {status}")
        return status, data

    def _entries_url(self, start: int, end: int) -> str:
        query = urlencode({"from": ncmec_xml.format_time(_at(start)), "to": ncmec_xml.format_time(_at(end))})
        return f"{self.base}/{VERSION}/entries?{query}"

    async def fetch(self, checkpoint: Checkpoint | None) -> AsyncIterator[Page]:
        state: dict[str, Any] = dict(checkpoint or {})
        start = int(state.get("from", 0))
        paging = state.get("paging")
        now = int(time.time())
        if isinstance(paging, dict) and now - int(paging.get("at", 0)) <= PAGING_VALID_S and int(paging["to"]) > start:
            end, path = int(paging["to"]), str(paging["next"])
            obtained = int(paging["at"])
        else:
            end, path, obtained = now - self.settle_s, "", now
        if end <= start:
            return
        restarted = False
        while True:
            url = self.base + path if path else self._entries_url(start, end)
            status, data = await self._call("GET", url)
            if status >= 400:
                if path and not restarted:  # the paging link expired or is refused: the same window again, once
                    path, obtained, restarted = "", int(time.time()), True
                    continue
                raise ProtocolError(f"NCMEC refused the entries request (HTTP {status})")
            position = path or f"/{VERSION}/entries (first page)"
            try:
                page = ncmec_xml.parse_entries(data, position)
            except ncmec_xml.UnreadablePage as exc:
                if not path:
                    raise ProtocolError(f"the first page of the window cannot be read: {exc}") from None
                try:
                    following = ncmec_xml.page_after(path)
                except ValueError:
                    raise ProtocolError(f"a page cannot be read and has no paging parameters to step past it: {exc}") from None
                yield Page(
                    updates=(),
                    checkpoint=_checkpoint(start, end, following, obtained),
                    failure=PageFailure(position=path, reason=clip(str(exc))),
                    source_time=_at(start),
                )
                if following is None:
                    return
                path = following
                continue
            if page.next:
                obtained = int(time.time()) if not path else obtained
            yield Page(
                updates=page.updates,
                checkpoint=_checkpoint(start, end, page.next or None, obtained),
                problems=page.problems,
                source_time=_at(end) if not page.next else _at(start),
            )
            if not page.next:
                return
            path = page.next

    async def refetch(self, position: str) -> Page | None:
        if not position.startswith("/"):
            return None
        status, data = await self._call("GET", self.base + position)
        if status >= 400:
            return None  # the link is no longer valid: its window was read again since
        try:
            page = ncmec_xml.parse_entries(data, position)
        except ncmec_xml.UnreadablePage as exc:
            return Page(updates=(), checkpoint={}, failure=PageFailure(position=position, reason=clip(str(exc))))
        return Page(updates=page.updates, checkpoint={}, problems=page.problems)

    async def _own_id(self) -> str:
        if self._esp_id is None:
            status, data = await self._call("GET", f"{self.base}/{VERSION}/status")
            if status >= 400:
                raise ProtocolError(f"NCMEC refused the status request (HTTP {status})")
            self._esp_id = ncmec_xml.parse_status(data)[0]
        return self._esp_id

    async def _reason_guid(self, kind: str) -> str:
        if kind not in self._reasons:
            status, data = await self._call("GET", f"{self.base}/{VERSION}/feedback/{kind}/reasons")
            if status >= 400:
                raise ProtocolError(f"NCMEC refused the feedback reasons request (HTTP {status})")
            self._reasons[kind] = ncmec_xml.parse_reasons(data)
        reasons = self._reasons[kind]
        wanted = self.config.get("downvote_reason")
        if wanted:
            if wanted not in reasons:
                raise ProtocolError(f"NCMEC offers no reason named {wanted!r} for {kind} (offered: {', '.join(reasons)})")
            return reasons[wanted]
        if len(reasons) != 1:
            raise ProtocolError(f"NCMEC offers {len(reasons)} reasons for {kind}: choose one with --set downvote_reason=NAME")
        return next(iter(reasons.values()))

    async def send_feedback(self, verdict: Verdict) -> None:
        member, _, entry = verdict.entry_id.partition("-")
        if not member or not entry:
            raise ProtocolError("not an NCMEC entry id (member-entry)")
        kind = ncmec_xml.fingerprint_type(verdict.hash_type)
        await self._own_id()  # feedback is given as a member: fail early if the credential cannot say who
        guid = None if verdict.vote is Vote.UP else await self._reason_guid(kind)
        body = ncmec_xml.feedback_body(verdict.vote is Vote.UP, guid)
        status, _ = await self._call("PUT", f"{self.base}/{VERSION}/entries/{member}/{entry}/{kind}/feedback", body)
        if status >= 400:
            raise ProtocolError(f"NCMEC refused the feedback (HTTP {status})")


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refused past ``limit`` bytes (a source must not fill the memory)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"the source's answer is larger than {limit >> 20} MiB")
        parts.append(chunk)
    return b"".join(parts)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _checkpoint(start: int, end: int, following: str | None, obtained: int) -> dict[str, Any]:
    if following is None:
        return {"from": end}
    return {"from": start, "paging": {"to": end, "next": following, "at": obtained}}
