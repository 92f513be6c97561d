"""The console's pages: sign-in, the queue, a ticket, the figures, the person's settings, users and keys.

Server-rendered (Jinja2, autoescaped) with a little plain JavaScript for the keyboard, the live
countdowns and the dialogs; every form is a POST carrying the session's CSRF token, answered with
a redirect (post/redirect/get). Each action is allowed to exactly the roles of the API route that
does the same thing (``API_ROLES`` reads them from ``takedown.http.ROUTES``), and performs it
through the same takedown stores the API handlers call: the console adds pages, not rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlencode

import jinja2
import msgspec
from aiohttp import web
from msgspec import Struct

from kernel import keystore, staffstore
from kernel.api import parse_moment
from kernel.appkeys import METRICS, POOL, SETTINGS
from kernel.auditlog import append_audit
from kernel.errors import BadRequest, ServiceError
from kernel.keys import Role
from kernel.routes import Route, caller, invalid, read_body
from kernel.staff import SESSION_COOKIE, SignInOutcome, StaffSession, staff_role
from kernel.staff_http import (
    LOGIN_CSRF_COOKIE,
    CsrfRefused,
    check_csrf,
    check_origin,
    clear_cookie,
    count_sign_in,
    csrf_matches,
    current_session,
    new_login_csrf,
    one,
    read_form,
    require,
    session_policy,
    session_token,
    set_cookie,
)
from takedown import decision_store, queue_store, statement_store, ticket_store, transparency_store
from takedown import http as takedown_http
from takedown.console import charts, exposure, store
from takedown.console.exposure import STEP_FILTERS, break_due, preview_url_problem
from takedown.errors import InvalidInput, StatementNotFound, TicketNotFound
from takedown.requests import DecisionBody, ReportBody, Short, parse_decision
from takedown.tickets import Actor, Evidence, Ticket
from takedown.workflow import HUMAN_DECISIONS, NEEDS_REVIEW, RESTRICTIONS, Source, State

Fields = Mapping[str, list[str]]
PageHandler = Callable[[web.Request, StaffSession, Fields], Awaitable[web.StreamResponse]]


def _route_roles(method: str, path: str) -> frozenset[Role]:
    for route in takedown_http.ROUTES:
        if route.method == method and route.path == path:
            return route.roles
    raise KeyError(f"no API route {method} {path}")  # pragma: no cover: a renamed route fails at import


T = "/v1/tickets/{ticket_id}"
# The roles of each console action: those of the API route that does the same thing.
API_ROLES: Mapping[str, frozenset[Role]] = {
    "read": _route_roles("GET", "/v1/tickets"),
    "claim": _route_roles("POST", "/v1/queue/claim"),
    "release": _route_roles("POST", f"{T}/release"),
    "decide": _route_roles("POST", f"{T}/decision"),
    "report": _route_roles("POST", f"{T}/report"),
    "assign": _route_roles("POST", f"{T}/assign"),
    "hold": _route_roles("POST", f"{T}/legal-hold"),
    "statement": _route_roles("GET", f"{T}/statement"),
    "figures": _route_roles("GET", "/v1/transparency"),
    "audit": _route_roles("GET", "/v1/audit"),
    "admin": _route_roles("PUT", "/v1/policies"),
}
# Escalating gives a ticket back with a reason: who may release it may escalate it. Seeing a preview
# is for those who decide; raising someone's exposure limit for those who assign work.
API_ROLES = {**API_ROLES, "escalate": API_ROLES["release"], "reveal": API_ROLES["decide"], "expose": API_ROLES["assign"]}

ACTION_NAMES = {"actioned": "Actioned", "dismissed": "Dismissed as a wrong match", "reinstated": "Reinstated", "upheld": "Upheld"}


class EntryFacts(Struct, frozen=True):
    """What the lists know of one matched entry, for the evidence panel."""

    classification: str | None = None
    issuer: str | None = None
    list_status: str | None = None
    threshold: int | None = None


class EvidenceCatalogue(Protocol):
    """The lists' side of the evidence (issuer, classification, status, threshold), which takedown
    does not own: the composition root passes one in (``CATALOGUE``)."""

    async def describe(self, conn: Any, evidence: Sequence[Evidence]) -> dict[int, EntryFacts]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminPage:
    """A page another context adds to the console's admin menu (lists, tools), by the root."""

    path: str
    title: str
    roles: frozenset[Role]


