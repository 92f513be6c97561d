"""The console's pages over other contexts: the lists' side of a ticket's evidence, and the admin
pages for hash lists and tool approvals. In the root because only the root joins takedown (the
console) with hashsets and the detector; the pages render with the console's templates and checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from detector.approvals import http as approvals_http
from detector.approvals import pg as approvals_pg
from detector.tools.registry import ToolRegistry
from hashsets import entries, lists
from hashsets.errors import HashsetError
from kernel.appkeys import POOL
from kernel.errors import BadRequest
from kernel.keys import Role
from kernel.staff import StaffSession
from kernel.staff_http import one, require
from takedown.console import http as console
from takedown.tickets import Evidence

if TYPE_CHECKING:  # the driver's types only: the queries are the lists' and the approvals' own
    import asyncpg


def _roles(routes: Sequence[Any], method: str, path: str) -> frozenset[Role]:
    return next(r.roles for r in routes if r.method == method and r.path == path)


TOOL_READERS = _roles(approvals_http.ROUTES, "GET", "/v1/tools/approvals")
LIST_READERS = frozenset({Role.LEAD, Role.ADMIN, Role.AUDITOR})  # as the policies they carry (GET /v1/policies)
LIST_CHANGERS = console.API_ROLES["admin"]

PAGES = (
    console.AdminPage(path="/console/admin/lists", title="Lists", roles=LIST_READERS),
    console.AdminPage(path="/console/admin/tools", title="Tools", roles=TOOL_READERS),
)


class ListsCatalogue:
    """``takedown.console.http.EvidenceCatalogue`` from the stored lists: each matched entry's
    classification, its list's issuer (of the matched version), status and threshold."""

    def __init__(self, tools: ToolRegistry) -> None:
        self._thresholds = {t.name: t.threshold() for t in tools}

    async def describe(self, conn: asyncpg.Connection, evidence: Sequence[Evidence]) -> dict[int, console.EntryFacts]:
        described = await entries.describe_entries(conn, sorted({e.match.entry_row for e in evidence}))
        facts: dict[int, console.EntryFacts] = {}
        summaries: dict[str, lists.HashsetSummary | None] = {}
        issuers: dict[tuple[str, int], str] = {}
        for e in evidence:
            name = e.match.hashset
            if name not in summaries:
                try:
                    summaries[name] = await lists.get_hashset(conn, name)
                    for v in await lists.list_versions(conn, name):
                        issuers[(name, v.version)] = v.issuer
                except HashsetError:
                    summaries[name] = None
            summary = summaries[name]
            entry = described.get(e.match.entry_row)
            threshold = summary.threshold if summary and summary.threshold is not None else self._thresholds.get(e.match.tool)
            facts[e.match.entry_row] = console.EntryFacts(
                classification=entry.category if entry else None,
                issuer=issuers.get((name, e.match.hashset_version)) or (summary.source if summary else None),
                list_status=summary.status if summary else None,
                threshold=threshold,
            )
        return facts


@console.page(None)
async def lists_page(request: web.Request, session: StaffSession, fields: console.Fields) -> web.StreamResponse:
    require(session, LIST_READERS, "read the lists")
    async with request.app[POOL].acquire() as conn:
        found = await lists.list_hashsets(conn)
        versions = {s.name: await lists.list_versions(conn, s.name) for s in found}
    tables = [
        {
            "title": "Hash lists",
            "columns": ["List", "Tool", "Status", "Version", "Entries", "Threshold", "Source", "Signature", "Imported"],
            "rows": [
                [
                    s.name,
                    s.tool,
                    s.status,
                    s.version,
                    s.entry_count,
                    s.threshold if s.threshold is not None else "tool default",
                    s.source,
                    s.signature_status,
                    s.imported_at.strftime("%Y-%m-%d %H:%M") if s.imported_at else None,
                ]
                for s in found
            ],
        },
        {
            "title": "Versions",
            "columns": ["List", "Version", "Kind", "Issuer", "Issuer's version", "Signature", "Entries", "+", "−", "Current"],
            "rows": [
                [
                    name,
                    v.version,
                    v.kind,
                    v.issuer,
                    v.issuer_version,
                    v.signature_status,
                    v.entry_count,
                    v.added_count,
                    v.retracted_count,
                    "yes" if v.current else "",
                ]
                for name, vs in versions.items()
                for v in vs
            ],
        },
    ]
    forms = []
    if session.role in LIST_CHANGERS:
        names = [s.name for s in found]
        forms = [
            {
                "title": "Change a list's status",
                "action": "/console/admin/lists",
                "button": "Change status (audited)",
                "fields": [
                    {"name": "list", "label": "List", "choices": names},
                    {"name": "status", "label": "Status", "choices": ["active", "shadow", "disabled"]},
                    {"name": "reason", "label": "Reason", "required": True},
                ],
            },
            {
                "title": "Set a list's threshold",
                "action": "/console/admin/lists/threshold",
                "button": "Set threshold (audited)",
                "fields": [
                    {"name": "list", "label": "List", "choices": names},
                    {"name": "threshold", "label": "Threshold (empty: the tool's default)"},
                    {"name": "reason", "label": "Reason", "required": True},
                ],
            },
        ]
    return console.render(
        request, "admin_table.html", session, heading="Hash lists", tables=tables, forms=forms, made=request.query.get("made")
    )


