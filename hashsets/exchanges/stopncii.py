"""The StopNCII.org connector (JSON over HTTPS; the ``Ocp-Apim-Subscription-Key`` and ``x-functions-key`` headers).

Facts of the wire format (as python-threatexchange's client reads it): ``GET {base}/FetchHashes`` with
``startTimestamp``, ``pageSize`` and, after the first page, ``nextPageToken``; the answer holds
``hashRecords`` (``signalType``, ``hashValue``, ``hashStatus``, ``lastModtimestamp``, ...),
``hasMoreRecords``, ``nextPageToken`` and ``nextSetTimestamp`` (the start of the next run). A record is
the current state of its hash: ``Withdrawn``/``Deleted`` remove it. Feedback is ``POST {base}/SubmitFeedback``
(its own function key) with ``hashFeedbacks`` of ``hashValue`` and ``feedbackValue`` (Blocked, NotBlocked).

Records have no id of their own: hashguard names one ``TYPE-`` plus a digest of the hash, never the hash.
The checkpoint keeps the continuation token with the start timestamp it belongs to while it is fresh
(an hour); an older or refused one restarts the run from the same start timestamp.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

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
    Verdict,
    Vote,
    clip,
)
from hashsets.exchanges.ncmec import read_limited

BASE_URL = "https://api.stopncii.org/v1"
TYPES = {"ImagePDQ": "pdq", "VideoMD5": "md5", "VideoTMK": "tmk"}
DELETED = {"Withdrawn", "Deleted"}
TOKEN_VALID_S = 3600
DEFAULT_START = 10
TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=15)
MAX_BODY = 64 << 20


def entry_id(signal_type: str, value: str) -> str:
    return f"{signal_type}-{hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]}"


class StopNciiConnector(Connector):
    name: ClassVar[str] = "stopncii"
    description: ClassVar[str] = "StopNCII.org hashes of intimate images shared without consent"
    hash_types: ClassVar[tuple[str, ...]] = ("pdq", "md5", "tmk")
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(name="base_url", help="the API's base URL", default=BASE_URL),
        Setting(name="subscription_key", help="Ocp-Apim-Subscription-Key (env:VAR or file:PATH)", secret=True),
        Setting(name="fetch_key", help="the FetchHashes function key (env:VAR or file:PATH)", secret=True),
        Setting(name="feedback_key", help="the SubmitFeedback function key, to send verdicts", secret=True, required=False),
        Setting(name="page_size", help="records per page", default="800", required=False),
    )
    supports_feedback: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.base = self.config.get("base_url", BASE_URL).rstrip("/")
        self.page_size = int(self.config.get("page_size", "800"))

    async def _call(
        self, method: str, endpoint: str, key: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> tuple[int, bytes]:
        headers = {"Ocp-Apim-Subscription-Key": self.config["subscription_key"], "x-functions-key": key}
        try:
            async with self.session.request(
                method, f"{self.base}/{endpoint}", params=params, json=body, headers=headers, timeout=TIMEOUT
            ) as response:
                status = response.status
                data = await read_limited(response, MAX_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceUnavailable(f"StopNCII did not answer: {type(exc).__name__}") from None
        if status in (401, 403):
            raise CredentialRejected(f"StopNCII refused the keys (HTTP {status}): revoked or wrong")
        if status == 429 or status >= 500:
            raise SourceUnavailable(f"StopNCII answered HTTP {status}")
        return status, data

    async def fetch(self, checkpoint: Checkpoint | None) -> AsyncIterator[Page]:
        state = dict(checkpoint or {})
        start = int(state.get("start", DEFAULT_START))
        token = str(state.get("token") or "")
        obtained = int(state.get("at", 0))
        if token and time.time() - obtained > TOKEN_VALID_S:
            token = ""
        restarted = False
        while True:
            params: dict[str, Any] = {"startTimestamp": start, "pageSize": self.page_size}
            if token:
                params["nextPageToken"] = token
            status, data = await self._call("GET", "FetchHashes", self.config["fetch_key"], params=params)
            if status >= 400:
                if token and not restarted:  # the token expired or is refused: the run again from its start, once
                    token, restarted = "", True
                    continue
                raise ProtocolError(f"StopNCII refused FetchHashes (HTTP {status})")
            position = f"FetchHashes startTimestamp={start}" + (" (continued)" if token else "")
            try:
                answer = json.loads(data)
                records = answer["hashRecords"]
                more = bool(answer["hasMoreRecords"])
                following = answer.get("nextPageToken") or ""
                next_start = int(answer["nextSetTimestamp"])
                if not isinstance(records, list) or (more and not following):
                    raise ValueError("hashRecords is not a list, or more records but no token")
            except (ValueError, KeyError, TypeError) as exc:
                # Without the token there is no way past this page: stop here and retry at the next run.
                raise ProtocolError(f"a FetchHashes page cannot be read: {clip(str(exc), 200)}") from None
            updates, problems = _records(records, position)
            if more:
                now = int(time.time()) if following != token else obtained
                yield Page(
                    updates=updates,
                    problems=problems,
                    checkpoint={"start": start, "token": following, "at": now},
                    source_time=datetime.fromtimestamp(start, UTC),
                )
                token, obtained = following, now
                continue
            yield Page(
                updates=updates,
                problems=problems,
                checkpoint={"start": next_start},
                source_time=datetime.fromtimestamp(next_start, UTC),
            )
            return

    async def send_feedback(self, verdict: Verdict) -> None:
        key = self.config.get("feedback_key")
        if not key:
            raise ProtocolError("no feedback_key is set for this StopNCII source")
        if verdict.value is None:
            raise ProtocolError("the entry's hash is no longer held")
        feedback: dict[str, Any] = {
            "hashValue": verdict.value.hex(),
            "feedbackValue": "Blocked" if verdict.vote is Vote.UP else "NotBlocked",
            "tags": [],
        }
        status, _ = await self._call("POST", "SubmitFeedback", key, body={"count": 1, "hashFeedbacks": [feedback]})
        if status >= 400:
            raise ProtocolError(f"StopNCII refused the feedback (HTTP {status})")


def _records(records: list[Any], position: str) -> tuple[list[Update], list[EntryProblem]]:
    updates: list[Update] = []
    problems: list[EntryProblem] = []
    for i, record in enumerate(records, 1):
        where = f"{position} record {i}"
        try:
            kind = str(record["signalType"])
            value = str(record["hashValue"]).strip()
            status = str(record.get("hashStatus", "Active"))
            modified = datetime.fromtimestamp(int(record["lastModtimestamp"]), UTC)
        except (KeyError, TypeError, ValueError, OverflowError):
            problems.append(EntryProblem(position=where, reason="a record lacks signalType, hashValue or lastModtimestamp"))
            continue
        tool = TYPES.get(kind)
        if tool is None or not value:
            continue  # Text, URL, ...: not hashes hashguard matches
        deleted = status in DELETED
        updates.append(
            Update(
                entry_id=entry_id(kind, value),
                fingerprints={} if deleted else {tool: value},
                updated_at=modified,
                deleted=deleted,
            )
        )
    return updates, problems