CATALOGUE = web.AppKey("console_catalogue", EvidenceCatalogue)
ADMIN_PAGES: web.AppKey[tuple[AdminPage, ...]] = web.AppKey("console_admin_pages")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("takedown.console", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

SECURITY_HEADERS = {
    # Images: a platform's preview URL, shown only on request. Nothing else from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: http://127.0.0.1:* http://localhost:*; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _short(ticket_id: uuid.UUID | str) -> str:
    return str(ticket_id)[:8]


def left(due: datetime, now: datetime) -> str:
    """Time left until ``due`` as a person reads it ("2 h 05 min left", "overdue 12 min")."""
    seconds = int((due - now).total_seconds())
    word = "left" if seconds >= 0 else "overdue"
    s = abs(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes:02d} min"
    elif minutes:
        text = f"{minutes} min {secs:02d} s"
    else:
        text = f"{secs} s"
    return f"{text} left" if word == "left" else f"overdue {text}"


_templates.globals.update(left=left, short=_short, step_filters=STEP_FILTERS, action_names=ACTION_NAMES, title=charts.title)


def _can(session: StaffSession | None, what: str) -> bool:
    return session is not None and session.role in API_ROLES[what]


def render(
    request: web.Request, template: str, session: StaffSession | None, *, status: int = 200, **context: Any
) -> web.Response:
    settings = request.app[SETTINGS]
    now = datetime.now(UTC)
    pages = [p for p in request.app.get(ADMIN_PAGES, ()) if session is not None and session.role in p.roles]
    body = _templates.get_template(template).render(
        session=session,
        csrf=session.csrf_token if session else "",
        can={k: _can(session, k) for k in API_ROLES},
        admin_pages=pages,
        now=now,
        break_due=session is not None and break_due(session.stretch_started_at, session.now, settings.console_break_min),
        break_min=settings.console_break_min,
        path=request.path,
        **context,
    )
    response = web.Response(text=body, content_type="text/html", status=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def see_other(location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(request: web.Request, session: StaffSession | None, exc: ServiceError) -> web.Response:
    back = request.headers.get("Referer") or ""
    return render(
        request,
        "error.html",
        session,
        status=exc.status,
        code=exc.code,
        message=exc.message,
        back=back if back.startswith(f"{request.scheme}://{request.host}/console") else "/console/",
    )


def page(
    what: str | None, *, post: bool = False
) -> Callable[[PageHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A console handler: a live session required (else the sign-in page), the role of ``what``
    (``API_ROLES``), and for a POST a valid CSRF token, all checked before the handler runs."""

    def wrap(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None:
                if post:
                    return error_page(request, None, CsrfRefused("your session has ended: sign in again"))
                target = request.path_qs if request.path.startswith("/console/") else "/console/"
                return see_other("/console/login?" + urlencode({"next": target}))
            fields: Fields = {}
            try:
                if post:
                    fields = await read_form(request)
                    check_csrf(request, session, fields)
                if what is not None:
                    require(session, API_ROLES[what], f"use this part of the console ({what})")
                response = await handler(request, session, fields)
            except ServiceError as exc:
                request.app[METRICS].errors.labels(code=exc.code).inc()
                return error_page(request, session, exc)
            response.headers.update(SECURITY_HEADERS)
            return response

        run.__name__ = handler.__name__
        return run

    return wrap


def actor_of(session: StaffSession) -> Actor:
    """The person as takedown's actor: their backing key, named by its prefix as the API names a key."""
    p = session.principal
    return Actor(key_id=p.key_id, name=p.prefix, tenants=p.tenants, tenant_id=None)


def _ticket_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["ticket_id"])
    except ValueError:
        raise TicketNotFound("ticket ids are UUIDs; no ticket has that id") from None


def _checked(kind: type[Any], values: dict[str, Any]) -> Any:
    """A form's fields through the API's own request type (the same text rules and limits)."""
    try:
        return msgspec.convert(values, kind)
    except msgspec.ValidationError as exc:
        raise invalid(exc, what="the form", bad=InvalidInput) from None


def _text(fields: Fields, name: str) -> str | None:
    value = one(fields, name)
    return value.strip() if value and value.strip() else None


# ---------------------------------------------------------------- sign-in


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        return see_other(_next(request.query.get("next")))
    token = new_login_csrf()
    response = render(request, "login.html", None, login_csrf=token, next=_next(request.query.get("next")), failed=False)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


def _next(raw: str | None) -> str:
    # Only a path inside the console: never an open redirect.
    if raw and raw.startswith("/console/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/console/"  # the home page for the person's role


async def login(request: web.Request) -> web.StreamResponse:
    try:
        fields = await read_form(request, 8 * 1024)
        check_origin(request)
        if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), one(fields, "csrf")) or not one(fields, "csrf"):
            raise CsrfRefused()
    except ServiceError as exc:
        return error_page(request, None, exc)
    email, password = one(fields, "email") or "", one(fields, "password") or ""
    async with request.app[POOL].acquire() as conn:
        result = await staffstore.sign_in(conn, email, password, session_policy(request.app[SETTINGS]), remote=request.remote)
    count_sign_in(request, result.outcome)
    if not result.ok:
        token = new_login_csrf()
        message = (
            "This account is locked after too many wrong passwords; try again later or ask an admin."
            if result.outcome == SignInOutcome.LOCKED
            else "The e-mail address or the password is wrong."
        )
        response = render(
            request,
            "login.html",
            None,
            status=401,
            login_csrf=token,
            next=_next(one(fields, "next")),
            failed=True,
            message=message,
        )
        set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response
    assert result.token is not None
    response = see_other(_next(one(fields, "next")))
    set_cookie(response, request, SESSION_COOKIE, result.token)
    clear_cookie(response, request, LOGIN_CSRF_COOKIE)
    return response


@page(None, post=True)
async def logout(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    token = session_token(request)
    if token is not None:
        async with request.app[POOL].acquire() as conn:
            await staffstore.sign_out(conn, token, session.email)
    response = see_other("/console/login")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


async def home(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is None:
        return see_other("/console/login")
    if _can(session, "read"):
        return see_other("/console/queue")
    if _can(session, "admin"):
        return see_other("/console/admin")
    if _can(session, "figures"):
        return see_other("/console/figures")
    return see_other("/console/me")


# ---------------------------------------------------------------- the queue


def _enum_values(raw: str | None, kind: type[Any]) -> list[Any] | None:
    if not raw or raw == "all":
        return None
    try:
        return [kind(v) for v in raw.split(",") if v]
    except ValueError:
        raise InvalidInput(f"no such filter value: {raw!r}") from None


@page("read")
async def queue_page(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    q = request.query
    state_raw = q.get("state", "")
    states = _enum_values(state_raw, State) if state_raw else sorted(NEEDS_REVIEW)
    scope = session.principal.tenants
    async with request.app[POOL].acquire() as conn:
        tenants = [t for t in await keystore.list_tenants(conn) if scope is None or t.id in scope]
        tenant_name = q.get("tenant") or None
        tenant = next((t for t in tenants if t.name == tenant_name), None)
        if tenant_name and tenant is None:
            raise InvalidInput(f"no tenant named {tenant_name!r}")
        filters = store.QueueFilter(
            states=states,
            sources=_enum_values(q.get("source"), Source),
            hashset=q.get("list") or None,
            tenant_id=tenant.id if tenant else None,
            overdue=q.get("overdue") == "1",
            held_by=session.principal.key_id if q.get("mine") == "1" else None,
            escalated=q.get("escalated") == "1",
            scope=scope,
        )
        rows = await store.queue(conn, filters)
        counts = await store.queue_counts(conn, scope)
        hashsets = await store.queue_hashsets(conn, scope)
        names = await staffstore.names_of_keys(conn, [r.lease_key_id for r in rows if r.lease_key_id is not None])
        allowance = await store.allowance(conn, session.principal.key_id, request.app[SETTINGS].exposure_limit)
    return render(
        request,
        "queue.html",
        session,
        rows=rows,
        counts=counts,
        names=names,
        hashsets=hashsets,
        tenants=tenants,
        states=[s.value for s in State],
        sources=[s.value for s in Source],
        chosen={
            "state": state_raw,
            "source": q.get("source", ""),
            "list": q.get("list", ""),
            "tenant": tenant_name or "",
            "overdue": q.get("overdue") == "1",
            "mine": q.get("mine") == "1",
            "escalated": q.get("escalated") == "1",
        },
        done=q.get("done") if q.get("done") in {*ACTION_NAMES, "reported", "released", "escalated", "bulk"} else None,
        done_count=q.get("n", ""),
        allowance=allowance,
        restrictions=sorted(a.value for a in RESTRICTIONS),
        my_key=session.principal.key_id,
    )


@page("claim", post=True)
async def claim_next(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        ticket = await queue_store.claim_next(conn, actor_of(session), request.app[takedown_http.CONFIG])
    if ticket is None:
        return see_other("/console/queue?done=empty")
    return see_other(f"/console/tickets/{ticket.id}")


# ---------------------------------------------------------------- a ticket


def _reasons(ticket: Ticket, evidence: Sequence[Evidence], *, viewed: bool) -> dict[str, list[str]]:
    """The standard explanations each dialog offers (chosen with a digit key); a person may write their own."""
    exact = bool(evidence) and all(e.match.distance == 0 for e in evidence)
    lists = ", ".join(sorted({f"{e.match.hashset} v{e.match.hashset_version}" for e in evidence})) or "no list"
    tools = ", ".join(sorted({e.match.tool for e in evidence}))
    action = []
    if exact:
        action.append(f"Exact match to a verified known-CSAM entry ({lists}, {tools}); decided on the evidence without viewing.")
    elif evidence:
        worst = max(e.match.distance for e in evidence)
        action.append(
            f"Near match to a verified known-CSAM entry ({lists}, {tools}, distance {worst} within threshold); decided on the evidence."
        )
    action.append("The notice and the evidence together show apparent CSAM; decided without viewing.")
    if viewed:  # offered only where a preview was in fact revealed
        action.append("Viewed the preview and confirmed apparent CSAM.")
    return {
        "actioned": action,
        "dismissed": [
            "Wrong match: the evidence does not support the list entry.",
            "The notice does not show illegal content.",
        ],
        "upheld": ["The appeal gives no reason to doubt the match; the restriction stands."],
        "reinstated": ["The appeal shows the match was wrong; the content is reinstated."],
        "escalate": ["Needs a lead's decision: unclear evidence.", "Needs a lead: possible ongoing abuse or urgent risk."],
    }


@page("read")
async def ticket_page(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    scope = session.principal.tenants
    key_id = session.principal.key_id
    async with request.app[POOL].acquire() as conn:
        detail = await ticket_store.ticket_detail(conn, ticket_id, scope)
        try:
            statement = await statement_store.latest_statement(conn, ticket_id, scope) if _can(session, "statement") else None
        except StatementNotFound:
            statement = None
        history = await store.ticket_history(conn, ticket_id)
        sightings = await store.entry_sightings(conn, ticket_id, scope)
        escalations = await store.escalations(conn, ticket_id)
        previews = await store.previews(conn, ticket_id, key_id)
        reveals = await store.ticket_reveals(conn, ticket_id)
        viewed = await store.was_revealed(conn, ticket_id)
        allowance = await store.allowance(conn, key_id, request.app[SETTINGS].exposure_limit)
        catalogue = request.app.get(CATALOGUE)
        facts = await catalogue.describe(conn, detail.evidence) if catalogue is not None and detail.evidence else {}
        keys = await store.staff_keys(conn) if _can(session, "assign") else []
        key_names = await staffstore.names_of_keys(
            conn,
            [k for k in [detail.ticket.lease_key_id, *[r["key_id"] for r in reveals], *[k.id for k in keys]] if k is not None],
        )
    ticket = detail.ticket
    now = datetime.now(UTC)
    holds = ticket.leased_to(key_id, now)
    held_by_other = ticket.lease_expires_at is not None and ticket.lease_expires_at > now and not holds
    lead = session.role is Role.LEAD
    decisions = sorted(HUMAN_DECISIONS.get(ticket.state, frozenset()))
    return render(
        request,
        "ticket.html",
        session,
        t=ticket,
        detail=detail,
        statement=statement,
        history=history,
        sightings=sightings,
        escalations=escalations,
        previews=previews,
        reveals=reveals,
        viewed=viewed,
        allowance=allowance,
        facts=facts,
        keys=[k for k in keys if k.sees(ticket.tenant_id)],
        key_names=key_names,
        holds=holds,
        held_by_other=held_by_other,
        holder=key_names.get(ticket.lease_key_id or -1, ticket.lease_key_prefix),
        may_decide=_can(session, "decide") and bool(decisions) and (holds or lead),
        may_claim=_can(session, "claim") and ticket.state in NEEDS_REVIEW and not holds and not held_by_other,
        may_report=_can(session, "report") and ticket.state in (State.ACTIONED, State.UPHELD) and (holds or lead),
        decisions=decisions,
        reasons=_reasons(ticket, detail.evidence, viewed=viewed),
        restrictions=sorted(a.value for a in RESTRICTIONS),
        previews_off=session.previews_off,
    )


def _back(ticket_id: uuid.UUID, anchor: str = "") -> web.Response:
    return see_other(f"/console/tickets/{ticket_id}{anchor}")


@page("claim", post=True)
async def claim_ticket(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    async with request.app[POOL].acquire() as conn:
        await store.claim_ticket(conn, ticket_id, actor_of(session), request.app[takedown_http.CONFIG])
    return _back(ticket_id)


@page("release", post=True)
async def release(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    async with request.app[POOL].acquire() as conn:
        await queue_store.release(conn, ticket_id, actor_of(session), override=session.role is Role.LEAD)
    return see_other("/console/queue?done=released")


def _explanation(fields: Fields) -> str:
    """The explanation written, or the standard one chosen (the script copies it into the text)."""
    written = _text(fields, "explanation") or _text(fields, "reason")
    if written:
        return written
    raise InvalidInput("an explanation is required: choose a standard one (1–9) or write your own")


async def _decide(request: web.Request, session: StaffSession, ticket_id: uuid.UUID, fields: Fields) -> Ticket:
    decision = _text(fields, "decision") or ""
    values: dict[str, Any] = {"decision": decision, "explanation": _explanation(fields)}
    if decision == State.ACTIONED.value:
        values["action"] = _text(fields, "action") or "remove"
        values["ground"] = "illegal_content"
    body = _checked(DecisionBody, values)
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.decide(
            conn,
            ticket_id,
            actor_of(session),
            parse_decision(body),
            request.app[takedown_http.CONFIG],
            override=session.role is Role.LEAD,
            on_decision=request.app[takedown_http.DECISION_HOOKS],
        )
    request.app[METRICS].ticket_decisions.labels(state=ticket.state.value, automated="false").inc()
    request.app[takedown_http.WAKER].wake()
    return ticket


@page("decide", post=True)
async def decide(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket = await _decide(request, session, _ticket_id(request), fields)
    return see_other(f"/console/queue?done={ticket.state.value}")


@page("report", post=True)
async def report(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    body = _checked(ReportBody, {"hotline": _text(fields, "hotline") or "", "reference": _text(fields, "reference")})
    async with request.app[POOL].acquire() as conn:
        ticket = await decision_store.report(
            conn,
            ticket_id,
            actor_of(session),
            body.hotline.strip(),
            body.reference.strip() if body.reference else None,
            request.app[takedown_http.CONFIG],
            request.app[takedown_http.DECISION_HOOKS],
            override=session.role is Role.LEAD,
        )
    request.app[METRICS].ticket_decisions.labels(state=ticket.state.value, automated="false").inc()
    return see_other("/console/queue?done=reported")


class _Reason(Struct):
    reason: Short


@page("escalate", post=True)
async def escalate(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    reason = _checked(_Reason, {"reason": _explanation(fields)}).reason.strip()
    async with request.app[POOL].acquire() as conn:
        await store.escalate(conn, ticket_id, actor_of(session), reason, override=session.role is Role.LEAD)
    return see_other("/console/queue?done=escalated")


@page("assign", post=True)
async def assign(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    prefix = _text(fields, "key_prefix")
    if prefix is None:
        raise InvalidInput("choose the reviewer to hand the ticket to")
    async with request.app[POOL].acquire() as conn:
        await queue_store.assign(conn, ticket_id, actor_of(session), prefix, request.app[takedown_http.CONFIG])
    return _back(ticket_id)


@page("hold", post=True)
async def legal_hold(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    hold = one(fields, "hold") == "1"
    reason = _text(fields, "reason")
    if hold and reason is None:
        raise InvalidInput("say why the ticket's evidence is held")
    async with request.app[POOL].acquire() as conn:
        await ticket_store.set_hold(conn, ticket_id, actor_of(session), hold, reason)
    return _back(ticket_id)


@page("reveal", post=True)
async def reveal(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    ticket_id = _ticket_id(request)
    try:
        preview_id, step = int(one(fields, "preview") or ""), int(one(fields, "step") or "")
    except ValueError:
        raise InvalidInput("name the preview and the step") from None
    metrics = request.app[METRICS].console_reveals
    try:
        async with request.app[POOL].acquire() as conn:
            await store.reveal(
                conn,
                ticket_id,
                preview_id,
                actor_of(session),
                step,
                limit=request.app[SETTINGS].exposure_limit,
                previews_off=session.previews_off,
            )
    except exposure.ExposureLimitReached:
        metrics.labels(outcome="limit").inc()
        raise
    except exposure.ExposureRefused:
        metrics.labels(outcome="off").inc()
        raise
    metrics.labels(outcome="shown").inc()
    return _back(ticket_id, f"#preview-{preview_id}")


@page("decide", post=True)
async def bulk(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    """One restriction for several selected exact known-hash matches: each is claimed (if free) and
    decided separately, through the same rules as one at a time; any ticket that is not an exact
    match is refused before anything is decided."""
    try:
        ids = [uuid.UUID(v) for v in fields.get("ticket", [])]
    except ValueError:
        raise InvalidInput("the selection holds a ticket id that is not one") from None
    if not ids:
        raise InvalidInput("select at least one ticket (x toggles the one in focus)")
    if len(ids) > 100:
        raise InvalidInput("at most 100 tickets at a time")
    actor, config = actor_of(session), request.app[takedown_http.CONFIG]
    async with request.app[POOL].acquire() as conn:
        rows = {
            r.id: r for r in await store.queue(conn, store.QueueFilter(states=[State.OPEN, State.IN_REVIEW], scope=actor.tenants))
        }
        for ticket_id in ids:
            row = rows.get(ticket_id)
            if row is None or not row.exact or row.source is not Source.HASH_MATCH:
                raise InvalidInput(
                    f"ticket {_short(ticket_id)} is not an undecided exact known-hash match: decide it on its own page"
                )
        for ticket_id in ids:
            current = await ticket_store.get_ticket(conn, ticket_id, actor.tenants)
            if not current.leased_to(actor.key_id or -1, datetime.now(UTC)):
                await store.claim_ticket(conn, ticket_id, actor, config)
    for ticket_id in ids:
        await _decide(request, session, ticket_id, {**fields, "decision": ["actioned"]})
    return see_other(f"/console/queue?done=bulk&n={len(ids)}")


@page("expose", post=True)
async def grant_exposure(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    email = (_text(fields, "email") or "").lower()
    reason = _text(fields, "reason")
    try:
        extra = int(one(fields, "extra") or "")
    except ValueError:
        raise InvalidInput("say how many more previews to allow (1 to 100)") from None
    if not 1 <= extra <= 100 or reason is None:
        raise InvalidInput("a grant is 1 to 100 more previews for today, with a reason")
    async with request.app[POOL].acquire() as conn:
        user = await staffstore.find_user(conn, email)
        if user is None or user.disabled_at is not None:
            raise InvalidInput(f"no active account for {email}")
        await store.grant_exposure(conn, user.key_id, user.email, extra, reason, actor_of(session))
    return see_other("/console/me?granted=1")


# ---------------------------------------------------------------- figures


def _period(request: web.Request) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    try:
        end = parse_moment("'to'", request.query["to"], naive_is_utc=True) if request.query.get("to") else now
        start = (
            parse_moment("'from'", request.query["from"], naive_is_utc=True)
            if request.query.get("from")
            else end.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if start >= end:
        raise InvalidInput("'from' must be before 'to'")
    return start, end


async def _figures(request: web.Request, session: StaffSession) -> tuple[dict[str, Any], datetime, datetime]:
    start, end = _period(request)
    async with request.app[POOL].acquire() as conn:
        report_body = await transparency_store.transparency_report(conn, start, end, session.principal.tenants)
    return report_body, start, end


@page("figures")
async def figures_page(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    body, start, end = await _figures(request, session)
    found = charts.sections(body)
    return render(
        request,
        "figures.html",
        session,
        sections=[(s, charts.bar_chart(s), charts.slug(s.key)) for s in found],
        start=start,
        end=end,
        query=urlencode({"from": start.isoformat(), "to": end.isoformat()}),
    )


@page("figures")
async def figures_csv(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    body, _, _ = await _figures(request, session)
    wanted = request.query.get("figure", "")
    section = next((s for s in charts.sections(body) if charts.slug(s.key) == wanted), None)
    if section is None:
        raise BadRequest(f"no figure named {wanted!r}")
    return web.Response(
        text=charts.csv_text(section, body.get("period")),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="hashguard-{charts.slug(section.key)}.csv"'},
    )


# ---------------------------------------------------------------- the person's own settings


@page(None)
async def me_page(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        allowance = await store.allowance(conn, session.principal.key_id, request.app[SETTINGS].exposure_limit)
    return render(request, "me.html", session, allowance=allowance, granted=request.query.get("granted") == "1")


@page(None, post=True)
async def me_save(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        await staffstore.set_previews_off(conn, session.user_id, session.email, one(fields, "previews_off") == "1")
    return see_other("/console/me")


# ---------------------------------------------------------------- users and keys (admins)


@page("admin")
async def admin_page(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        users = await staffstore.list_users(conn)
        keys = await keystore.list_keys(conn)
        tenants = await keystore.list_tenants(conn)
    return render(
        request,
        "admin.html",
        session,
        users=users,
        keys=keys,
        tenants=tenants,
        roles=sorted(r.value for r in Role if r is not Role.PLATFORM),
        made=request.query.get("made"),
    )


@page("admin", post=True)
async def admin_users(request: web.Request, session: StaffSession, fields: Fields) -> web.StreamResponse:
    what = one(fields, "do")
    email = _text(fields, "email") or ""
    async with request.app[POOL].acquire() as conn:
        if what == "create":
            names = [n for n in fields.get("tenants", []) if n]
            ids = await keystore.tenant_ids(conn, names)
            await staffstore.create_user(
                conn,
                email=email,
                role=staff_role(one(fields, "role") or ""),
                password=one(fields, "password") or "",
                tenants=list(ids.values()),
                actor=session.email,
            )
        elif what == "disable":
            await staffstore.disable_user(conn, email, actor=session.email, reason=_text(fields, "reason"))
        elif what == "reset":
            await staffstore.reset_password(conn, email, one(fields, "password") or "", actor=session.email)
        elif what == "revoke-key":
            prefix = _text(fields, "prefix") or ""
            async with conn.transaction():
                if not await keystore.revoke_key(conn, prefix):
                    raise InvalidInput(f"no active key starts with {prefix!r}")
                await append_audit(conn, actor=session.email, action="key.revoked", subject=f"key:{prefix}")
        else:
            raise InvalidInput("no such change")
    return see_other("/console/admin?" + urlencode({"made": what or ""}))


# ---------------------------------------------------------------- static files

_STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    body = (resources.files("takedown.console") / "static" / name).read_bytes()
    response = web.Response(body=body, content_type=_STATIC[name])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def register_pages(app: web.Application) -> None:
    """The console's pages (HTML, not part of the API document) under /console/."""
    r = app.router
    r.add_get("/console", home)
    r.add_get("/console/", home)
    r.add_get("/console/login", login_page)
    r.add_post("/console/login", login)
    r.add_post("/console/logout", logout)
    r.add_get("/console/queue", queue_page)
    r.add_post("/console/claim-next", claim_next)
    r.add_post("/console/bulk", bulk)
    r.add_get("/console/tickets/{ticket_id}", ticket_page)
    for name, handler in {
        "claim": claim_ticket,
        "release": release,
        "decide": decide,
        "report": report,
        "escalate": escalate,
        "assign": assign,
        "hold": legal_hold,
        "reveal": reveal,
    }.items():
        r.add_post(f"/console/tickets/{{ticket_id}}/{name}", handler)
    r.add_post("/console/exposure", grant_exposure)
    r.add_get("/console/figures", figures_page)
    r.add_get("/console/figures.csv", figures_csv)
    r.add_get("/console/me", me_page)
    r.add_post("/console/me", me_save)
    r.add_get("/console/admin", admin_page)
    r.add_post("/console/admin/users", admin_users)
    r.add_get("/console/static/{name}", static)


# ---------------------------------------------------------------- the API: previews from platforms


class PreviewBody(Struct, forbid_unknown_fields=True):
    url: Short


class PreviewSupplied(Struct, forbid_unknown_fields=True):
    preview_id: int
    ticket_id: uuid.UUID
    supplied_at: datetime


async def post_preview(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await read_body(request, PreviewBody, 16 * 1024, bad=InvalidInput)
    url = body.url.strip()
    if (problem := preview_url_problem(url)) is not None:
        raise InvalidInput(problem)
    ticket_id = takedown_http._ticket_id(request)
    async with request.app[POOL].acquire() as conn:
        preview_id, at = await store.add_preview(conn, ticket_id, url, takedown_http._actor(principal))
    return web.json_response({"preview_id": preview_id, "ticket_id": str(ticket_id), "supplied_at": at.isoformat()}, status=201)


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/v1/tickets/{ticket_id}/previews",
        path_params={"ticket_id": uuid.UUID},
        handler=post_preview,
        roles=frozenset({Role.PLATFORM}),
        summary="Offer a preview of the ticket's content for the console (optional; never fetched by hashguard)",
        description="A URL on the platform's own service (https; http only on loopback). Reviewers decide known-hash "
        "matches without viewing; a preview is shown only on a reviewer's request, blurred and greyscale first, each "
        "step recorded and counted against HASHGUARD_EXPOSURE_LIMIT. Purged with the ticket's evidence.",
        body=PreviewBody,
        responses={201: ("The preview is on record.", PreviewSupplied)},
        errors=frozenset({404}),
    ),
]
