"""The detector's HTTP edge: scan, lookup, health and metrics. Parsing and answering only; the shared
edge (errors, keys, body limits) is ``kernel.web``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import Any

from aiohttp import BodyPartReader, web
from msgspec import UNSET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detector.api import (
    MAX_LOOKUP_ITEMS,
    UPLOADER_FIELDS,
    BatchVerdict,
    Health,
    LookupBatch,
    LookupItem,
    LookupProbe,
    Readiness,
    ScanQuery,
    Verdict,
)
from detector.appkeys import HOLDER, SCANNER, TOOLS, VIDEO
from detector.scan import Outcome, ScanContext
from detector.tools.policy import activation_record
from detector.video_decode import VideoLimitExceeded
from detector.video_frames import parse_frames_json
from detector.video_scan import Spool, VideoScanner, limit_too_large
from kernel.api import MAX_TEXT, parse_moment
from kernel.appkeys import DB_HEALTH, METRICS, READY_DETAILS, SETTINGS
from kernel.errors import BadRequest, MissingField, PayloadTooLarge, ServiceError, UnsupportedMedia
from kernel.keys import DEFAULT_TENANT_ID, Principal, Role
from kernel.routes import Route, caller, decode
from kernel.web import CONTROLS, body_deadline, charge, query_fields, read_json_bytes, read_limited, text_field, utf8_text

log = logging.getLogger(__name__)

MAX_LOOKUP_BODY = 4 * 1024 * 1024


PLATFORM = frozenset({Role.PLATFORM})


async def read_upload(request: web.Request) -> tuple[bytes | Spool, dict[str, str]]:
    """The media bytes and the metadata fields (query parameters, then form fields) of a scan.

    Read whole, under HASHGUARD_BODY_TIMEOUT_S (408 when slower), before the scan asks for a hashing
    slot. A multipart body holds at most HASHGUARD_MAX_FORM_PARTS parts (the next one is refused before
    it is read: 100,000 tiny parts cost one part more than the limit, not a stall) and each field but
    the media at most HASHGUARD_MAX_FORM_FIELD_BYTES bytes. Text fields must be valid UTF-8: 400, never
    repaired.

    A video (``video/*``, as the body or the media part's type) is streamed to a private temporary
    file instead (``detector.video_scan.Spool``, at most HASHGUARD_VIDEO_MAX_BYTES), deleted by the scan.
    """
    settings = request.app[SETTINGS]
    limit = settings.max_upload_bytes
    videos = request.app.get(VIDEO)
    if videos is not None and (request.content_type.startswith("video/") or request.content_type == "multipart/form-data"):
        slack = settings.max_form_field_bytes * settings.max_form_parts if request.content_type == "multipart/form-data" else 0
        try:
            limit_too_large(request.content_length, videos.settings.limits.max_bytes + slack)
        except VideoLimitExceeded as exc:
            videos.refused(exc.limit)
            raise
        limit = max(limit, videos.settings.limits.max_bytes)
    max_parts, max_field = settings.max_form_parts, settings.max_form_field_bytes
    ctype = request.content_type
    multipart = ctype == "multipart/form-data"
    if request.content_length is not None and request.content_length > limit + (max_field * max_parts if multipart else 0):
        raise PayloadTooLarge(f"the upload is {request.content_length} bytes; at most {limit} bytes are accepted")
    fields: dict[str, str] = query_fields(request)
    if multipart:
        data: bytes | Spool | None = None
        try:
            async with body_deadline(request):
                reader = await request.multipart()
                parts = 0
                while (part := await reader.next()) is not None:
                    parts += 1
                    if parts > max_parts:
                        raise BadRequest(f"the multipart body has more than {max_parts} parts (HASHGUARD_MAX_FORM_PARTS)")
                    if not isinstance(part, BodyPartReader):
                        raise BadRequest("nested multipart bodies are not accepted")
                    if part.name == "media":
                        if data is not None:
                            raise BadRequest("the multipart body holds more than one 'media' part")
                        if videos is not None and (part.headers.get("Content-Type") or "").startswith("video/"):
                            data = await _spool(videos, part.read_chunk)
                        else:
                            data = await read_limited(part.read_chunk, settings.max_upload_bytes, "the upload")
                    elif part.name in ("content_id", "content_url", *UPLOADER_FIELDS):
                        raw = await read_limited(part.read_chunk, max_field, f"the field {part.name!r}")
                        fields[part.name] = utf8_text(part.name, raw)
                    else:
                        await read_limited(part.read_chunk, max_field, "a form field")
        except (ValueError, AssertionError) as exc:  # aiohttp's parser errors for broken multipart bodies
            if isinstance(data, Spool):
                data.discard()
            raise BadRequest(f"the multipart body is malformed: {exc}") from exc
        except BaseException:
            if isinstance(data, Spool):
                data.discard()
            raise
        if data is None:
            raise MissingField("media")
        return data, fields
    if videos is not None and ctype.startswith("video/"):
        async with body_deadline(request):
            return await _spool(videos, request.content.read), fields
    if ctype.startswith("image/") or ctype in ("application/octet-stream", ""):
        async with body_deadline(request):
            return await read_limited(request.content.read, limit, "the upload"), fields
    raise UnsupportedMedia(
        f"content type {ctype!r} is not accepted: send the image bytes as image/* or application/octet-stream,"
        " or multipart/form-data with the file in the field 'media'"
    )


async def _spool(videos: VideoScanner, read: Callable[[int], Awaitable[bytes]]) -> Spool:
    spool = videos.spool()
    try:
        return await spool.fill(read)
    except VideoLimitExceeded as exc:
        videos.refused(exc.limit)
        raise


def outcome_json(outcome: Outcome, *, distances: bool = False) -> dict[str, Any]:
    """The answer to a platform. ``distance`` only for a key granted distances: with it, one flipped bit
    per call reads a list entry back (issue 11), so by default a match says which entry, never how near."""
    matches = []
    for m in outcome.matches:
        answer: dict[str, Any] = {
            "hashset": m.hashset,
            "hashset_version": m.hashset_version,
            "entry_id": m.entry_id,
            "tool": m.tool,
            "tool_version": m.tool_version,
            "approval_id": m.approval_id,
            "approval_reason": m.approval_reason,
            "transform": m.transform,
        }
        if distances:
            answer["distance"] = m.distance
        if m.query_share is not None:  # a video match: how much of each video matched, never a hash
            answer["query_share"] = m.query_share
            answer["index_share"] = m.index_share
            answer["matched_frames"] = m.matched_frames
        matches.append(answer)
    return {
        "scan_id": str(outcome.scan_id),
        "content_id": outcome.content_id,
        "verdict": outcome.verdict,
        "matches": matches,
        "ticket_id": outcome.ticket_id,
        "elapsed_ms": outcome.elapsed_ms,
    }


def uploader_fields(fields: dict[str, str]) -> dict[str, object] | None:
    """The upload's account details a scan may carry (``uploader_*``, ``upload_time``), checked; None when absent."""
    found: dict[str, object] = {}
    for name in UPLOADER_FIELDS:
        value = text_field(name, fields.get(name), required=False)
        if value is None:
            continue
        key = name.removeprefix("uploader_")
        if name == "uploader_ip":
            try:
                value = str(ip_address(value))
            except ValueError:
                raise BadRequest("'uploader_ip' must be an IPv4 or IPv6 address") from None
        elif name == "uploader_port":
            if not value.isdigit() or not 1 <= int(value) <= 65535:
                raise BadRequest("'uploader_port' must be a port number, 1-65535")
            found[key] = int(value)
            continue
        elif name == "upload_time":
            try:
                found[key] = parse_moment("'upload_time'", value)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            continue
        found[key] = value
    return found or None


def _tenant(principal: Principal) -> int:
    """The tenant a scan's records belong to: the platform key's own. Only platform keys reach the
    scan routes; a staff key, were one ever admitted, would record into the default tenant."""
    return DEFAULT_TENANT_ID if principal.tenant_id is None else principal.tenant_id


async def scan(request: web.Request) -> web.Response:
    started = time.perf_counter()
    principal = caller(request)
    data, fields = await read_upload(request)
    try:
        context = ScanContext(
            content_id=text_field("content_id", fields.get("content_id"), required=True) or "",
            content_url=text_field("content_url", fields.get("content_url"), required=False),
            api_key_id=principal.key_id,
            tenant_id=_tenant(principal),
            uploader=uploader_fields(fields),
        )
    except BaseException:
        if isinstance(data, Spool):
            data.discard()
        raise
    if isinstance(data, Spool):  # a video: decoded in a worker process, the file deleted by the scan
        outcome = await request.app[VIDEO].scan(data, context, request.app[SCANNER], request.app[HOLDER])
    else:
        outcome = await request.app[SCANNER].scan(data, context)
    metrics = request.app[METRICS]
    metrics.scans.labels(endpoint="scan", verdict=outcome.verdict).inc()
    metrics.scan_seconds.labels(endpoint="scan").observe(time.perf_counter() - started)
    for m in outcome.matches:
        if m.transform != "original":
            metrics.variant_matches.labels(tool=m.tool, transform=m.transform).inc()
    return web.json_response(outcome_json(outcome, distances=request[CONTROLS].distances))


def _lookup_context(request: web.Request, item: LookupItem, where: str) -> tuple[ScanContext, dict[str, bytes]]:
    tools = request.app[TOOLS]
    parsed: dict[str, bytes] = {}
    for tool_name, value in item.hashes.items():
        tool = tools.get(tool_name)
        try:
            parsed[tool.name] = tool.parse_hex(value)
        except ServiceError as exc:
            exc.message = f"{where}: {exc.message}"
            raise
    if item.vpdq is not None:  # a video's frame list, hashed by the platform
        try:
            parsed["vpdq"] = parse_frames_json([list(frame) for frame in item.vpdq])
        except ServiceError as exc:
            exc.message = f"{where}: {exc.message}"
            raise
    principal = caller(request)
    context = ScanContext(
        content_id=item.content_id, content_url=item.content_url, api_key_id=principal.key_id, tenant_id=_tenant(principal)
    )
    return context, parsed


async def lookup(request: web.Request) -> web.Response:
    started = time.perf_counter()
    try:
        raw = await read_json_bytes(request, MAX_LOOKUP_BODY)
    except PayloadTooLarge as exc:
        # Refused before it is read: a body this size is no batch we would answer (issue 11, finding 13).
        exc.message += f"; a lookup batch holds at most {MAX_LOOKUP_ITEMS} items"
        raise
    # One decode into typed items; the probe before it only looks for the key "items".
    batch = decode(raw, LookupProbe).items is not UNSET
    if batch:
        items = decode(raw, LookupBatch).items
        # The request paid one token in authenticate; a batch pays one per item.
        charge(request, caller(request), len(items) - 1)
        parsed = [_lookup_context(request, item, f"items[{i}]") for i, item in enumerate(items)]
    else:
        parsed = [_lookup_context(request, decode(raw, LookupItem), "the body")]
    outcomes = await request.app[SCANNER].lookup(parsed)
    metrics = request.app[METRICS]
    for outcome in outcomes:
        metrics.scans.labels(endpoint="lookup", verdict=outcome.verdict).inc()
    elapsed = time.perf_counter() - started
    metrics.scan_seconds.labels(endpoint="lookup").observe(elapsed)
    distances = request[CONTROLS].distances
    if batch:
        return web.json_response(
            {"items": [outcome_json(o, distances=distances) for o in outcomes], "elapsed_ms": round(elapsed * 1000, 3)}
        )
    return web.json_response(outcome_json(outcomes[0], distances=distances))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems: list[str] = []
    health = request.app[DB_HEALTH]  # a ping of its own, cached ~1 s: a busy pool is not a lost database
    if not await health.reachable():
        problems.append(f"database unreachable: {health.problem}")
    holder = request.app[HOLDER]
    snapshot = holder.current
    if snapshot is None:
        problems.append("index not loaded")
    elif not snapshot.active_tools():
        problems.append("no detection tool is active: record an approval for HASHGUARD_JURISDICTIONS or allow a tool locally")
    stale_s = request.app[SETTINGS].index_stale_s
    if holder.confirmed_at is not None and (age := time.monotonic() - holder.confirmed_at) > stale_s:
        # Reloads keep failing: the lists or approvals may have changed (a tool suspended) unseen.
        problems.append(f"index stale: not confirmed against the database for {age:.0f} s (HASHGUARD_INDEX_STALE_S={stale_s:g})")
    body: dict[str, Any] = {"status": "not_ready" if problems else "ready", "problems": problems}
    if snapshot is not None:
        body["index"] = {
            "loaded_at": snapshot.loaded_at.isoformat(),
            "entries_by_tool": snapshot.entries_by_tool(),
            "hashsets": [
                {"name": v.hashset, "version": v.version, "tool": v.tool, "entries": v.entries, "status": v.status}
                for v in snapshot.versions
            ],
            # Lists held in a hash type no enabled tool computes: not matched, reported, never dropped silently.
            "coverage_gaps": [
                {"name": v.hashset, "version": v.version, "tool": v.tool, "entries": v.entries} for v in snapshot.coverage_gaps
            ],
        }
        body["tools"] = [activation_record(a) for a in snapshot.activations.values()]
    for name, detail in request.app.get(READY_DETAILS, {}).items():  # e.g. hash-sharing sources' freshness
        body[name] = detail()
    return web.json_response(body, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "video/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["media"],
                "properties": {
                    "media": {"type": "string", "format": "binary"},
                    "content_id": {"type": "string", "maxLength": MAX_TEXT},
                    "content_url": {"type": "string", "maxLength": MAX_TEXT},
                    **{
                        name: {"type": "string", "maxLength": 64 if name != "uploader_account_id" else MAX_TEXT}
                        for name in UPLOADER_FIELDS
                    },
                },
            }
        },
    },
}


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/healthz",
        handler=healthz,
        summary="The process is alive",
        responses={200: ("Alive.", Health)},
    ),
    Route(
        method="GET",
        path="/readyz",
        handler=readyz,
        summary="Database reachable, index loaded, a detection tool active; reports list versions and every tool's activation",
        responses={
            200: ("Ready. `index.hashsets`: each loaded list; `index.coverage_gaps`: lists no enabled tool computes.", Readiness),
            503: ("Not ready; `problems` says why.", Readiness),
        },
    ),
    Route(
        method="GET",
        path="/metrics",
        handler=metrics,
        summary="Prometheus metrics (names prefixed hashguard_)",
        responses={200: ("Prometheus text format.", None)},
        media={200: "text/plain"},
    ),
    Route(
        method="POST",
        path="/v1/scan",
        handler=scan,
        roles=PLATFORM,
        summary="Scan an upload",
        description="Decodes the media, hashes it with every enabled tool and matches it against every active list. "
        "At most HASHGUARD_MAX_UPLOAD_BYTES bytes and HASHGUARD_MAX_PIXELS pixels.",
        raw_body=_UPLOAD_BODY,
        query=ScanQuery,
        responses={200: ("The verdict.", Verdict)},
        errors=frozenset({400, 413, 415, 422, 503}),
    ),
    Route(
        method="POST",
        path="/v1/lookup",
        handler=lookup,
        roles=PLATFORM,
        summary="Look up hashes the platform computed itself",
        description=f'One item, or {{"items": [...]}} with up to {MAX_LOOKUP_ITEMS} items answered in order.',
        body=(LookupItem, LookupBatch),
        responses={200: ('A verdict, or {"items": [verdict, ...], "elapsed_ms"} for a batch.', (Verdict, BatchVerdict))},
        errors=frozenset({503}),
    ),
]
