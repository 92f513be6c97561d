"""The HTTP edge every context's handlers share: JSON errors, API-key authentication, body limits,
and the one rule for free-text fields. Handlers parse and answer; the work is in the contexts."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from kernel import keystore
from kernel.api import MAX_TEXT
from kernel.appkeys import DB_HEALTH, KEY_CACHE, METRICS, POOL, SETTINGS
from kernel.dbfaults import RETRY_AFTER_S, DatabaseUnavailable, describe, is_connection_failure
from kernel.errors import BadRequest, Forbidden, MissingField, PayloadTooLarge, ServiceError, Unauthorized, UnsupportedMedia
from kernel.keys import Principal, Role, key_digest, parse_bearer

log = logging.getLogger(__name__)

CHUNK = 256 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": {"code", "message"}}`` and is counted; nothing leaks a traceback.

    A lost database is one answer everywhere (``kernel.dbfaults``): while the cached check says
    PostgreSQL is unreachable every ``/v1/`` call is refused before it starts, and a connection failure
    met mid-request is the same ``503 not_ready``; every 503 says when to retry (``Retry-After``).
    """
    request_id = request.headers.get("X-Request-ID", "")[:128] or uuid.uuid4().hex
    health = request.app.get(DB_HEALTH)
    code: str | None = None
    try:
        if health is not None and request.path.startswith("/v1/") and not await health.reachable():
            health.refused(f"check failed: {health.problem}")
            raise DatabaseUnavailable()
        response = await handler(request)
    except ServiceError as exc:
        code = exc.code
        response = error_response(exc.status, exc.code, exc.message)
    except BadHttpMessage:
        # Malformed framing inside a body the handler reads (a multipart part's headers): the client's
        # mistake. The parser's message would echo the hostile bytes; a fixed one says enough.
        code = BadRequest.code
        response = error_response(400, code, "the request body is malformed: a part's headers are not valid HTTP")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = (exc.reason or "error").lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.reason or code)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        if await health.explains(exc) if health is not None else is_connection_failure(exc):
            unavailable = DatabaseUnavailable()
            code = unavailable.code
            response = error_response(unavailable.status, unavailable.code, unavailable.message)
            if health is not None:
                health.refused(f"{describe(exc)} in {request.method} {request.path}")
        else:
            log.exception("unhandled error in %s %s (request %s)", request.method, request.path, request_id)
            code = "internal_error"
            response = error_response(500, code, "an internal error occurred; hold the upload and retry")
    if code is not None:
        request.app[METRICS].errors.labels(code=code).inc()
    if response.status == 503 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
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
            principal = await keystore.find_key(conn, digest)
        if len(cache) > 10_000:  # bounded: a flood of random keys cannot grow it without limit
            cache.clear()
        if ttl > 0:
            cache[digest] = (now + ttl, principal)
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked")
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not call {request.method} {request.path}")
    return principal


def text_field(name: str, value: str | None, *, required: bool) -> str | None:
    if value is None or not value.strip():
        if required:
            raise MissingField(name)
        return None
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise BadRequest(f"the field {name!r} is longer than {MAX_TEXT} characters")
    # PostgreSQL text refuses NUL and lone surrogates; refuse them here, before a match's evidence
    # write would fail and turn a clear client error into a 500.
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise BadRequest(f"the field {name!r} holds a NUL or an invalid character")
    return value


async def read_limited(read: Callable[[int], Awaitable[bytes]], limit: int, what: str) -> bytes:
    """Read a body or form part to its end, refusing with 413 as soon as it passes ``limit``."""
    parts: list[bytes] = []
    size = 0
    while chunk := await read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def read_json_bytes(request: web.Request, limit: int, *, optional: bool = False) -> bytes:
    """The raw JSON body of a request: the one reader every context's JSON endpoints use.

    The same mistake gets the same answer everywhere: a declared content type other than
    application/json is 415, a body over ``limit`` is 413 (refused before it is read whole),
    an empty body is 400, or ``b""`` where ``optional``. ``kernel.routes.read_body`` decodes it.
    """
    if "Content-Type" in request.headers and request.content_type != "application/json":
        raise UnsupportedMedia(f"content type {request.content_type!r} is not accepted: send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is {request.content_length} bytes; at most {limit} bytes are accepted")
    raw = await read_limited(request.content.read, limit, "the body")
    if not raw.strip():
        if optional:
            return b""
        raise BadRequest("a JSON body is required")
    return raw
