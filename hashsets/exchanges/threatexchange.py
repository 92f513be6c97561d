"""The Meta ThreatExchange connector (Graph API): one privacy group's ``threat_updates``.

Facts of the wire format (as python-threatexchange's client reads it): ``GET {base}/{group}/threat_updates/``
with ``access_token``, ``start_time``, ``stop_time`` (Unix seconds), ``limit``, ``fields`` and ``types``;
the answer is ``{"data": [...], "paging": {"next": URL}}``, each update with ``id``, ``indicator`` (the
hash), ``type`` (``HASH_PDQ``, ``HASH_MD5``, ...), ``last_updated`` and ``should_delete``; updates come in
time order. A refused token is an ``OAuthException`` (code 190) error body.

A fetch reads ``[start, now)``; the checkpoint after each page keeps that window and the ``next`` link
**without its access token** (Graph API puts the token in the link; the database must not hold it):
the token is added again when the link is followed. One source follows one privacy group.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from hashsets.exchanges.base import (
    Checkpoint,
    Connector,
    CredentialRejected,
    EntryProblem,
    Page,
    ProtocolError,
    Setting,
    SourceUnavailable,
    Update,
)
from hashsets.exchanges.ncmec import read_limited

BASE_URL = "https://graph.facebook.com/v26.0"
TYPES = {"HASH_PDQ": "pdq", "HASH_MD5": "md5", "HASH_VIDEO_MD5": "md5", "HASH_SHA256": "sha256"}
FIELDS = "id,indicator,type,last_updated,should_delete"
TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=15)
MAX_BODY = 64 << 20
LINK_VALID_S = 3600


def without_token(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class ThreatExchangeConnector(Connector):
    name: ClassVar[str] = "threatexchange"
    description: ClassVar[str] = "Meta ThreatExchange: one privacy group's threat_updates (Graph API)"
    hash_types: ClassVar[tuple[str, ...]] = ("pdq", "md5", "sha256")
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(name="base_url", help="the Graph API's base URL with its version", default=BASE_URL),
        Setting(name="access_token", help="the app's access token (env:VAR or file:PATH)", secret=True),
        Setting(name="privacy_group", help="the privacy group's id"),
        Setting(
            name="types", help="indicator types, comma-separated", default="HASH_PDQ,HASH_MD5,HASH_VIDEO_MD5", required=False
        ),
        Setting(name="page_size", help="updates per page", default="500", required=False),
    )

    def __init__(self, config: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.base = self.config.get("base_url", BASE_URL).rstrip("/")
        self.group = self.config["privacy_group"].strip()

    async def _get(self, url: str, params: Mapping[str, Any]) -> Any:
        query = {**params, "access_token": self.config["access_token"]}
        try:
            async with self.session.get(url, params=query, timeout=TIMEOUT) as response:
                status = response.status
                data = await read_limited(response, MAX_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceUnavailable(f"ThreatExchange did not answer: {type(exc).__name__}") from None
        if status == 429 or status >= 500:
            raise SourceUnavailable(f"ThreatExchange answered HTTP {status}")
        try:
            body = json.loads(data)
        except ValueError:
            raise ProtocolError(f"ThreatExchange answered HTTP {status} with a body that is not JSON") from None
        error = body.get("error") if isinstance(body, dict) else None
        if status in (401, 403) or (
            isinstance(error, dict) and (error.get("type") == "OAuthException" or error.get("code") == 190)
        ):
            raise CredentialRejected(f"ThreatExchange refused the access token (HTTP {status}): revoked, expired or wrong")
        if status >= 400:
            return None
        return body

    async def fetch(self, checkpoint: Checkpoint | None) -> AsyncIterator[Page]:
        state = dict(checkpoint or {})
        start = int(state.get("start", 0))
        stop = int(state.get("stop", 0))
        link = str(state.get("next") or "")
        if not link or time.time() - int(state.get("at", 0)) > LINK_VALID_S:
            link, stop = "", int(time.time())
        # The window is inclusive of its start second, which the last fetch ended on: updates written
        # later in that same second are asked for again (re-applying one is harmless, missing one is not).
        if stop < start:
            return
        restarted = False
        while True:
            if link:
                url, params = link, {}
            else:
                url = f"{self.base}/{self.group}/threat_updates/"
                params = {
                    "start_time": start,
                    "stop_time": stop,
                    "limit": self.config.get("page_size", "500"),
                    "fields": FIELDS,
                    "types": self.config.get("types", "HASH_PDQ,HASH_MD5,HASH_VIDEO_MD5"),
                }
            body = await self._get(url, params)
            if body is None:
                if link and not restarted:  # the cursor expired or is refused: the window again, once
                    link, restarted = "", True
                    continue
                raise ProtocolError("ThreatExchange refused the threat_updates request")
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise ProtocolError("a threat_updates page has no data list (no way past it without its next link)")
            following = str((body.get("paging") or {}).get("next") or "")
            updates, problems = self._updates(data, f"threat_updates start_time={start} page")
            if following:
                link = without_token(following)
                yield Page(
                    updates=updates,
                    problems=problems,
                    checkpoint={"start": start, "stop": stop, "next": link, "at": int(time.time())},
                    source_time=datetime.fromtimestamp(start, UTC),
                )
                continue
            yield Page(
                updates=updates, problems=problems, checkpoint={"start": stop}, source_time=datetime.fromtimestamp(stop, UTC)
            )
            return

    def _updates(self, data: list[Any], position: str) -> tuple[list[Update], list[EntryProblem]]:
        updates: list[Update] = []
        problems: list[EntryProblem] = []
        for i, item in enumerate(data, 1):
            try:
                ident = str(int(item["id"]))
                kind = str(item["type"])
                modified = datetime.fromtimestamp(int(item["last_updated"]), UTC)
                deleted = bool(item.get("should_delete"))
                indicator = str(item.get("indicator") or "").strip()
            except (KeyError, TypeError, ValueError, OverflowError):
                problems.append(EntryProblem(position=f"{position} item {i}", reason="an update lacks id, type or last_updated"))
                continue
            tool = TYPES.get(kind)
            if tool is None:
                continue
            if not deleted and not indicator:
                problems.append(
                    EntryProblem(position=f"{position} item {i}", reason="an update has no indicator", entry_id=ident)
                )
                continue
            updates.append(
                Update(
                    entry_id=f"{self.group}-{ident}",
                    fingerprints={} if deleted else {tool: indicator},
                    updated_at=modified,
                    deleted=deleted,
                    classification=None,
                )
            )
        return updates, problems
