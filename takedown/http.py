"""The takedown context's HTTP edge: notices, the staff queue, decisions, appeals, statements,
policies and the audit log. Parsing and JSON only; the work is in the ``*_store`` modules and the pure ones.

Roles (``kernel.keys.Role``): platforms file notices and appeals and read statements; reviewers
work the queue; leads also reassign, override leases and set legal holds; admins set list
policies, holds and delivery retries; auditors read everything and change nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kernel import auditlog
from kernel.appkeys import METRICS, POOL
from kernel.keys import Principal, Role
from kernel.web import authenticate, read_json_body
from takedown import decision_store, outbox_store, policy_store, queue_store, statement_store, ticket_store, transparency_store
from takedown.config import TakedownConfig
from takedown.errors import InvalidInput, TicketNotFound
from takedown.jobs import Waker
from takedown.requests import parse_decision, parse_notice, parse_reason, parse_report
from takedown.rules import Policy
from takedown.tickets import Actor, Decision, Evidence, Ticket
from takedown.workflow import RESTRICTIONS, Action, Source, State

CONFIG = web.AppKey("takedown_config", TakedownConfig)
WAKER = web.AppKey("takedown_waker", Waker)
# What other contexts do when a ticket is decided; the composition root fills it (see detector/app.py).
DECISION_HOOKS: web.AppKey[Sequence[decision_store.DecisionHook]] = web.AppKey("takedown_decision_hooks")

MAX_BODY = 256 * 1024
MAX_PAGE = 500

PLATFORM = frozenset({Role.PLATFORM})
STAFF = frozenset({Role.REVIEWER, Role.LEAD})
READERS = frozenset({Role.REVIEWER, Role.LEAD, Role.AUDITOR})
LEAD = frozenset({Role.LEAD})
HOLDERS = frozenset({Role.LEAD, Role.ADMIN})
POLICY_READERS = frozenset({Role.LEAD, Role.ADMIN, Role.AUDITOR})
ADMIN = frozenset({Role.ADMIN})
AUDIT_READERS = frozenset({Role.AUDITOR, Role.ADMIN})
STATEMENT_READERS = frozenset({Role.PLATFORM, Role.REVIEWER, Role.LEAD, Role.AUDITOR})
TRANSPARENCY_READERS = frozenset({Role.LEAD, Role.ADMIN, Role.AUDITOR})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _actor(principal: Principal) -> Actor:
    return Actor(key_id=principal.key_id, name=principal.prefix)


def _ticket_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["ticket_id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise TicketNotFound("ticket ids are UUIDs; no ticket has that id") from None


async def _json(request: web.Request, *, optional: bool = False) -> Any:
    return await read_json_body(request, MAX_BODY, optional=optional)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_json(ticket: Ticket, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    leased = ticket.lease_expires_at is not None and ticket.lease_expires_at > now
    return {
        "id": str(ticket.id),
        "content_id": ticket.content_id,
        "content_url": ticket.content_url,
        "source": ticket.source.value,
        "state": ticket.state.value,
        "priority": ticket.priority,
        "received_at": _time(ticket.received_at),
        "due_at": _time(ticket.due_at),
        "overdue": ticket.overdue(now),
        "automated_detection": ticket.automated_detection,
        "lease": {"holder": ticket.lease_key_prefix, "expires_at": _time(ticket.lease_expires_at)} if leased else None,
        "action": ticket.action.value if ticket.action else None,
        "decided_at": _time(ticket.decided_at),
        "first_action_at": _time(ticket.first_action_at),
        "sightings": ticket.sightings,
        "notices": ticket.notices,
        "legal_hold": ticket.legal_hold,
        "legal_hold_reason": ticket.legal_hold_reason,
        "preserve_until": _time(ticket.preserve_until),
        "evidence_purged_at": _time(ticket.evidence_purged_at),
        "updated_at": _time(ticket.updated_at),
    }


def _evidence_json(e: Evidence) -> dict[str, Any]:
    return {
        "scan_id": str(e.scan_id),
        "hashset": e.match.hashset,
        "hashset_version": e.match.hashset_version,
        "entry_id": e.match.entry_id,
        "tool": e.match.tool,
        "tool_version": e.match.tool_version,
        "distance": e.match.distance,
        "approval_id": e.match.approval_id,
        "approval_reason": e.match.approval_reason,
        "observed_at": _time(e.observed_at),
    }


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "from": d.from_state.value,
        "to": d.to_state.value,
        "action": d.action.value if d.action else None,
        "ground": d.ground,
        "legal_ground": d.legal_ground,
        "explanation": d.explanation,
        "reported_to": d.reported_to,
        "report_reference": d.report_reference,
        "automated_detection": d.automated_detection,
        "automated_decision": d.automated_decision,
        "decided_by": d.actor,
        "decided_at": _time(d.decided_at),
    }


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items()}


def _count_decision(request: web.Request, ticket: Ticket, automated: bool = False) -> None:
    request.app[METRICS].ticket_decisions.labels(state=ticket.state.value, automated=str(automated).lower()).inc()


# ---------------------------------------------------------------- notices


async def post_notice(request: web.Request) -> web.Response:
    principal = await authenticate(request, PLATFORM)
    notice = parse_notice(await _json(request))
    async with request.app[POOL].acquire() as conn:
        ticket, notice_id, opened = await ticket_store.file_notice(conn, notice, _actor(principal), request.app[CONFIG])
    if opened:
        request.app[METRICS].tickets_opened.labels(source=notice.source.value).inc()
    return web.json_response(
        {"notice_id": notice_id, "ticket_id": str(ticket.id), "attached": not opened, "ticket": ticket_json(ticket)},
        status=201 if opened else 200,
    )


# ---------------------------------------------------------------- reading tickets


def _enum_list(raw: str | None, kind: type[State] | type[Source], name: str) -> list[Any] | None:
    if not raw:
        return None
    try:
        return [kind(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"{name!r} takes a comma-separated list of: {', '.join(k.value for k in kind)}") from None


def _int_param(raw: str | None, name: str, low: int, high: int, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name!r} must be an integer") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name!r} must be between {low} and {high}")
    return value


def _query_text(raw: str | None, name: str) -> str | None:
    if not raw:
        return None
    if "\x00" in raw or len(raw) > 1024:
        raise InvalidInput(f"{name!r} must be at most 1024 characters, without NUL")
    return raw


def _bool_param(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{name!r} must be true or false")


async def list_tickets(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    q = request.query
    filters = ticket_store.TicketFilter(
        states=_enum_list(q.get("state"), State, "state"),
        sources=_enum_list(q.get("source"), Source, "source"),
        priority=_int_param(q.get("priority"), "priority", 1, 4, None),
        content_id=_query_text(q.get("content_id"), "content_id"),
        overdue=_bool_param(q.get("overdue"), "overdue"),
        limit=_int_param(q.get("limit"), "limit", 1, MAX_PAGE, 50) or 50,
        offset=_int_param(q.get("offset"), "offset", 0, 10_000_000, 0) or 0,
    )
    async with request.app[POOL].acquire() as conn:
        tickets = await ticket_store.list_tickets(conn, filters)
    now = datetime.now(UTC)
    return web.json_response(
        {"tickets": [ticket_json(t, now) for t in tickets], "limit": filters.limit, "offset": filters.offset}
    )


async def get_ticket(request: web.Request) -> web.Response:
    await authenticate(request, READERS)
    async with request.app[POOL].acquire() as conn:
        detail = await ticket_store.ticket_detail(conn, _ticket_id(request))
    return web.json_response(
        {
            **ticket_json(detail.ticket),
            "evidence": [_evidence_json(e) for e in detail.evidence],
            "notice_records": [_plain(n) for n in detail.notices],
            "decisions": [_decision_json(d) for d in detail.decisions],
            "deliveries": [_plain(d) for d in detail.deliveries],
        }
    )


async def get_statement(request: web.Request) -> web.Response:
    await authenticate(request, STATEMENT_READERS)
    async with request.app[POOL].acquire() as conn:
        body = await statement_store.latest_statement(conn, _ticket_id(request))
    return web.json_response(body)


# ---------------------------------------------------------------- the queue


async def claim(request: web.Request) -> web.Response:
    principal = await authenticate(request, STAFF)
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.claim_next(conn, _actor(principal), request.app[CONFIG])
    if ticket is None:
        return web.json_response({"ticket": None})
    return web.json_response({"ticket": ticket_json(ticket)})


async def release(request: web.Request) -> web.Response:
    principal = await authenticate(request, STAFF)
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.release(conn, _ticket_id(request), _actor(principal), override=principal.role is Role.LEAD)
    return web.json_response(ticket_json(ticket))


async def assign(request: web.Request) -> web.Response:
    principal = await authenticate(request, LEAD)
    body = await _json(request)
    prefix = parse_reason(body, "key_prefix")
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.assign(conn, _ticket_id(request), _actor(principal), prefix or "", request.app[CONFIG])
    return web.json_response(ticket_json(ticket))


# ---------------------------------------------------------------- decisions


async def decide(request: web.Request) -> web.Response:
    principal = await authenticate(request, STAFF)
    decision = parse_decision(await _json(request))
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.decide(
            conn,
            _ticket_id(request),
            _actor(principal),
            decision,
            request.app[CONFIG],
            override=principal.role is Role.LEAD,
            on_decision=request.app[DECISION_HOOKS],
        )
    _count_decision(request, ticket)
    request.app[WAKER].wake()
    return web.json_response(ticket_json(ticket))


async def report(request: web.Request) -> web.Response:
    principal = await authenticate(request, STAFF)
    hotline, reference = parse_report(await _json(request))
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.report(
            conn, _ticket_id(request), _actor(principal), hotline, reference, request.app[CONFIG], request.app[DECISION_HOOKS]
        )
    _count_decision(request, ticket)
    return web.json_response(ticket_json(ticket))


async def close(request: web.Request) -> web.Response:
    principal = await authenticate(request, STAFF)
    explanation = parse_reason(await _json(request, optional=True), required=False)
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.close(
            conn, _ticket_id(request), _actor(principal), explanation, request.app[CONFIG], request.app[DECISION_HOOKS]
        )
    _count_decision(request, ticket)
    return web.json_response(ticket_json(ticket))


async def appeal(request: web.Request) -> web.Response:
    principal = await authenticate(request, PLATFORM)
    explanation = parse_reason(await _json(request))
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.appeal(
            conn, _ticket_id(request), _actor(principal), explanation, request.app[CONFIG], request.app[DECISION_HOOKS]
        )
    _count_decision(request, ticket)
    return web.json_response(ticket_json(ticket))


async def legal_hold(request: web.Request) -> web.Response:
    principal = await authenticate(request, HOLDERS)
    body = await _json(request)
    hold = body.get("hold") if isinstance(body, dict) else None
    if not isinstance(hold, bool):
        raise InvalidInput("'hold' must be true or false")
    reason = parse_reason(body, "reason", required=hold)
    async with request.app[POOL].acquire() as conn:
        ticket = await ticket_store.set_hold(conn, _ticket_id(request), _actor(principal), hold, reason)
    return web.json_response(ticket_json(ticket))


async def retry_actions(request: web.Request) -> web.Response:
    principal = await authenticate(request, HOLDERS)
    async with request.app[POOL].acquire() as conn:
        count = await outbox_store.retry_failed(conn, _ticket_id(request), _actor(principal))
    request.app[WAKER].wake()
    return web.json_response({"retried": count})


# ---------------------------------------------------------------- policies and audit


def _policy_json(p: Policy) -> dict[str, Any]:
    return {"hashset": p.hashset, "tool": p.tool, "auto_action": p.auto_action, "action": p.action.value}


async def get_policies(request: web.Request) -> web.Response:
    await authenticate(request, POLICY_READERS)
    async with request.app[POOL].acquire() as conn:
        policies = await policy_store.list_policies(conn)
    return web.json_response({"policies": [_policy_json(p) for p in policies]})


async def put_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request, ADMIN)
    body = await _json(request)
    hashset = parse_reason(body, "hashset")
    tool = parse_reason(body, "tool", required=False) or "*"
    auto = body.get("auto_action")
    if not isinstance(auto, bool):
        raise InvalidInput("'auto_action' must be true or false")
    raw_action = parse_reason(body, "action", required=False) or Action.REMOVE.value
    if raw_action not in {a.value for a in RESTRICTIONS}:
        raise InvalidInput("'action' must be one of: block, remove, restrict")
    action = Action(raw_action)
    policy = Policy(hashset=hashset or "", tool=tool, auto_action=auto, action=action)
    async with request.app[POOL].acquire() as conn:
        await policy_store.set_policy(conn, _actor(principal), policy)
    return web.json_response(_policy_json(policy))


async def get_audit(request: web.Request) -> web.Response:
    await authenticate(request, AUDIT_READERS)
    after = _int_param(request.query.get("after"), "after", 0, 2**62, 0) or 0
    limit = _int_param(request.query.get("limit"), "limit", 1, MAX_PAGE, 100) or 100
    subject = _query_text(request.query.get("subject"), "subject")
    async with request.app[POOL].acquire() as conn:
        entries = await auditlog.audit_page(conn, after_seq=after, subject=subject, limit=limit)
    return web.json_response(
        {"entries": [{**json.loads(e.entry), "hash": e.hash.hex(), "prev_hash": e.prev_hash.hex()} for e in entries]}
    )


def _period_param(raw: str | None, name: str, default: datetime) -> datetime:
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name!r} must be an ISO 8601 date or timestamp") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def get_transparency(request: web.Request) -> web.Response:
    await authenticate(request, TRANSPARENCY_READERS)
    now = datetime.now(UTC)
    end = _period_param(request.query.get("to"), "to", now)
    start = _period_param(
        request.query.get("from"), "from", end.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    if start >= end:
        raise InvalidInput("'from' must be before 'to'")
    async with request.app[POOL].acquire() as conn:
        body = await transparency_store.transparency_report(conn, start, end)
    return web.json_response(body)


ROUTES: Mapping[tuple[str, str], Handler] = {
    ("POST", "/v1/notices"): post_notice,
    ("GET", "/v1/tickets"): list_tickets,
    ("GET", "/v1/tickets/{ticket_id}"): get_ticket,
    ("GET", "/v1/tickets/{ticket_id}/statement"): get_statement,
    ("POST", "/v1/queue/claim"): claim,
    ("POST", "/v1/tickets/{ticket_id}/release"): release,
    ("POST", "/v1/tickets/{ticket_id}/assign"): assign,
    ("POST", "/v1/tickets/{ticket_id}/decision"): decide,
    ("POST", "/v1/tickets/{ticket_id}/report"): report,
    ("POST", "/v1/tickets/{ticket_id}/close"): close,
    ("POST", "/v1/tickets/{ticket_id}/appeal"): appeal,
    ("POST", "/v1/tickets/{ticket_id}/legal-hold"): legal_hold,
    ("POST", "/v1/tickets/{ticket_id}/retry-actions"): retry_actions,
    ("GET", "/v1/policies"): get_policies,
    ("PUT", "/v1/policies"): put_policy,
    ("GET", "/v1/audit"): get_audit,
    ("GET", "/v1/transparency"): get_transparency,
}

# Who may call what; the role tests check the service against this table and a copy of their own.
ROLES: Mapping[tuple[str, str], frozenset[Role]] = {
    ("POST", "/v1/notices"): PLATFORM,
    ("GET", "/v1/tickets"): READERS,
    ("GET", "/v1/tickets/{ticket_id}"): READERS,
    ("GET", "/v1/tickets/{ticket_id}/statement"): STATEMENT_READERS,
    ("POST", "/v1/queue/claim"): STAFF,
    ("POST", "/v1/tickets/{ticket_id}/release"): STAFF,
    ("POST", "/v1/tickets/{ticket_id}/assign"): LEAD,
    ("POST", "/v1/tickets/{ticket_id}/decision"): STAFF,
    ("POST", "/v1/tickets/{ticket_id}/report"): STAFF,
    ("POST", "/v1/tickets/{ticket_id}/close"): STAFF,
    ("POST", "/v1/tickets/{ticket_id}/appeal"): PLATFORM,
    ("POST", "/v1/tickets/{ticket_id}/legal-hold"): HOLDERS,
    ("POST", "/v1/tickets/{ticket_id}/retry-actions"): HOLDERS,
    ("GET", "/v1/policies"): POLICY_READERS,
    ("PUT", "/v1/policies"): ADMIN,
    ("GET", "/v1/audit"): AUDIT_READERS,
    ("GET", "/v1/transparency"): TRANSPARENCY_READERS,
}


def setup_routes(app: web.Application) -> None:
    for (method, path), handler in ROUTES.items():
        app.router.add_route(method, path, handler)
