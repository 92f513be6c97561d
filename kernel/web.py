"""The HTTP edge every context's handlers share: JSON errors, API-key authentication, body limits,
and the one rule for free-text fields. Handlers parse and answer; the work is in the contexts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMessage

from kernel import keycontrols, keystore
from kernel.api import MAX_TEXT
from kernel.appkeys import DB_HEALTH, KEY_CACHE, KEY_GUARD, METRICS, POOL, SETTINGS
from kernel.dbfaults import RETRY_AFTER_S, DatabaseUnavailable, describe, is_connection_failure
from kernel.errors import (
    BadRequest,
    Forbidden,
    KeySuspended,
    MissingField,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServiceError,
    Unauthorized,
    UnsupportedMedia,
)
from kernel.keys import Principal, Role, key_digest, parse_bearer
from kernel.ratelimit import KeyControls, effective_limit

log = logging.getLogger(__name__)

CHUNK = 256 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The controls of the calling key (distances, limit, suspension), set by ``authenticate``.
CONTROLS: web.RequestKey[KeyControls] = web.RequestKey("hashguard_key_controls", KeyControls)


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_REQUEST_ID = re.compile(r"[!-~]{1,128}")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": {"code", "message"}}`` and is counted; nothing leaks a traceback.

    A lost database is one answer everywhere (``kernel.dbfaults``): while the cached check says
    PostgreSQL is unreachable every ``/v1/`` call is refused before it starts, and a connection failure
    met mid-request is the same ``503 not_ready``; every 503 says when to retry (``Retry-After``).
    """
    # Echoed in a response header: printable ASCII only (a stray byte would fail the answer itself).
    given = request.headers.get("X-Request-ID", "")[:128]
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
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
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
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
    """The calling key, checked: known, of one of ``roles``, not suspended, within its rate limit.

    The call costs one token of the key's bucket; a handler that does more per call (a lookup
    batch) charges the rest with ``charge``. The key's controls are left in ``request[CONTROLS]``.
    """
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
    guard = request.app[KEY_GUARD]
    controls = guard.controls.get(principal.key_id, now)
    if controls is None:
        async with request.app[POOL].acquire() as conn:
            controls = await keycontrols.load(conn, principal.key_id)
        guard.controls.put(principal.key_id, controls, now)
    if controls.suspended:
        raise KeySuspended()
    request[CONTROLS] = controls
    charge(request, principal, 1)
    return principal


def charge(request: web.Request, principal: Principal, cost: int) -> None:
    """Take ``cost`` tokens from the key's bucket, or refuse the call with 429 and Retry-After."""
    settings = request.app[SETTINGS]
    limit = effective_limit(
        request[CONTROLS],
        default_rate=settings.rate_per_s,
        default_burst=settings.rate_burst,
        replicas=settings.rate_replicas,
    )
    wait = request.app[KEY_GUARD].buckets.take(principal.key_id, cost, limit, time.monotonic())
    if wait == 0.0:
        return
    request.app[METRICS].rate_limited.labels(role=principal.role.value).inc()
    if math.isinf(wait):
        raise RateLimited(
            f"this call costs {cost} tokens, more than this key's whole bucket ({limit.burst:g} on this replica):"
            " send smaller batches",
            retry_after_s=cost / limit.rate,
        )
    raise RateLimited(
        f"this key is over its rate limit of {limit.rate:g} per second on this replica; retry after {math.ceil(wait)} s",
        retry_after_s=wait,
    )


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


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """Reading a body must end within HASHGUARD_BODY_TIMEOUT_S, or it is a 408 ``request_timeout``.

    Every body reader runs under it, before any work starts: a stalled or trickling upload (a length
    declared, the bytes never sent) costs a connection, never a hashing slot or a database connection.
    """
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout_s):
            yield
    except TimeoutError:
        raise RequestTimeout() from None


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


def utf8_text(name: str, raw: bytes) -> str:
    """Bytes of a text field (a form field, a query parameter) as text: 400 unless valid UTF-8.

    Never repaired: decoding with replacement would turn different ids (``%ff``, ``%fe``) into one
    (U+FFFD) and join unrelated uploads into one ticket.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"the field {name!r} is not valid UTF-8") from None


def query_fields(request: web.Request) -> dict[str, str]:
    """The query parameters (the last value of a repeated one), each checked to be valid UTF-8.

    aiohttp decodes ``%ff`` to U+FFFD without a word, so the raw query string is decoded again here,
    strictly; a parameter that is not UTF-8 is a 400 naming it.
    """
    raw = request.rel_url.raw_query_string
    fields: dict[str, str] = {}
    if not raw:
        return fields
    for pair in raw.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        try:
            name = unquote_to_bytes(key.replace("+", " ")).decode("utf-8")
        except UnicodeError:  # (a raw non-ASCII byte reaches here as a lone surrogate: not encodable)
            raise BadRequest("a query parameter name is not valid UTF-8") from None
        try:
            fields[name] = utf8_text(name, unquote_to_bytes(value.replace("+", " ")))
        except UnicodeEncodeError:
            raise BadRequest(f"the field {name!r} is not valid UTF-8") from None
    return fields


async def read_json_bytes(request: web.Request, limit: int, *, optional: bool = False) -> bytes:
    """The raw JSON body of a request: the one reader every context's JSON endpoints use.

    The same mistake gets the same answer everywhere: a declared content type other than
    application/json is 415, a body over ``limit`` is 413 (refused before it is read whole),
    a body that does not arrive within HASHGUARD_BODY_TIMEOUT_S is 408, an empty body is 400,
    or ``b""`` where ``optional``. ``kernel.routes.read_body`` decodes it.
    """
    if "Content-Type" in request.headers and request.content_type != "application/json":
        raise UnsupportedMedia(f"content type {request.content_type!r} is not accepted: send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is {request.content_length} bytes; at most {limit} bytes are accepted")
    async with body_deadline(request):
        raw = await read_limited(request.content.read, limit, "the body")
    if not raw.strip():
        if optional:
            return b""
        raise BadRequest("a JSON body is required")
    return raw


class AccessLogger(AbstractAccessLogger):
    """One line per request, without its query string: ``content_id`` and ``content_url`` arrive in the
    query and are evidence, kept (and purged) only in the database, never in a log the retention purge
    cannot reach. Logged: client address, method, path, status, body size, duration, request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.1fms %s',
            request.remote,
            request.method,
            request.path,
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time * 1000,
            response.headers.get("X-Request-ID", "-"),
        )
