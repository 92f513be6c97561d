"""The HTTP edge of staff sign-in, shared by every page the console serves: the session cookie,
CSRF tokens, form bodies, and the role check that matches the API's.

A signed-in person's ``Principal`` is their account's backing staff key (``kernel.staff``), so a
console handler asks ``allowed(session, route_roles)`` with the very role set the API route of the
same action declares: a role refused by the API is refused by the console, whatever page sent it.

The cookie is ``HttpOnly`` and ``SameSite=Strict``, and ``Secure`` unless the console is reached on
loopback (where there is no TLS to require). Every form carries the session's CSRF token; a POST
without it, or with another, is refused before anything runs, and so is one whose ``Origin``
names another site.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from aiohttp import web

from kernel import staffstore
from kernel.appkeys import METRICS, POOL, SETTINGS
from kernel.errors import BadRequest, Forbidden, PayloadTooLarge, ServiceError, UnsupportedMedia
from kernel.keys import Role
from kernel.settings import Settings
from kernel.staff import (
    SESSION_COOKIE,
    SessionPolicy,
    StaffSession,
    csrf_matches,
    is_loopback_host,
    new_token,
    parse_cookie_token,
)
from kernel.web import body_deadline, read_limited

LOGIN_CSRF_COOKIE = "hg_console_login"
MAX_FORM = 64 * 1024

STAFF_SESSION: web.RequestKey[StaffSession] = web.RequestKey("hashguard_staff_session", StaffSession)


class CsrfRefused(ServiceError):
    """The form was refused: its CSRF token is missing or wrong. Reload the page and send it again."""

    status = 403
    code = "csrf_refused"


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle_min=settings.console_idle_min,
        absolute_h=settings.console_session_h,
        lockout_failures=settings.console_lockout_failures,
        lockout_min=settings.console_lockout_min,
    )


def secure_cookies(request: web.Request) -> bool:
    """``Secure`` everywhere but loopback: behind a TLS proxy the browser sees https and keeps it."""
    return not is_loopback_host(request.host)


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, request: web.Request, name: str) -> None:
    response.del_cookie(name, path="/console", secure=secure_cookies(request), httponly=True, samesite="Strict")


async def current_session(request: web.Request) -> StaffSession | None:
    """The request's live session (its idle clock restarted), or None."""
    if STAFF_SESSION in request:
        return request[STAFF_SESSION]
    token = parse_cookie_token(request.cookies.get(SESSION_COOKIE))
    if token is None:
        return None
    async with request.app[POOL].acquire() as conn:
        found = await staffstore.session(conn, token, session_policy(request.app[SETTINGS]))
    if found is not None:
        request[STAFF_SESSION] = found
    return found


def session_token(request: web.Request) -> str | None:
    return parse_cookie_token(request.cookies.get(SESSION_COOKIE))


def allowed(session: StaffSession, roles: frozenset[Role]) -> bool:
    return session.role in roles


def require(session: StaffSession, roles: frozenset[Role], what: str) -> None:
    """Refuse, as the API would, an action the person's role may not take."""
    if not allowed(session, roles):
        raise Forbidden(f"the {session.role} role may not {what}")


async def read_form(request: web.Request, limit: int = MAX_FORM) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body: each field's values, checked to be UTF-8 text."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMedia("console forms are sent as application/x-www-form-urlencoded")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the form is larger than {limit} bytes")
    async with body_deadline(request):
        raw = await read_limited(request.content.read, limit, "the form")
    fields: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeError, ValueError):
        raise BadRequest("the form is not valid URL-encoded UTF-8") from None
    for name, value in pairs:
        if "\x00" in value:
            raise BadRequest(f"the field {name!r} holds a NUL character")
        fields.setdefault(name, []).append(value)
    return fields


def one(fields: Mapping[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[-1] if values else None


def check_origin(request: web.Request) -> None:
    """A form posted from another site is refused (SameSite=Strict keeps the cookie from it too)."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
        raise CsrfRefused("the form was sent from another site")


def check_csrf(request: web.Request, session: StaffSession, fields: Mapping[str, list[str]]) -> None:
    check_origin(request)
    if not csrf_matches(session.csrf_token, one(fields, "csrf")):
        raise CsrfRefused()


def new_login_csrf() -> str:
    return new_token()


def count_sign_in(request: web.Request, outcome: str) -> None:
    request.app[METRICS].console_sign_ins.labels(outcome=outcome).inc()