def _list_change(fields: console.Fields) -> tuple[str, str]:
    name, reason = (one(fields, "list") or "").strip(), (one(fields, "reason") or "").strip()
    if not name or not reason:
        raise BadRequest("name the list and say why")
    return name, reason


@console.page(None, post=True)
async def lists_status(request: web.Request, session: StaffSession, fields: console.Fields) -> web.StreamResponse:
    require(session, LIST_CHANGERS, "change lists")
    name, reason = _list_change(fields)
    try:
        async with request.app[POOL].acquire() as conn:
            await lists.set_status(conn, name, one(fields, "status") or "", session.email, reason)
    except HashsetError as exc:
        raise BadRequest(str(exc)) from None
    return console.see_other("/console/admin/lists?made=1")


@console.page(None, post=True)
async def lists_threshold(request: web.Request, session: StaffSession, fields: console.Fields) -> web.StreamResponse:
    require(session, LIST_CHANGERS, "change lists")
    name, reason = _list_change(fields)
    raw = (one(fields, "threshold") or "").strip()
    try:
        threshold = int(raw) if raw else None
    except ValueError:
        raise BadRequest("a threshold is a whole number, or empty for the tool's default") from None
    if threshold is not None and not 0 <= threshold <= 256:
        raise BadRequest("a threshold is 0 to 256")
    try:
        async with request.app[POOL].acquire() as conn:
            await lists.set_threshold(conn, name, threshold, session.email, reason)
    except HashsetError as exc:
        raise BadRequest(str(exc)) from None
    return console.see_other("/console/admin/lists?made=1")


@console.page(None)
async def tools_page(request: web.Request, session: StaffSession, fields: console.Fields) -> web.StreamResponse:
    require(session, TOOL_READERS, "read tool approvals")
    async with request.app[POOL].acquire() as conn:
        approvals = await approvals_pg.list_approvals(conn)
        allowances = await approvals_pg.standing_allowances(conn)
        events = await approvals_pg.list_events(conn, limit=50)
    tables = [
        {
            "title": "Approvals by authorities",
            "columns": ["Tool", "Versions", "Authority", "Jurisdiction", "Instrument", "Status", "Valid", "Accuracy", "Evidence"],
            "rows": [
                [
                    a.tool,
                    a.versions,
                    a.authority,
                    a.jurisdiction,
                    a.instrument,
                    a.status,
                    f"{a.valid_from:%Y-%m-%d} – {a.valid_until:%Y-%m-%d}" if a.valid_until else f"from {a.valid_from:%Y-%m-%d}",
                    a.accuracy_statement,
                    a.evidence_url,
                ]
                for a in approvals
            ],
        },
        {
            "title": "Local allowances (no approval covers the tool here)",
            "columns": ["Tool", "Versions", "Reason", "Allowed by", "Since"],
            "rows": [[a.tool, a.versions, a.reason, a.allowed_by, f"{a.allowed_at:%Y-%m-%d %H:%M}"] for a in allowances],
        },
        {
            "title": "Recent changes",
            "columns": ["When", "Who", "What", "Tool"],
            "rows": [[f"{e.at:%Y-%m-%d %H:%M}", e.actor, e.action, e.tool] for e in events],
        },
    ]
    return console.render(request, "admin_table.html", session, heading="Tool approvals", tables=tables, forms=[], made=None)


def register(app: web.Application, tools: ToolRegistry) -> None:
    app[console.CATALOGUE] = ListsCatalogue(tools)
    app[console.ADMIN_PAGES] = PAGES
    console.register_pages(app)
    app.router.add_get("/console/admin/lists", lists_page)
    app.router.add_post("/console/admin/lists", lists_status)
    app.router.add_post("/console/admin/lists/threshold", lists_threshold)
    app.router.add_get("/console/admin/tools", tools_page)
