"""The detector's HTTP edge: scan, lookup, health and metrics. Parsing and answering only; the shared
edge (errors, keys, body limits) is ``kernel.web``."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import BodyPartReader, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detector.appkeys import HOLDER, SCANNER, TOOLS
from detector.scan import Outcome, ScanContext
from detector.tools.policy import activation_record
from kernel import keystore
from kernel.appkeys import METRICS, POOL, SETTINGS
from kernel.errors import BadRequest, MissingField, PayloadTooLarge, ServiceError, UnsupportedMedia
from kernel.keys import Role
from kernel.web import Handler, authenticate, read_json_body, read_limited, text_field

log = logging.getLogger(__name__)

MAX_LOOKUP_ITEMS = 1000
MAX_LOOKUP_BODY = 4 * 1024 * 1024
MAX_FIELD_BYTES = 4096


PLATFORM = frozenset({Role.PLATFORM})


async def read_upload(request: web.Request) -> tuple[bytes, dict[str, str]]:
    """The media bytes and the metadata fields (query parameters, then form fields) of a scan."""
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit + (
        MAX_FIELD_BYTES * 4 if request.content_type == "multipart/form-data" else 0
    ):
        raise PayloadTooLarge(f"the upload is {request.content_length} bytes; at most {limit} bytes are accepted")
    fields: dict[str, str] = dict(request.query)
    ctype = request.content_type
    if ctype == "multipart/form-data":
        data: bytes | None = None
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise BadRequest("nested multipart bodies are not accepted")
                if part.name == "media":
                    data = await read_limited(part.read_chunk, limit, "the upload")
                elif part.name in ("content_id", "content_url"):
                    raw = await read_limited(part.read_chunk, MAX_FIELD_BYTES, f"the field {part.name!r}")
                    fields[part.name] = raw.decode("utf-8", errors="replace")
                else:
                    await read_limited(part.read_chunk, limit, "a form field")
        except (ValueError, AssertionError) as exc:  # aiohttp's parser errors for broken multipart bodies
            raise BadRequest(f"the multipart body is malformed: {exc}") from exc
        if data is None:
            raise MissingField("media")
        return data, fields
    if ctype.startswith("image/") or ctype in ("application/octet-stream", ""):
        return await read_limited(request.content.read, limit, "the upload"), fields
    raise UnsupportedMedia(
        f"content type {ctype!r} is not accepted: send the image bytes as image/* or application/octet-stream,"
        " or multipart/form-data with the file in the field 'media'"
    )


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "scan_id": str(outcome.scan_id),
        "content_id": outcome.content_id,
        "verdict": outcome.verdict,
        "matches": [
            {
                "hashset": m.hashset,
                "hashset_version": m.hashset_version,
                "entry_id": m.entry_id,
                "tool": m.tool,
                "tool_version": m.tool_version,
                "distance": m.distance,
                "approval_id": m.approval_id,
                "approval_reason": m.approval_reason,
            }
            for m in outcome.matches
        ],
        "ticket_id": outcome.ticket_id,
        "elapsed_ms": outcome.elapsed_ms,
    }


async def scan(request: web.Request) -> web.Response:
    started = time.perf_counter()
    principal = await authenticate(request, PLATFORM)
    data, fields = await read_upload(request)
    context = ScanContext(
        content_id=text_field("content_id", fields.get("content_id"), required=True) or "",
        content_url=text_field("content_url", fields.get("content_url"), required=False),
        api_key_id=principal.key_id,
    )
    outcome = await request.app[SCANNER].scan(data, context)
    metrics = request.app[METRICS]
    metrics.scans.labels(endpoint="scan", verdict=outcome.verdict).inc()
    metrics.scan_seconds.labels(endpoint="scan").observe(time.perf_counter() - started)
    return web.json_response(outcome_json(outcome))


def _parse_lookup_item(request: web.Request, item: object, where: str) -> tuple[ScanContext, dict[str, bytes]]:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be a JSON object")
    content_id = item.get("content_id")
    if content_id is not None and not isinstance(content_id, str):
        raise BadRequest(f"{where}: content_id must be a string")
    content_url = item.get("content_url")
    if content_url is not None and not isinstance(content_url, str):
        raise BadRequest(f"{where}: content_url must be a string")
    hashes = item.get("hashes")
    if not isinstance(hashes, dict) or not hashes:
        raise BadRequest(f"{where}: 'hashes' must be a non-empty object of tool name to hex hash")
    tools = request.app[TOOLS]
    parsed: dict[str, bytes] = {}
    for tool_name, value in hashes.items():
        tool = tools.get(tool_name)
        if not isinstance(value, str):
            raise BadRequest(f"{where}: the {tool_name} hash must be a hex string")
        try:
            parsed[tool.name] = tool.parse_hex(value)
        except ServiceError as exc:
            exc.message = f"{where}: {exc.message}"
            raise
    context = ScanContext(
        content_id=text_field(f"{where}.content_id", content_id, required=True) or "",
        content_url=text_field(f"{where}.content_url", content_url, required=False),
        api_key_id=None,
    )
    return context, parsed


async def lookup(request: web.Request) -> web.Response:
    started = time.perf_counter()
    principal = await authenticate(request, PLATFORM)
    body = await read_json_body(request, MAX_LOOKUP_BODY)
    batch = isinstance(body, dict) and "items" in body
    if batch:
        items = body["items"]
        if not isinstance(items, list) or not items:
            raise BadRequest("'items' must be a non-empty array")
        if len(items) > MAX_LOOKUP_ITEMS:
            raise BadRequest(f"a batch holds at most {MAX_LOOKUP_ITEMS} items, not {len(items)}")
        parsed = [_parse_lookup_item(request, item, f"items[{i}]") for i, item in enumerate(items)]
    else:
        parsed = [_parse_lookup_item(request, body, "the body")]
    parsed = [
        (ScanContext(content_id=c.content_id, content_url=c.content_url, api_key_id=principal.key_id), h) for c, h in parsed
    ]
    outcomes = await request.app[SCANNER].lookup(parsed)
    metrics = request.app[METRICS]
    for outcome in outcomes:
        metrics.scans.labels(endpoint="lookup", verdict=outcome.verdict).inc()
    elapsed = time.perf_counter() - started
    metrics.scan_seconds.labels(endpoint="lookup").observe(elapsed)
    if batch:
        return web.json_response({"items": [outcome_json(o) for o in outcomes], "elapsed_ms": round(elapsed * 1000, 3)})
    return web.json_response(outcome_json(outcomes[0]))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems: list[str] = []
    try:
        async with request.app[POOL].acquire(timeout=2) as conn:
            await keystore.ping(conn)
    except Exception as exc:  # any failure to reach the database means not ready
        problems.append(f"database unreachable: {type(exc).__name__}")
    snapshot = request.app[HOLDER].current
    if snapshot is None:
        problems.append("index not loaded")
    elif not snapshot.active_tools():
        problems.append("no detection tool is active: record an approval for HASHGUARD_JURISDICTIONS or allow a tool locally")
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
    return web.json_response(body, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


ROUTES: Mapping[tuple[str, str], Handler] = {
    ("GET", "/healthz"): healthz,
    ("GET", "/readyz"): readyz,
    ("GET", "/metrics"): metrics,
    ("POST", "/v1/scan"): scan,
    ("POST", "/v1/lookup"): lookup,
}


def setup_routes(app: web.Application) -> None:
    for (method, path), handler in ROUTES.items():
        app.router.add_route(method, path, handler)
    # Imported here: the tool registry's admin handlers import this module for authenticate().
    from detector.approvals import http as approvals_http

    approvals_http.setup_routes(app)
