"""HMA-compatible matching endpoints: a platform's HMA integration switches to hashguard by changing its base URL.

``GET /m/raw_lookup``, ``GET /m/lookup``, ``POST /m/compare`` and ``GET /m/index/status`` answer in the
shapes of HMA's matching API, but every lookup is hashguard's own lookup use case (``ScanService.lookup``):
a platform key, its tenant, its rate limit, the probing detector, evidence and a ticket for a match.

What differs from HMA, on purpose: list hash values are never returned; ``include_distance`` needs a key
granted distances (403 otherwise), and ``/m/lookup``'s matches carry a distance only for such a key;
``url`` is refused (hashguard never fetches content from a URL); the coin flip of HMA's
``matching_enabled_ratio`` does not exist (a list is active, shadow or disabled); errors have hashguard's
``{"error": {"code", "message"}}`` body. ``bank_content_id`` is the list entry's row id.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from aiohttp import web

from detector.appkeys import HOLDER, SCANNER, TOOLS
from detector.hma_api import Distance, IndexStatus, LookupQuery, MatchWithDistance, RawLookupAnswer, RawLookupQuery
from detector.scan import Outcome, ScanContext
from detector.tools.base import HashTool
from kernel.errors import BadRequest, Forbidden, MissingField
from kernel.keys import DEFAULT_TENANT_ID, Role
from kernel.routes import Route, caller, read_body, read_query
from kernel.web import CONTROLS

PLATFORM = frozenset({Role.PLATFORM})
# HMA's signal type names -> hashguard's tool names (any hashguard tool name is accepted as itself).
SIGNAL_TYPES = {"pdq": "pdq", "video_md5": "md5"}
MAX_COMPARE_BODY = 64 * 1024


class UrlFetchingRefused(BadRequest):
    """hashguard never fetches content from a URL: hash it yourself and send signal_type and signal."""

    code = "url_fetching_refused"


class DistancesNotGranted(Forbidden):
    """This key is not granted distances (hashguard keys grant-distances): ask without include_distance."""

    code = "distances_not_granted"


class UnknownSignalType(BadRequest):
    """No enabled detection tool computes this signal type."""

    code = "unknown_signal_type"


def _tool(request: web.Request, signal_type: str) -> HashTool:
    name = SIGNAL_TYPES.get(signal_type, signal_type)
    tools = request.app[TOOLS]
    if name not in tools.names():
        raise UnknownSignalType(
            f"no enabled tool computes {signal_type[:40]!r} (known: {', '.join(sorted(SIGNAL_TYPES))}, {', '.join(tools.names())})"
        )
    return tools.get(name)


async def _lookup(request: web.Request, signal_type: str, signal: str, content_id: str | None) -> Outcome:
    tool = _tool(request, signal_type)
    value = tool.parse_hex(signal)
    principal = caller(request)
    context = ScanContext(
        # HMA sends no item id: the item is named by its hash (the same hash joins the same ticket).
        content_id=content_id or f"hma:{tool.name}:{hashlib.sha256(value).hexdigest()[:24]}",
        content_url=None,
        api_key_id=principal.key_id,
        tenant_id=DEFAULT_TENANT_ID if principal.tenant_id is None else principal.tenant_id,
    )
    [outcome] = await request.app[SCANNER].lookup([(context, {tool.name: value})])
    return outcome


def _banks(text: str | None) -> set[str] | None:
    return {b.strip() for b in text.split(",") if b.strip()} if text else None


async def raw_lookup(request: web.Request) -> web.Response:
    query = read_query(request, RawLookupQuery)
    distances = request[CONTROLS].distances
    if query.include_distance and not distances:
        raise DistancesNotGranted()
    outcome = await _lookup(request, query.signal_type, query.signal, query.content_id)
    banks = _banks(query.banks)
    matches = [m for m in outcome.matches if banks is None or m.hashset in banks]
    if query.include_distance:
        answer: list[Any] = [MatchWithDistance(bank_content_id=m.entry_row, distance=str(m.distance)) for m in matches]
    else:
        answer = [m.entry_row for m in matches]
    return web.json_response(msgspec.to_builtins(RawLookupAnswer(matches=answer)))


async def lookup(request: web.Request) -> web.Response:
    query = read_query(request, LookupQuery)
    if query.url:
        raise UrlFetchingRefused()
    if not query.signal_type:
        raise MissingField("signal_type")
    if not query.signal:
        raise MissingField("signal")
    outcome = await _lookup(request, query.signal_type, query.signal, query.content_id)
    distances = request[CONTROLS].distances
    banks = _banks(query.banks)
    by_bank: dict[str, list[dict[str, Any]]] = {}
    for m in outcome.matches:
        if banks is not None and m.hashset not in banks:
            continue
        match: dict[str, Any] = {"bank_content_id": m.entry_row}
        if distances:
            match["distance"] = str(m.distance)
        by_bank.setdefault(m.hashset, []).append(match)
    return web.json_response(by_bank)


async def compare(request: web.Request) -> web.Response:
    """Two hashes the caller sent, per signal type: whether they are within the tool's threshold, and how far apart."""
    body = await read_body(request, dict[str, list[str]], MAX_COMPARE_BODY)
    if not body:
        raise BadRequest('send at least one signal type with two hashes, e.g. {"pdq": [a, b]}')
    answer: dict[str, Any] = {}
    for signal_type, pair in body.items():
        if len(pair) != 2:
            raise BadRequest(f"{signal_type[:40]!r}: give exactly two hashes to compare")
        tool = _tool(request, signal_type)
        left, right = (tool.parse_hex(h) for h in pair)
        distance = tool.distance(left, right)
        answer[signal_type] = [distance <= tool.threshold(), {"distance": distance}]
    return web.json_response(answer)


