"""The tool registry's admin API: installed tools and why each scans or not, approvals, local
allowances, and their history. Writes need an admin key; reads an admin or auditor key.

Every write goes through ``detector.approvals.pg``, which records an event in the same
transaction; every replica picks the change up through NOTIFY within moments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from detector.appkeys import HOLDER, TOOLS
from detector.approvals import pg as approvals_pg
from detector.tools.policy import (
    ApprovalStatus,
    NewApproval,
    activation_record,
    allowance_record,
    approval_record,
    check_tool_name,
)
from detector.tools.registry import describe
from kernel.appkeys import POOL
from kernel.errors import BadRequest
from kernel.keys import Principal, Role
from kernel.web import Handler, authenticate, read_json_body

ADMIN = frozenset({Role.ADMIN})
READERS = frozenset({Role.ADMIN, Role.AUDITOR})
MAX_BODY = 64 * 1024
MAX_EVENTS = 1000


def actor(principal: Principal) -> str:
    """Who made a change, as recorded in the events: the key's non-secret prefix."""
    return f"api:{principal.prefix}"


async def _json_body(request: web.Request) -> dict[str, Any]:
    body = await read_json_body(request, MAX_BODY)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _moment(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 date-time string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} is not an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z") from None


def _approval_id(request: web.Request) -> int:
    return int(request.match_info["approval_id"])


async def list_tools(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    snapshot = request.app[HOLDER].current
    activations = snapshot.activations if snapshot is not None else {}
    tools = []
    for tool in request.app[TOOLS]:
        decision = activations.get(tool.name)
        tools.append({**describe(tool), "activation": activation_record(decision) if decision else None})
    return web.json_response({"tools": tools})


async def list_approvals(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    tool = request.query.get("tool")
    async with request.app[POOL].acquire() as conn:
        approvals = await approvals_pg.list_approvals(conn, check_tool_name(tool) if tool else None)
    return web.json_response({"approvals": [approval_record(a) for a in approvals]})


async def create_approval(request: web.Request) -> web.Response:
    principal = await authenticate(request, ADMIN)
    body = await _json_body(request)
    known = {
        "tool",
        "versions",
        "authority",
        "jurisdiction",
        "instrument",
        "scope",
        "status",
        "valid_from",
        "valid_until",
        "accuracy_statement",
        "accuracy_reference",
        "evidence_url",
    }
    if unknown := sorted(set(body) - known):
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    new = NewApproval.checked(
        tool=body.get("tool"),
        authority=body.get("authority"),
        jurisdiction=body.get("jurisdiction"),
        instrument=body.get("instrument"),
        status=body.get("status", ApprovalStatus.APPROVED.value),
        versions=body.get("versions", "*"),
        scope=body.get("scope", []),
        valid_from=_moment(body, "valid_from"),
        valid_until=_moment(body, "valid_until"),
        accuracy_statement=body.get("accuracy_statement", ""),
        accuracy_reference=body.get("accuracy_reference", ""),
        evidence_url=body.get("evidence_url", ""),
    )
    async with request.app[POOL].acquire() as conn:
        approval = await approvals_pg.create_approval(conn, new, actor=actor(principal))
    return web.json_response(approval_record(approval), status=201)


async def get_approval(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    async with request.app[POOL].acquire() as conn:
        approval = await approvals_pg.get_approval(conn, _approval_id(request))
    return web.json_response(approval_record(approval))


async def set_approval_status(request: web.Request) -> web.Response:
    principal = await authenticate(request, ADMIN)
    body = await _json_body(request)
    try:
        status = ApprovalStatus(str(body.get("status")))
    except ValueError:
        raise BadRequest(f"status must be one of {', '.join(s.value for s in ApprovalStatus)}") from None
    note = body.get("note", "")
    if not isinstance(note, str):
        raise BadRequest("note must be a string")
    async with request.app[POOL].acquire() as conn:
        approval = await approvals_pg.set_status(conn, _approval_id(request), status, actor=actor(principal), note=note)
    return web.json_response(approval_record(approval))


async def list_allowances(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    async with request.app[POOL].acquire() as conn:
        allowances = await approvals_pg.standing_allowances(conn)
    return web.json_response({"allowances": [allowance_record(a) for a in allowances]})


async def allow_local(request: web.Request) -> web.Response:
    principal = await authenticate(request, ADMIN)
    body = await _json_body(request)
    tool = check_tool_name(body.get("tool"))
    if tool not in request.app[TOOLS]:
        raise BadRequest(f"the tool {tool!r} is not installed here; installed: {', '.join(request.app[TOOLS].names())}")
    reason, versions = body.get("reason"), body.get("versions", "*")
    if not isinstance(reason, str) or not isinstance(versions, str):
        raise BadRequest("reason and versions must be strings")
    async with request.app[POOL].acquire() as conn:
        allowance = await approvals_pg.allow_local(conn, tool=tool, versions=versions, reason=reason, actor=actor(principal))
    return web.json_response(allowance_record(allowance), status=201)


async def revoke_allowance(request: web.Request) -> web.Response:
    principal = await authenticate(request, ADMIN)
    tool = check_tool_name(request.match_info["tool"])
    async with request.app[POOL].acquire() as conn:
        allowance = await approvals_pg.revoke_allowance(conn, tool=tool, actor=actor(principal))
    return web.json_response({**allowance_record(allowance), "revoked": True})


async def list_events(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    tool = request.query.get("tool")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_EVENTS:
        raise BadRequest(f"limit must be between 1 and {MAX_EVENTS}")
    async with request.app[POOL].acquire() as conn:
        events = await approvals_pg.list_events(conn, check_tool_name(tool) if tool else None, limit)
    return web.json_response({"events": [e.record() for e in events]})


ROUTES: Mapping[tuple[str, str], Handler] = {
    ("GET", "/v1/tools"): list_tools,
    ("GET", "/v1/tools/approvals"): list_approvals,
    ("POST", "/v1/tools/approvals"): create_approval,
    ("GET", r"/v1/tools/approvals/{approval_id:\d{1,18}}"): get_approval,
    ("POST", r"/v1/tools/approvals/{approval_id:\d{1,18}}/status"): set_approval_status,
    ("GET", "/v1/tools/allowances"): list_allowances,
    ("POST", "/v1/tools/allowances"): allow_local,
    ("DELETE", "/v1/tools/allowances/{tool}"): revoke_allowance,
    ("GET", "/v1/tools/events"): list_events,
}


def setup_routes(app: web.Application) -> None:
    for (method, path), handler in ROUTES.items():
        app.router.add_route(method, path, handler)
