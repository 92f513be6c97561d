"""The tool registry's admin API: installed tools and why each scans or not, approvals, local
allowances, and their history. Writes need an admin key; reads an admin or auditor key.

Every write goes through ``detector.approvals.pg``, which records an event in the same
transaction; every replica picks the change up through NOTIFY within moments.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from detector.appkeys import HOLDER, TOOLS
from detector.approvals import api
from detector.approvals import pg as approvals_pg
from detector.tools.policy import (
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
from kernel.routes import Route, caller, read_body, read_query

T = TypeVar("T")

ADMIN = frozenset({Role.ADMIN})
READERS = frozenset({Role.ADMIN, Role.AUDITOR})
MAX_BODY = 64 * 1024


def actor(principal: Principal) -> str:
    """Who made a change, as recorded in the events: the key's non-secret prefix."""
    return f"api:{principal.prefix}"


async def _body(request: web.Request, kind: type[T]) -> T:
    return await read_body(request, kind, MAX_BODY)


def _approval_id(request: web.Request) -> int:
    return int(request.match_info["approval_id"])


async def list_tools(request: web.Request) -> web.Response:
    snapshot = request.app[HOLDER].current
    activations = snapshot.activations if snapshot is not None else {}
    tools = []
    for tool in request.app[TOOLS]:
        decision = activations.get(tool.name)
        tools.append({**describe(tool), "activation": activation_record(decision) if decision else None})
    return web.json_response({"tools": tools})


async def list_approvals(request: web.Request) -> web.Response:
    query = read_query(request, api.ToolQuery)
    async with request.app[POOL].acquire() as conn:
        approvals = await approvals_pg.list_approvals(conn, query.tool)
    return web.json_response({"approvals": [approval_record(a) for a in approvals]})


async def create_approval(request: web.Request) -> web.Response:
    body = await _body(request, api.NewApproval)
    new = NewApproval.checked(
        tool=body.tool,
        authority=body.authority,
        jurisdiction=body.jurisdiction,
        instrument=body.instrument,
        status=body.status.value,
        versions=body.versions,
        scope=body.scope,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        accuracy_statement=body.accuracy_statement,
        accuracy_reference=body.accuracy_reference,
        evidence_url=body.evidence_url,
    )
    async with request.app[POOL].acquire() as conn:
        approval = await approvals_pg.create_approval(conn, new, actor=actor(caller(request)))
    return web.json_response(approval_record(approval), status=201)


async def get_approval(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        approval = await approvals_pg.get_approval(conn, _approval_id(request))
    return web.json_response(approval_record(approval))


async def set_approval_status(request: web.Request) -> web.Response:
    body = await _body(request, api.StatusChange)
    async with request.app[POOL].acquire() as conn:
        approval = await approvals_pg.set_status(
            conn, _approval_id(request), body.status, actor=actor(caller(request)), note=body.note
        )
    return web.json_response(approval_record(approval))


async def list_allowances(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        allowances = await approvals_pg.standing_allowances(conn)
    return web.json_response({"allowances": [allowance_record(a) for a in allowances]})


async def allow_local(request: web.Request) -> web.Response:
    body = await _body(request, api.AllowLocal)
    if body.tool not in request.app[TOOLS]:
        raise BadRequest(f"the tool {body.tool!r} is not installed here; installed: {', '.join(request.app[TOOLS].names())}")
    async with request.app[POOL].acquire() as conn:
        allowance = await approvals_pg.allow_local(
            conn, tool=body.tool, versions=body.versions, reason=body.reason, actor=actor(caller(request))
        )
    return web.json_response(allowance_record(allowance), status=201)


async def revoke_allowance(request: web.Request) -> web.Response:
    tool = check_tool_name(request.match_info["tool"])
    async with request.app[POOL].acquire() as conn:
        allowance = await approvals_pg.revoke_allowance(conn, tool=tool, actor=actor(caller(request)))
    return web.json_response({**allowance_record(allowance), "revoked": True})


async def list_events(request: web.Request) -> web.Response:
    query = read_query(request, api.EventsQuery)
    async with request.app[POOL].acquire() as conn:
        events = await approvals_pg.list_events(conn, query.tool, query.limit)
    return web.json_response({"events": [e.record() for e in events]})


APPROVAL_ID = r"{approval_id:\d{1,18}}"

ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/v1/tools",
        handler=list_tools,
        roles=READERS,
        summary="Installed detection tools, their interface, and whether each scans here and why",
        responses={200: ("The installed tools.", api.Tools)},
    ),
    Route(
        method="GET",
        path="/v1/tools/approvals",
        handler=list_approvals,
        roles=READERS,
        summary="Recorded approvals, optionally of one tool",
        query=api.ToolQuery,
        responses={200: ("The approvals.", api.Approvals)},
    ),
    Route(
        method="POST",
        path="/v1/tools/approvals",
        handler=create_approval,
        roles=ADMIN,
        summary="Record an authority's approval of a tool; audited",
        body=api.NewApproval,
        responses={201: ("The approval.", api.Approval)},
    ),
    Route(
        method="GET",
        path=f"/v1/tools/approvals/{APPROVAL_ID}",
        path_params={"approval_id": api.ApprovalId},
        handler=get_approval,
        roles=READERS,
        summary="One approval",
        responses={200: ("The approval.", api.Approval)},
        errors=frozenset({404}),
    ),
    Route(
        method="POST",
        path=f"/v1/tools/approvals/{APPROVAL_ID}/status",
        path_params={"approval_id": api.ApprovalId},
        handler=set_approval_status,
        roles=ADMIN,
        summary="Suspend, withdraw or reinstate an approval; every replica applies it within seconds; audited",
        body=api.StatusChange,
        responses={200: ("The approval.", api.Approval)},
        errors=frozenset({404, 409}),
    ),
    Route(
        method="GET",
        path="/v1/tools/allowances",
        handler=list_allowances,
        roles=READERS,
        summary="Standing local allowances",
        responses={200: ("The allowances.", api.Allowances)},
    ),
    Route(
        method="POST",
        path="/v1/tools/allowances",
        handler=allow_local,
        roles=ADMIN,
        summary="Allow an installed tool to scan here without an approval; recorded as such; audited",
        body=api.AllowLocal,
        responses={201: ("The allowance.", api.Allowance)},
        errors=frozenset({409}),
    ),
    Route(
        method="DELETE",
        path="/v1/tools/allowances/{tool}",
        path_params={"tool": api.ToolName},
        handler=revoke_allowance,
        roles=ADMIN,
        summary="Revoke a tool's local allowance; audited",
        responses={200: ("The revoked allowance.", api.RevokedAllowance)},
        errors=frozenset({400, 404}),
    ),
    Route(
        method="GET",
        path="/v1/tools/events",
        handler=list_events,
        roles=READERS,
        summary="History of approval and allowance changes, newest first",
        query=api.EventsQuery,
        responses={200: ("The events.", api.Events)},
    ),
]
