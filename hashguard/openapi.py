"""The OpenAPI 3.1 document, generated from the route tables (``kernel.routes.Route``) and the declared
request and response types (msgspec Structs): paths, roles, parameters, bodies, answers and the errors
each route can return. Nothing here is written by hand but the wording of the shared error answers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
from aiohttp import web

from kernel.api import ErrorBody
from kernel.routes import Route

DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document", dict)

REF = "#/components/schemas/{name}"

ERRORS: dict[int, str] = {
    400: "Malformed request: bad JSON, a missing or malformed field, a value the type does not allow.",
    401: "Missing, unknown or revoked API key.",
    403: "The key's role may not call this endpoint (forbidden), or the key is suspended (key_suspended).",
    404: "No such record.",
    408: "The body did not arrive within HASHGUARD_BODY_TIMEOUT_S; send it again.",
    409: "Conflicts with the record's current state.",
    413: "Body larger than this endpoint accepts (HASHGUARD_MAX_UPLOAD_BYTES for uploads).",
    415: "Not an image in a supported format, or a content type other than the one this endpoint reads.",
    422: "Corrupt or truncated image, or more pixels than HASHGUARD_MAX_PIXELS.",
    429: "The key is over its rate limit (rate_limited): retry after the seconds in Retry-After.",
    503: "Not ready or timed out: hold the upload and retry. Never a reason to publish it.",
}

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    """The route's path as OpenAPI writes it: ``{approval_id:\\d{1,18}}`` becomes ``{approval_id}``."""
    out, depth, name, i = [], 0, "", 0
    while i < len(path):
        c = path[i]
        if c == "{":
            if depth == 0:
                name = ""
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                out.append("{" + name.split(":", 1)[0] + "}")
        elif depth:
            name += c
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _types(routes: Iterable[Route]) -> Iterator[Any]:
    yield ErrorBody
    for route in routes:
        for kind in (route.body, route.query, *(t for _, t in route.responses.values())):
            if isinstance(kind, tuple):
                yield from kind
            elif kind is not None:
                yield kind
        yield from route.path_params.values()


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query or path parameter is never JSON null: drop that alternative (and a null default)."""
    if schema.get("default", 0) is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    options = schema.get("anyOf")
    if options is None:
        return schema
    rest = [o for o in options if o != {"type": "null"}]
    if len(rest) == 1:
        return {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}
    return {**schema, "anyOf": rest}


def _one_of(kind: Any, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"anyOf": [schemas[k] for k in kind]}
    return schemas[kind]


def _roles(route: Route) -> list[str]:
    return sorted(role.value for role in route.roles)


def _operation(route: Route, schemas: dict[Any, dict[str, Any]], components: dict[str, Any]) -> dict[str, Any]:
    roles = _roles(route)
    who = f"Roles: {', '.join(roles)}." if roles else "Public: no key needed."
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{getattr(route.handler, '__name__', 'handler')}",
        "summary": route.summary,
        "description": f"{route.description}\n\n{who}".strip(),
        "x-roles": roles,
    }
    if roles:
        operation["security"] = [{"bearer": []}]
    parameters: list[dict[str, Any]] = []
    for name in _PARAM.findall(route.path):
        kind = route.path_params.get(name, str)
        schema = schemas[kind] if kind in schemas else msgspec.json.schema(kind)
        parameters.append({"name": name, "in": "path", "required": True, "schema": _not_null(schema)})
    if route.query is not None:
        declared = components[schemas[route.query]["$ref"].rsplit("/", 1)[1]]
        required = set(declared.get("required", ()))
        for name, schema in declared["properties"].items():
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": _not_null(schema)}
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": _one_of(route.body, schemas)}},
        }
    elif route.raw_body is not None:
        operation["requestBody"] = dict(route.raw_body)
    responses: dict[str, Any] = {}
    for status, (description, kind) in sorted(route.responses.items()):
        answer: dict[str, Any] = {"description": description}
        if status in route.media:
            answer["content"] = {route.media[status]: {"schema": {"type": "string"}}}
        elif kind is not None:
            answer["content"] = {"application/json": {"schema": _one_of(kind, schemas)}}
        responses[str(status)] = answer
    error = {"application/json": {"schema": schemas[ErrorBody]}}
    for status in route.error_statuses():
        if str(status) not in responses:
            responses[str(status)] = {"description": ERRORS[status], "content": error}
    operation["responses"] = responses
    return operation


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    kinds = list(dict.fromkeys(_types(routes)))
    generated, components = msgspec.json.schema_components(kinds, ref_template=REF)
    schemas = dict(zip(kinds, generated, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route, schemas, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hashguard",
            "version": "0.1.0",
            "description": "Hash matching of uploads against vetted lists of known child sexual abuse material. "
            "Responses never contain a list entry's hash.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A key from `hashguard keys create`."}
            },
            "schemas": components,
        },
        "paths": paths,
    }


async def handler(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the document, generated once when the service is built."""
    return web.json_response(request.app[DOCUMENT])


ROUTE = Route(
    method="GET",
    path="/openapi.json",
    handler=handler,
    summary="This document",
    responses={200: ("OpenAPI 3.1.", dict[str, Any])},
)
