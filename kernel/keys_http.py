"""The HTTP edge of key controls: a lead or admin lifts a suspension by the probing detector.

(Granting distances and setting a key's own limit are command-line only: they widen what a key
can do, so they need shell access to the deployment, not just a staff key.)
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from msgspec import Struct

from kernel import keycontrols
from kernel.api import Text
from kernel.appkeys import KEY_GUARD, POOL
from kernel.keys import Role
from kernel.routes import Route, caller, read_body

RELEASERS = frozenset({Role.LEAD, Role.ADMIN})
MAX_BODY = 16 * 1024


class KeyReleaseRequest(Struct, forbid_unknown_fields=True):
    reason: Text


class KeyReleased(Struct, forbid_unknown_fields=True):
    key_prefix: str
    released_by: str
    released_at: datetime


async def release(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await read_body(request, KeyReleaseRequest, MAX_BODY)
    prefix = request.match_info["key_prefix"]
    async with request.app[POOL].acquire() as conn:
        key_id, at = await keycontrols.release(conn, prefix, actor=principal.prefix, reason=body.reason)
    request.app[KEY_GUARD].controls.forget(key_id)
    return web.json_response({"key_prefix": prefix, "released_by": principal.prefix, "released_at": at.isoformat()})


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/v1/keys/{key_prefix}/release",
        handler=release,
        roles=RELEASERS,
        summary="Lift a key's suspension by the probing detector",
        description="The suspended key works again at once on this replica, within HASHGUARD_KEY_CACHE_S on the others."
        " Recorded in the audit log with the reason.",
        path_params={"key_prefix": str},
        body=KeyReleaseRequest,
        responses={200: ("Released.", KeyReleased)},
        errors=frozenset({404, 409}),
    ),
]
