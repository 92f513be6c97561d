"""The route table every context declares: method, path, handler, who may call it, and the declared
types of its query, body and answers. The service registers routes from these tables, the OpenAPI
document is generated from them (``hashguard.openapi``), and the role tests read them: one source.

Bodies and queries are decoded with msgspec straight into the declared Structs (one pass, even for a
1,000-item lookup batch); a value that does not fit its type is a 400 with the same error shape in
every context. The field types the Structs share (the text-field rule, the error body) are in
``kernel.api``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from kernel.errors import BadRequest, MissingField, ServiceError
from kernel.keys import Principal, Role
from kernel.web import Handler, authenticate, query_fields, read_json_bytes

T = TypeVar("T")


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("hashguard_principal", Principal)


def caller(request: web.Request) -> Principal:
    """The authenticated key of a request to a route with roles (set before the handler runs)."""
    return request[PRINCIPAL]


@dataclass(frozen=True, kw_only=True, eq=False)  # hashable by identity: the mappings in it are not
class Route:
    """One endpoint. ``roles`` empty means public; otherwise a key of one of these roles is required
    and checked before the handler runs (401 without a valid key, 403 for another role)."""

    method: str
    path: str
    handler: Handler
    summary: str
    roles: frozenset[Role] = frozenset()
    description: str = ""
    # The JSON body's declared type(s): several are alternatives (anyOf), e.g. one lookup or a batch.
    body: type | tuple[type, ...] | None = None
    body_required: bool = True
    # A body that is not JSON (an upload): the document's requestBody content, as written.
    raw_body: Mapping[str, Any] | None = None
    query: type | None = None
    # The types of the path's parameters ({ticket_id}, ...), for the document; a string when not named.
    path_params: Mapping[str, Any] = field(default_factory=dict)
    # Answers by status: a Struct (or other type), or None for a body the document only describes.
    responses: Mapping[int, tuple[str, Any]] = field(default_factory=dict)
    # Error statuses the work itself can answer (404, 409, 422, 503...); 400/401/403/413/415 follow from
    # the route's roles, body and query.
    errors: frozenset[int] = frozenset()
    # Non-JSON answers, e.g. Prometheus text: status -> content type.
    media: Mapping[int, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if self.roles:
            statuses |= {401, 403, 429}
        if self.body is not None or self.raw_body is not None:
            statuses |= {400, 408, 413, 415}  # 408: the body did not arrive within HASHGUARD_BODY_TIMEOUT_S
        if self.query is not None:
            statuses.add(400)
        return sorted(statuses)

    def bound(self) -> Handler:
        """The handler as registered: the role check first, then the handler."""
        if not self.roles:
            return self.handler
        roles, handler = self.roles, self.handler

        async def guarded(request: web.Request) -> web.StreamResponse:
            request[PRINCIPAL] = await authenticate(request, roles)
            return await handler(request)

        guarded.__name__ = getattr(handler, "__name__", "handler")
        return guarded


def register(app: web.Application, routes: Iterable[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, route.bound())


_MISSING = re.compile(r"Object missing required field `([^`]+)`(?: - at `\$(.*)`)?$")
_BLANK = re.compile(r"the field '([^']+)' is required(?: - at `\$(.*)`)?$")  # kernel.api.checked_text


def _where(path: str) -> str:
    return path.removeprefix(".") if path else ""


def invalid(
    exc: msgspec.ValidationError | msgspec.DecodeError,
    *,
    what: str = "the body",
    bad: Callable[[str], ServiceError] = BadRequest,
    missing: Callable[[str], ServiceError] = MissingField,
) -> ServiceError:
    """The 400 for a body or query that does not fit its declared type. A missing required field is
    ``missing`` (``missing_field``, in every context) and anything else ``bad``. msgspec's messages name the
    place (``$.items[3].hashes``) and the expected type, never a value longer than an enum member."""
    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):  # (a ValidationError is also a DecodeError)
        return bad(f"{what} is not valid JSON: {message.removeprefix('JSON is malformed: ')}")
    if found := _MISSING.match(message) or _BLANK.match(message):
        where = _where(found.group(2) or "")
        return missing(f"{where}.{found.group(1)}" if where else found.group(1))
    return bad(f"{what} does not fit its schema: {re.sub(r'`[$][.]?', '`', message)}")


def decode(
    raw: bytes,
    kind: type[T],
    *,
    bad: Callable[[str], ServiceError] = BadRequest,
    missing: Callable[[str], ServiceError] = MissingField,
) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise invalid(exc, bad=bad, missing=missing) from None


async def read_body(
    request: web.Request,
    kind: type[T],
    limit: int,
    *,
    optional: bool = False,
    bad: Callable[[str], ServiceError] = BadRequest,
    missing: Callable[[str], ServiceError] = MissingField,
) -> T:
    """The request's JSON body decoded into ``kind``: 415 for another content type, 413 over ``limit``,
    400 for an empty body (``{}`` where ``optional``), bad JSON or a value that does not fit."""
    raw = await read_json_bytes(request, limit, optional=optional)
    return decode(raw or b"{}", kind, bad=bad, missing=missing)


def read_query(request: web.Request, kind: type[T], *, bad: Callable[[str], ServiceError] = BadRequest) -> T:
    """The query parameters decoded into ``kind`` (strings converted to the declared numbers and
    booleans). An empty parameter reads as absent; parameters the type does not name are ignored; a
    parameter that is not valid UTF-8 is refused (``kernel.web.query_fields``), never repaired."""
    try:
        values = {k: v for k, v in query_fields(request).items() if v != ""}
    except BadRequest as exc:  # not UTF-8: the context's own error for a bad query
        raise bad(exc.message) from None
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid(exc, what="the query", bad=bad, missing=bad) from None
