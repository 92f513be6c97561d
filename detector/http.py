"""The detector's HTTP edge: parsing requests, authentication, JSON errors. No domain logic here."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import BodyPartReader, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detector import pg
from detector.appkeys import HOLDER, KEY_CACHE, METRICS, POOL, SCANNER, SETTINGS, TOOLS
from detector.auth import Principal, Role, key_digest, parse_bearer
from detector.errors import BadRequest, DetectorError, Forbidden, MissingField, PayloadTooLarge, Unauthorized, UnsupportedMedia
from detector.openapi import openapi_document
from detector.scan import Outcome, ScanContext
from detector.tools.policy import activation_record

log = logging.getLogger(__name__)

MAX_LOOKUP_ITEMS = 1000
MAX_LOOKUP_BODY = 4 * 1024 * 1024
MAX_FIELD_BYTES = 4096
MAX_CONTENT_ID = 1024
_CHUNK = 256 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": {"code", "message"}}`` and is counted; nothing leaks a traceback."""
    request_id = request.headers.get("X-Request-ID", "")[:128] or uuid.uuid4().hex
    code: str | None = None
    try:
        response = await handler(request)
    except DetectorError as exc:
        code = exc.code
        response = error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = (exc.reason or "error").lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.reason or code)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, request_id)
        code = "internal_error"
        response = error_response(500, code, "an internal error occurred; hold the upload and retry")
    if code is not None:
        request.app[METRICS].errors.labels(code=code).inc()
    response.headers["X-Request-ID"] = request_id
    return response


async def authenticate(request: web.Request, roles: frozenset[Role]) -> Principal:
    secret = parse_bearer(request.headers.get("Authorization"))
    if secret is None:
        raise Unauthorized()
    digest = key_digest(secret)
    cache = request.app[KEY_CACHE]
    ttl = request.app[SETTINGS].key_cache_s
    now = time.monotonic()
    cached = cache.get(digest)
    if cached is not None and cached[0] > now:
        principal = cached[1]
    else:
        async with request.app[POOL].acquire() as conn:
            principal = await pg.find_key(conn, digest)
        if len(cache) > 10_000:  # bounded: a flood of random keys cannot grow it without limit
            cache.clear()
        if ttl > 0:
            cache[digest] = (now + ttl, principal)
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked")
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not call {request.method} {request.path}")
    return principal


PLATFORM = frozenset({Role.PLATFORM})


def _text_field(name: str, value: str | None, *, required: bool) -> str | None:
    if value is None or not value.strip():
        if required:
            raise MissingField(name)
        return None
    value = value.strip()
    if len(value) > MAX_CONTENT_ID:
        raise BadRequest(f"the field {name!r} is longer than {MAX_CONTENT_ID} characters")
    # PostgreSQL text refuses NUL and lone surrogates; refuse them here, before a match's evidence
    # write would fail and turn a clear client error into a 500.
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise BadRequest(f"the field {name!r} holds a NUL or an invalid character")
    return value


async def _read_limited(read: Callable[[int], Awaitable[bytes]], limit: int, what: str) -> bytes:
    """Read a body or form part to its end, refusing with 413 as soon as it passes ``limit``."""
    parts: list[bytes] = []
    size = 0
    while chunk := await read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def read_json_body(request: web.Request, limit: int, *, optional: bool = False) -> Any:
    """The decoded JSON body of a request: the one reader every context's JSON endpoints use.

    The same mistake gets the same answer everywhere: a declared content type other than
    application/json is 415, a body over ``limit`` is 413 (refused before it is read whole),
    an empty or undecodable body is 400. An empty body is ``{}`` where ``optional``.
    """
    if "Content-Type" in request.headers and request.content_type != "application/json":
        raise UnsupportedMedia(f"content type {request.content_type!r} is not accepted: send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is {request.content_length} bytes; at most {limit} bytes are accepted")
    raw = await _read_limited(request.content.read, limit, "the body")
    if not raw.strip():
        if optional:
            return {}
        raise BadRequest("a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


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
                    data = await _read_limited(part.read_chunk, limit, "the upload")
                elif part.name in ("content_id", "content_url"):
                    raw = await _read_limited(part.read_chunk, MAX_FIELD_BYTES, f"the field {part.name!r}")
                    fields[part.name] = raw.decode("utf-8", errors="replace")
                else:
                    await _read_limited(part.read_chunk, limit, "a form field")
        except (ValueError, AssertionError) as exc:  # aiohttp's parser errors for broken multipart bodies
            raise BadRequest(f"the multipart body is malformed: {exc}") from exc
        if data is None:
            raise MissingField("media")
        return data, fields
    if ctype.startswith("image/") or ctype in ("application/octet-stream", ""):
        return await _read_limited(request.content.read, limit, "the upload"), fields
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
        content_id=_text_field("content_id", fields.get("content_id"), required=True) or "",
        content_url=_text_field("content_url", fields.get("content_url"), required=False),
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
        except DetectorError as exc:
            exc.message = f"{where}: {exc.message}"
            raise
    context = ScanContext(
        content_id=_text_field(f"{where}.content_id", content_id, required=True) or "",
        content_url=_text_field(f"{where}.content_url", content_url, required=False),
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
            await pg.ping(conn)
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


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[SETTINGS]))


ROUTES: Mapping[tuple[str, str], Handler] = {
    ("GET", "/healthz"): healthz,
    ("GET", "/readyz"): readyz,
    ("GET", "/metrics"): metrics,
    ("GET", "/openapi.json"): openapi,
    ("POST", "/v1/scan"): scan,
    ("POST", "/v1/lookup"): lookup,
}


def setup_routes(app: web.Application) -> None:
    for (method, path), handler in ROUTES.items():
        app.router.add_route(method, path, handler)
    # Imported here: the tool registry's admin handlers import this module for authenticate().
    from detector.approvals import http as approvals_http

    approvals_http.setup_routes(app)