async def index_status(request: web.Request) -> web.Response:
    snapshot = request.app[HOLDER].current
    by_tool = snapshot.entries_by_tool() if snapshot is not None else {}
    built = int(snapshot.loaded_at.timestamp()) if snapshot is not None else -1
    names = {
        **{t: t for t in request.app[TOOLS].names()},
        **{k: v for k, v in SIGNAL_TYPES.items() if v in request.app[TOOLS].names()},
    }
    answer = {
        signal_type: msgspec.to_builtins(IndexStatus(present=snapshot is not None, built_to=built, size=by_tool.get(tool, 0)))
        for signal_type, tool in sorted(names.items())
    }
    return web.json_response(answer)


_ERRORS = frozenset({403, 503})

ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/m/raw_lookup",
        handler=raw_lookup,
        roles=PLATFORM,
        summary="HMA-compatible raw lookup: the matched entries' row ids",
        description="HMA's `GET /m/raw_lookup`. Never returns hash values; `include_distance` needs a key granted distances.",
        query=RawLookupQuery,
        responses={200: ("HMA's answer: matched bank_content_ids (with distances if asked and granted).", RawLookupAnswer)},
        errors=_ERRORS,
    ),
    Route(
        method="GET",
        path="/m/lookup",
        handler=lookup,
        roles=PLATFORM,
        summary="HMA-compatible lookup: matches by list (HMA's banks)",
        description="HMA's `GET /m/lookup` by `signal_type` and `signal`; `url` is refused (`url_fetching_refused`).",
        query=LookupQuery,
        responses={200: ("List name -> matches.", dict[str, list[MatchWithDistance]])},
        errors=_ERRORS,
    ),
    Route(
        method="POST",
        path="/m/compare",
        handler=compare,
        roles=PLATFORM,
        summary="HMA-compatible comparison of two hashes the caller sent",
        description='HMA\'s `POST /m/compare`: {"pdq": [a, b]} -> {"pdq": [within_threshold, {"distance": n}]}.',
        body=dict[str, list[str]],
        responses={200: ("Per signal type: within the tool's threshold, and the distance.", dict[str, tuple[bool, Distance]])},
        errors=_ERRORS,
    ),
    Route(
        method="GET",
        path="/m/index/status",
        handler=index_status,
        roles=PLATFORM,
        summary="HMA-compatible index status",
        responses={200: ("Per signal type: loaded, when, how many entries.", dict[str, IndexStatus])},
        errors=frozenset({503}),
    ),
]
