"""The takedown context's HTTP edge: notices, the staff queue, decisions, appeals, statements,
policies and the audit log. Parsing and JSON only; the work is in the ``*_store`` modules and the pure ones.

Roles (``kernel.keys.Role``): platforms file notices and appeals and read statements; reviewers
work the queue; leads also reassign, override leases and set legal holds; admins set list
policies, holds and delivery retries; auditors read everything and change nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from kernel import auditlog, keystore
from kernel.api import parse_moment, trimmed
from kernel.appkeys import METRICS, POOL
from kernel.keys import Principal, Role
from kernel.routes import Route, caller, read_body, read_query
from takedown import (
    api,
    decision_store,
    figures_formats,
    outbox_store,
    policy_store,
    queue_store,
    statement_store,
    ticket_store,
    transparency,
    transparency_store,
)
from takedown.config import TakedownConfig
from takedown.errors import InvalidInput, TenantNotFound, TicketNotFound
from takedown.jobs import Waker
from takedown.reports import api as report_api
from takedown.reports import store as report_store
from takedown.reports.errors import UnknownHotline
from takedown.requests import (
    AppealBody,
    AssignBody,
    AuditQuery,
    CloseBody,
    DecisionBody,
    LegalHoldBody,
    NoticeBody,
    PolicyBody,
    ReportBody,
    TicketQuery,
    TransparencyExportQuery,
    TransparencyQuery,
    enum_list,
    parse_decision,
    parse_hold,
    parse_notice,
    parse_policy,
    parse_report,
    parse_review,
    parse_uploader,
)
from takedown.rules import Policy
from takedown.tickets import Actor, Decision, Evidence, Ticket
from takedown.workflow import Source, State

T = TypeVar("T")

CONFIG = web.AppKey("takedown_config", TakedownConfig)


@dataclass(frozen=True, kw_only=True, slots=True)
class Reporting:
    """Whether hashguard can file NCMEC reports itself (None: it can; else why not), and the filing job's waker."""

    ncmec_problem: str | None
    waker: Waker


REPORTING = web.AppKey("takedown_reporting", Reporting)
WAKER = web.AppKey("takedown_waker", Waker)
# What other contexts do when a ticket is decided; the composition root fills it (hashguard/app.py passes hashguard.flows.wrong_match_feedback).
DECISION_HOOKS: web.AppKey[Sequence[decision_store.DecisionHook]] = web.AppKey("takedown_decision_hooks")
# What the transparency figures say about the deployment, and the list versions in force (from the
# lists' context); the composition root fills them (hashguard/figures.py). Absent: left out.
FIGURES_CONTEXT = web.AppKey("takedown_figures_context", transparency.Context)
LISTS_IN_FORCE: web.AppKey[transparency_store.ListsInForce] = web.AppKey("takedown_lists_in_force")

MAX_BODY = 256 * 1024

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


def _actor(principal: Principal) -> Actor:
    """The caller as takedown's actor, with the tenants it may see: every store call by ticket id
    takes them into its query, so another tenant's ticket answers exactly as an unknown one."""
    return Actor(key_id=principal.key_id, name=principal.prefix, tenants=principal.tenants, tenant_id=principal.tenant_id)


def _ticket_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["ticket_id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise TicketNotFound("ticket ids are UUIDs; no ticket has that id") from None


async def _body(request: web.Request, kind: type[T], *, optional: bool = False) -> T:
    return await read_body(request, kind, MAX_BODY, optional=optional, bad=InvalidInput)


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
    video = (
        {
            "query_share": round(e.match.query_share, 3),
            "index_share": round(e.match.index_share or 0.0, 3),
            "matched_frames": e.match.matched_frames,
        }
        if e.match.query_share is not None
        else {}
    )
    return {
        **video,
        "scan_id": str(e.scan_id),
        "hashset": e.match.hashset,
        "hashset_version": e.match.hashset_version,
        "entry_id": e.match.entry_id,
        "tool": e.match.tool,
        "tool_version": e.match.tool_version,
        "distance": e.match.distance,
        "approval_id": e.match.approval_id,
        "approval_reason": e.match.approval_reason,
        "transform": e.match.transform,
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
    principal = caller(request)
    body = await _body(request, NoticeBody)
    notice, uploader = parse_notice(body), parse_uploader(body.uploader)
    async with request.app[POOL].acquire() as conn:
        ticket, notice_id, opened = await report_store.file_notice(conn, notice, _actor(principal), request.app[CONFIG], uploader)
    if opened:
        request.app[METRICS].tickets_opened.labels(source=notice.source.value).inc()
    return web.json_response(
        {"notice_id": notice_id, "ticket_id": str(ticket.id), "attached": not opened, "ticket": ticket_json(ticket)},
        status=201 if opened else 200,
    )


# ---------------------------------------------------------------- reading tickets


async def list_tickets(request: web.Request) -> web.Response:
    q = read_query(request, TicketQuery, bad=InvalidInput)
    filters = ticket_store.TicketFilter(
        states=enum_list(q.state, State),
        sources=enum_list(q.source, Source),
        priority=q.priority,
        content_id=q.content_id,
        overdue=q.overdue,
        limit=q.limit,
        offset=q.offset,
        tenants=caller(request).tenants,
    )
    async with request.app[POOL].acquire() as conn:
        tickets = await ticket_store.list_tickets(conn, filters)
    now = datetime.now(UTC)
    return web.json_response(
        {"tickets": [ticket_json(t, now) for t in tickets], "limit": filters.limit, "offset": filters.offset}
    )


async def get_ticket(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        detail = await ticket_store.ticket_detail(conn, _ticket_id(request), caller(request).tenants)
        reports = await report_store.ticket_reports(conn, detail.ticket.id)
    return web.json_response(
        {
            **ticket_json(detail.ticket),
            "evidence": [_evidence_json(e) for e in detail.evidence],
            "notice_records": [_plain(n) for n in detail.notices],
            "decisions": [_decision_json(d) for d in detail.decisions],
            "deliveries": [_plain(d) for d in detail.deliveries],
            "reports": [report_api.report_json(r) for r in reports],
        }
    )


async def get_statement(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        body = await statement_store.latest_statement(conn, _ticket_id(request), caller(request).tenants)
    return web.json_response(body)


# ---------------------------------------------------------------- the queue


async def claim(request: web.Request) -> web.Response:
    principal = caller(request)
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.claim_next(conn, _actor(principal), request.app[CONFIG])
    if ticket is None:
        return web.json_response({"ticket": None})
    return web.json_response({"ticket": ticket_json(ticket)})


async def release(request: web.Request) -> web.Response:
    principal = caller(request)
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.release(conn, _ticket_id(request), _actor(principal), override=principal.role is Role.LEAD)
    return web.json_response(ticket_json(ticket))


async def assign(request: web.Request) -> web.Response:
    principal = caller(request)
    prefix = (await _body(request, AssignBody)).key_prefix.strip()
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.assign(conn, _ticket_id(request), _actor(principal), prefix, request.app[CONFIG])
    return web.json_response(ticket_json(ticket))


# ---------------------------------------------------------------- decisions


async def decide(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await _body(request, DecisionBody)
    decision, review = parse_decision(body), parse_review(body)
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.decide(
            conn,
            _ticket_id(request),
            _actor(principal),
            decision,
            request.app[CONFIG],
            override=principal.role is Role.LEAD,
            on_decision=request.app[DECISION_HOOKS],
            review=review,
        )
    _count_decision(request, ticket)
    request.app[WAKER].wake()
    return web.json_response(ticket_json(ticket))


async def report(request: web.Request) -> web.Response:
    principal = caller(request)
    hotline, reference = parse_report(await _body(request, ReportBody))
    if reference is None:
        return await _file_report(request, principal, hotline)
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.report(
            conn,
            _ticket_id(request),
            _actor(principal),
            hotline,
            reference,
            request.app[CONFIG],
            request.app[DECISION_HOOKS],
            override=principal.role is Role.LEAD,
        )
    _count_decision(request, ticket)
    return web.json_response(ticket_json(ticket))


async def _file_report(request: web.Request, principal: Principal, hotline: str) -> web.Response:
    """No reference: hashguard files the report itself (NCMEC), once per ticket; 202 with the report's record."""
    if hotline.lower() != "ncmec":
        raise UnknownHotline()
    reporting = request.app.get(REPORTING)
    problem = "hotline reporting is not set up" if reporting is None else reporting.ncmec_problem
    async with request.app[POOL].acquire() as conn:
        record, created = await report_store.request_report(
            conn,
            _ticket_id(request),
            _actor(principal),
            "ncmec",
            request.app[CONFIG],
            request.app[DECISION_HOOKS],
            override=principal.role is Role.LEAD,
            problem=problem,
        )
    if created and reporting is not None:
        request.app[METRICS].ticket_decisions.labels(state=State.REPORTED.value, automated="false").inc()
        reporting.waker.wake()
    return web.json_response(report_api.report_json(record), status=202)


async def close(request: web.Request) -> web.Response:
    principal = caller(request)
    explanation = trimmed((await _body(request, CloseBody, optional=True)).explanation)
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.close(
            conn,
            _ticket_id(request),
            _actor(principal),
            explanation,
            request.app[CONFIG],
            request.app[DECISION_HOOKS],
            override=principal.role is Role.LEAD,
        )
    _count_decision(request, ticket)
    return web.json_response(ticket_json(ticket))


async def appeal(request: web.Request) -> web.Response:
    principal = caller(request)
    explanation = (await _body(request, AppealBody)).explanation.strip()
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.appeal(
            conn, _ticket_id(request), _actor(principal), explanation, request.app[CONFIG], request.app[DECISION_HOOKS]
        )
    _count_decision(request, ticket)
    return web.json_response(ticket_json(ticket))


async def legal_hold(request: web.Request) -> web.Response:
    principal = caller(request)
    hold, reason = parse_hold(await _body(request, LegalHoldBody))
    async with request.app[POOL].acquire() as conn:
        ticket = await ticket_store.set_hold(conn, _ticket_id(request), _actor(principal), hold, reason)
    return web.json_response(ticket_json(ticket))


async def retry_actions(request: web.Request) -> web.Response:
    principal = caller(request)
    async with request.app[POOL].acquire() as conn:
        count = await outbox_store.retry_failed(conn, _ticket_id(request), _actor(principal))
    request.app[WAKER].wake()
    return web.json_response({"retried": count})


# ---------------------------------------------------------------- policies and audit


def _policy_json(p: Policy) -> dict[str, Any]:
    return {"hashset": p.hashset, "tool": p.tool, "auto_action": p.auto_action, "action": p.action.value}


async def get_policies(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        policies = await policy_store.list_policies(conn)
    return web.json_response({"policies": [_policy_json(p) for p in policies]})


async def put_policy(request: web.Request) -> web.Response:
    principal = caller(request)
    hashset, tool, auto, action = parse_policy(await _body(request, PolicyBody))
    policy = Policy(hashset=hashset, tool=tool, auto_action=auto, action=action)
    async with request.app[POOL].acquire() as conn:
        await policy_store.set_policy(conn, _actor(principal), policy)
    return web.json_response(_policy_json(policy))


async def get_audit(request: web.Request) -> web.Response:
    q = read_query(request, AuditQuery, bad=InvalidInput)
    scope = caller(request).tenants
    async with request.app[POOL].acquire() as conn:
        if scope is None:
            entries = await auditlog.audit_page(conn, after_seq=q.after, subject=q.subject, limit=q.limit)
            next_after = entries[-1].seq if entries else q.after
        else:
            entries, next_after = await ticket_store.tenant_audit_page(
                conn, scope, after_seq=q.after, subject=q.subject, limit=q.limit
            )
    return web.json_response(
        {
            "entries": [{**json.loads(e.entry), "hash": e.hash.hex(), "prev_hash": e.prev_hash.hex()} for e in entries],
            "next_after": next_after,
        }
    )


def _period_param(raw: str | None, name: str, default: datetime) -> datetime:
    if not raw:
        return default
    try:  # the one timestamp rule (kernel.api); a bare date is midnight UTC
        return parse_moment(repr(name), raw, naive_is_utc=True)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


async def _figures(request: web.Request, q: TransparencyQuery) -> dict[str, Any]:
    now = datetime.now(UTC)
    end = _period_param(q.to, "to", now)
    start = _period_param(q.from_, "from", end.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0))
    if start >= end:
        raise InvalidInput("'from' must be before 'to'")
    scope, name = caller(request).tenants, trimmed(q.tenant)
    async with request.app[POOL].acquire() as conn:
        tenants: frozenset[int] | None = scope
        if name is not None:
            # One tenant's figures; a tenant the key may not see is answered as one that does not exist.
            found = await keystore.tenant_ids(conn, [name])
            if name not in found or (scope is not None and found[name] not in scope):
                raise TenantNotFound(f"no tenant is named {name!r}")
            tenants = frozenset({found[name]})
        body = await transparency_store.transparency_report(
            conn, start, end, tenants, context=request.app.get(FIGURES_CONTEXT), lists_in_force=request.app.get(LISTS_IN_FORCE)
        )
    # "tenant": the one tenant the figures are for, or null: every tenant the key may see.
    return {**body, "tenant": name}


async def get_transparency(request: web.Request) -> web.Response:
    return web.json_response(await _figures(request, read_query(request, TransparencyQuery, bad=InvalidInput)))


async def get_transparency_export(request: web.Request) -> web.Response:
    q = read_query(request, TransparencyExportQuery, bad=InvalidInput)
    text = figures_formats.render(await _figures(request, q), q.format)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="hashguard-{q.format}.csv"'},
    )


TICKET_ID: Mapping[str, Any] = {"ticket_id": uuid.UUID}

ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/v1/notices",
        handler=post_notice,
        roles=PLATFORM,
        summary="File a notice that is not a hash match",
        description="Opens a ticket, or attaches to the content's live ticket (raising its priority and bringing its due time forward). 201 when a ticket was opened, 200 when the notice attached.",
        body=NoticeBody,
        responses={201: ("A ticket was opened.", api.Filed), 200: ("The notice attached to the live ticket.", api.Filed)},
    ),
    Route(
        method="GET",
        path="/v1/tickets",
        handler=list_tickets,
        roles=READERS,
        summary="List and filter tickets",
        query=TicketQuery,
        responses={200: ("Most urgent first.", api.TicketPage)},
    ),
    Route(
        method="GET",
        path="/v1/tickets/{ticket_id}",
        path_params=TICKET_ID,
        handler=get_ticket,
        roles=READERS,
        summary="A ticket with its evidence, notices, decisions and platform deliveries",
        responses={200: ("The ticket; evidence never holds a list entry's hash.", api.TicketDetail)},
        errors=frozenset({404}),
    ),
    Route(
        method="GET",
        path="/v1/tickets/{ticket_id}/statement",
        path_params=TICKET_ID,
        handler=get_statement,
        roles=STATEMENT_READERS,
        summary="The statement of reasons for the ticket's restriction",
        responses={200: ("DSA Art 17 statement.", api.Statement)},
        errors=frozenset({404}),
    ),
    Route(
        method="POST",
        path="/v1/queue/claim",
        handler=claim,
        roles=STAFF,
        summary="Claim the most urgent ticket that needs a person, with a lease",
        responses={200: ("The claimed ticket, or null when the queue is empty.", api.Claimed)},
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/release",
        path_params=TICKET_ID,
        handler=release,
        roles=STAFF,
        summary="Give a claimed ticket back to the queue (its holder; a lead for anyone)",
        responses={200: ("The ticket.", api.Ticket)},
        errors=frozenset({404, 409}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/assign",
        path_params=TICKET_ID,
        handler=assign,
        roles=LEAD,
        summary="Hand a ticket that awaits a decision to a reviewer",
        body=AssignBody,
        responses={200: ("The ticket.", api.Ticket)},
        errors=frozenset({404, 409}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/decision",
        path_params=TICKET_ID,
        handler=decide,
        roles=STAFF,
        summary="Decide a claimed ticket or appeal (a reviewer holding the lease, or a lead)",
        body=DecisionBody,
        responses={200: ("The ticket. A restriction queues its platform action and issues a statement of reasons.", api.Ticket)},
        errors=frozenset({404, 409}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/report",
        path_params=TICKET_ID,
        handler=report,
        roles=STAFF,
        summary="File the item with NCMEC (no reference), or record that it was reported elsewhere (with its reference)",
        description='With {"hotline": "ncmec"} and no reference hashguard files the CyberTipline report itself, once per '
        "ticket: 202 with the report's record (a second request answers the same record); the ticket is reported at once "
        "and the report's progress is in GET /v1/tickets/{id}. With a reference: recorded, filed elsewhere (200, the ticket). "
        "409 reporting_not_configured when HASHGUARD_NCMEC_URL, the credentials or HASHGUARD_REPORTER_EMAIL are unset.",
        body=ReportBody,
        responses={
            200: ("The ticket, now reported; evidence is preserved HASHGUARD_RETENTION_DAYS from now.", api.Ticket),
            202: ("The hotline report hashguard files (or already filed) for this ticket.", report_api.HotlineReport),
        },
        errors=frozenset({404, 409}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/close",
        path_params=TICKET_ID,
        handler=close,
        roles=STAFF,
        summary="Close a decided ticket; a restriction only after its appeal window",
        body=CloseBody,
        body_required=False,
        responses={200: ("The ticket.", api.Ticket)},
        errors=frozenset({404, 409}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/appeal",
        path_params=TICKET_ID,
        handler=appeal,
        roles=PLATFORM,
        summary="File the uploader's appeal within HASHGUARD_APPEAL_WINDOW_DAYS",
        body=AppealBody,
        responses={200: ("The ticket, appealed; another reviewer than the original decider decides it.", api.Ticket)},
        errors=frozenset({404, 409}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/legal-hold",
        path_params=TICKET_ID,
        handler=legal_hold,
        roles=HOLDERS,
        summary="Place or lift a legal hold: held evidence is never purged",
        body=LegalHoldBody,
        responses={200: ("The ticket.", api.Ticket)},
        errors=frozenset({404}),
    ),
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/retry-actions",
        path_params=TICKET_ID,
        handler=retry_actions,
        roles=HOLDERS,
        summary="Queue the ticket's failed platform actions again",
        responses={200: ("How many actions were queued again.", api.Retried)},
        errors=frozenset({404}),
    ),
    Route(
        method="GET",
        path="/v1/policies",
        handler=get_policies,
        roles=POLICY_READERS,
        summary="Per-list automation policies",
        responses={200: ("The policies.", api.Policies)},
    ),
    Route(
        method="PUT",
        path="/v1/policies",
        handler=put_policy,
        roles=ADMIN,
        summary="Set a list's policy: auto_action lets its matches be actioned without a reviewer",
        body=PolicyBody,
        responses={200: ("The policy.", api.Policy)},
    ),
    Route(
        method="GET",
        path="/v1/audit",
        handler=get_audit,
        roles=AUDIT_READERS,
        summary="Read the hash-chained audit log",
        query=AuditQuery,
        responses={200: ("The entries, oldest first.", api.AuditPage)},
    ),
    Route(
        method="GET",
        path="/v1/transparency",
        handler=get_transparency,
        roles=TRANSPARENCY_READERS,
        summary="Transparency figures for a period",
        description="Computed from case records, which outlive the evidence purge. Overall (every tenant the key may see) "
        "or, with ?tenant=NAME, one tenant's.",
        query=TransparencyQuery,
        responses={200: ("The figures.", api.Transparency)},
        errors=frozenset({404}),
    ),
    Route(
        method="GET",
        path="/v1/transparency/export",
        handler=get_transparency_export,
        roles=TRANSPARENCY_READERS,
        summary="Transparency figures for a period as CSV: flat, DSA Reg. 2024/2835 template, or Reg. 2021/1232 report",
        description="The same figures as /v1/transparency. Quantities hashguard does not record are empty, with a note.",
        query=TransparencyExportQuery,
        responses={200: ("The figures as CSV.", None)},
        media={200: "text/csv"},
        errors=frozenset({404}),
    ),
]
