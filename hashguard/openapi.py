"""The OpenAPI 3.1 description of every endpoint. A test checks it covers every route the app serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from detector.approvals.openapi import ACTIVATION, APPROVAL, tool_registry_paths
from kernel.appkeys import SETTINGS
from kernel.settings import Settings

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code, e.g. unsupported_media_type."},
                "message": {"type": "string", "description": "What went wrong, for people. Never contains a list entry's hash."},
            },
        }
    },
}

_MATCH = {
    "type": "object",
    "required": ["hashset", "hashset_version", "entry_id", "tool", "tool_version", "distance"],
    "properties": {
        "hashset": {"type": "string", "description": "Name of the hash list that matched."},
        "hashset_version": {"type": "integer", "description": "The list version the match was made against."},
        "entry_id": {"type": "string", "description": "The issuer's id of the matching entry (never its hash)."},
        "tool": {"type": "string", "description": "Detection tool, e.g. pdq, phash, md5."},
        "tool_version": {"type": "string"},
        "distance": {
            "type": "integer",
            "description": "Hamming distance between the upload's hash and the entry (0 for exact tools).",
        },
        "approval_id": {
            "type": ["integer", "null"],
            "description": "The tool approval the match ran under (GET /v1/tools/approvals/{id}); null under a local allowance.",
        },
        "approval_reason": {
            "type": ["string", "null"],
            "description": "Why the tool was active: approved, recommended, permitted or local_allowance.",
        },
    },
}

_VERDICT = {
    "type": "object",
    "required": ["scan_id", "content_id", "verdict", "matches", "ticket_id", "elapsed_ms"],
    "properties": {
        "scan_id": {"type": "string", "format": "uuid"},
        "content_id": {"type": "string"},
        "verdict": {"type": "string", "enum": ["match", "no_match"]},
        "matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
        "ticket_id": {
            "type": ["string", "null"],
            "description": "The takedown ticket opened for a match (null until tickets exist).",
        },
        "elapsed_ms": {"type": "number"},
    },
}

_HASHES = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]+$"},
    "description": 'Tool name to hex hash, e.g. {"pdq": "<64 hex digits>", "md5": "<32 hex digits>"}.',
}

_LOOKUP_ITEM = {
    "type": "object",
    "required": ["content_id", "hashes"],
    "properties": {
        "content_id": {"type": "string", "maxLength": 1024},
        "content_url": {"type": "string", "maxLength": 1024},
        "hashes": _HASHES,
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (missing content_id, malformed hash, bad JSON).",
        401: "Missing, unknown or revoked API key.",
        404: "No such record.",
        409: "Conflicts with the record's current state.",
        403: "The key's role may not call this endpoint.",
        413: "Body larger than this endpoint accepts (HASHGUARD_MAX_UPLOAD_BYTES for uploads).",
        415: "Not an image in a supported format, or a content type other than the one this endpoint reads.",
        422: "Corrupt or truncated image, or more pixels than HASHGUARD_MAX_PIXELS.",
        503: "Not ready or timed out: hold the upload and retry. Never a reason to publish it.",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for s in statuses
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    return _with_body_errors(_document(settings))


def _with_body_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Every operation that reads a JSON body goes through ``detector.http.read_json_body``, which answers
    413 for an oversize body and 415 for another declared content type: document both on each of them here,
    once, rather than trusting every hand-written operation to remember."""
    for methods in document["paths"].values():
        for operation in methods.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                operation["responses"] = {**_errors(413, 415), **operation["responses"]}
    return document


def _document(settings: Settings) -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
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
            "schemas": {
                "Error": _ERROR,
                "Match": _MATCH,
                "Verdict": _VERDICT,
                "LookupItem": _LOOKUP_ITEM,
                "ToolApproval": APPROVAL,
                "ToolActivation": ACTIVATION,
                **_TAKEDOWN_SCHEMAS,
            },
        },
        "paths": {
            "/v1/scan": {
                "post": {
                    "summary": "Scan an upload (role: platform)",
                    "description": "Decodes the media, hashes it with every enabled tool and matches it against every active list. "
                    f"At most {settings.max_upload_bytes} bytes and {settings.max_pixels} pixels.",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "content_id",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "The platform's id of the item. Required, here or as a form field.",
                        },
                        {"name": "content_url", "in": "query", "required": False, "schema": {"type": "string"}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "image/*": {"schema": {"type": "string", "format": "binary"}},
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["media"],
                                    "properties": {
                                        "media": {"type": "string", "format": "binary"},
                                        "content_id": {"type": "string"},
                                        "content_url": {"type": "string"},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The verdict.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verdict"}}},
                        },
                        **_errors(400, 401, 403, 413, 415, 422, 503),
                    },
                }
            },
            "/v1/lookup": {
                "post": {
                    "summary": "Look up hashes the platform computed itself (role: platform)",
                    "description": 'One item, or {"items": [...]} with up to 1000 items answered in order.',
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/LookupItem"},
                                        {
                                            "type": "object",
                                            "required": ["items"],
                                            "properties": {
                                                "items": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "maxItems": 1000,
                                                    "items": {"$ref": "#/components/schemas/LookupItem"},
                                                }
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": 'A verdict, or {"items": [verdict, ...], "elapsed_ms"} for a batch.',
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Verdict"},
                                            {
                                                "type": "object",
                                                "required": ["items"],
                                                "properties": {
                                                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Verdict"}},
                                                    "elapsed_ms": {"type": "number"},
                                                },
                                            },
                                        ]
                                    }
                                }
                            },
                        },
                        **_errors(400, 401, 403, 413, 415, 503),
                    },
                }
            },
            "/healthz": {"get": {"summary": "The process is alive", "responses": {"200": {"description": '{"status": "ok"}'}}}},
            "/readyz": {
                "get": {
                    "summary": "Database reachable, index loaded, a detection tool active; reports list versions and every tool's activation",
                    "responses": {
                        "200": {
                            "description": "Ready. `index.hashsets`: name, version, tool, entries, status (active or shadow)"
                            " of each loaded list; `index.coverage_gaps`: lists in a hash type no enabled tool computes."
                        },
                        "503": {"description": "Not ready; `problems` says why."},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (names prefixed hashguard_)",
                    "responses": {"200": {"description": "Prometheus text format."}},
                }
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1."}}}},
            **tool_registry_paths(secured, _errors),
            **_takedown_paths(secured),
        },
    }


# ---------------------------------------------------------------- takedown (tickets, queue, decisions, audit)

_STATES = ["open", "in_review", "actioned", "dismissed", "reported", "appealed", "reinstated", "upheld", "closed"]
_SOURCES = ["hash_match", "user_report", "trusted_flagger", "hotline", "authority_order"]

_TAKEDOWN_SCHEMAS: dict[str, Any] = {
    "Ticket": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "content_id": {"type": "string"},
            "content_url": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": _SOURCES, "description": "What opened the ticket."},
            "state": {"type": "string", "enum": _STATES},
            "priority": {"type": "integer", "minimum": 1, "maximum": 4, "description": "1 is the most urgent."},
            "received_at": {"type": "string", "format": "date-time"},
            "due_at": {
                "type": "string",
                "format": "date-time",
                "description": "Per source (HASHGUARD_DUE_*_H), or an order's deadline.",
            },
            "overdue": {"type": "boolean"},
            "automated_detection": {"type": "boolean"},
            "lease": {
                "type": ["object", "null"],
                "properties": {"holder": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}},
                "description": "The reviewer key (prefix) working the ticket; null when unclaimed or expired.",
            },
            "action": {"type": ["string", "null"], "enum": ["remove", "block", "restrict", None]},
            "decided_at": {"type": ["string", "null"], "format": "date-time"},
            "first_action_at": {"type": ["string", "null"], "format": "date-time"},
            "sightings": {"type": "integer", "description": "Scans and lookups that matched this content."},
            "notices": {"type": "integer", "description": "Notices received about this content."},
            "legal_hold": {"type": "boolean"},
            "legal_hold_reason": {"type": ["string", "null"]},
            "preserve_until": {"type": ["string", "null"], "format": "date-time"},
            "evidence_purged_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "Notice": {
        "type": "object",
        "required": ["source", "content_id"],
        "properties": {
            "source": {"type": "string", "enum": _SOURCES[1:]},
            "content_id": {"type": "string", "maxLength": 1024},
            "content_url": {"type": "string", "maxLength": 1024},
            "explanation": {
                "type": "string",
                "maxLength": 5000,
                "description": "Why the content is illegal (required except for orders).",
            },
            "content_type": {"type": "string", "enum": ["image", "video", "audio", "text", "other"]},
            "notifier": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                "description": "Optional: CSAM notices may be anonymous (DSA Art 16(2)(c)).",
            },
            "authority": {
                "type": "object",
                "required": ["name", "reference"],
                "properties": {
                    "name": {"type": "string"},
                    "reference": {"type": "string"},
                    "deadline": {"type": "string", "format": "date-time", "description": "The order's legal deadline."},
                },
                "description": "Required for source authority_order.",
            },
            "bona_fide": {"type": "boolean", "description": "The notifier confirms the notice is accurate and complete."},
        },
    },
    "Decision": {
        "type": "object",
        "required": ["decision", "explanation"],
        "properties": {
            "decision": {
                "type": "string",
                "enum": ["actioned", "dismissed", "reinstated", "upheld"],
                "description": "actioned/dismissed for a ticket in review; reinstated/upheld for an appeal.",
            },
            "action": {
                "type": "string",
                "enum": ["remove", "block", "restrict"],
                "description": "With actioned; default remove.",
            },
            "ground": {"type": "string", "enum": ["illegal_content", "incompatible_content"]},
            "legal_ground": {"type": "string", "maxLength": 500},
            "explanation": {"type": "string", "maxLength": 5000},
        },
    },
    "Statement": {
        "type": "object",
        "description": "DSA Art 17 statement of reasons: restriction, facts, automated means, ground, redress; "
        "plus the same decision in DSA Transparency Database field names (transparency_database).",
        "properties": {
            "ticket_id": {"type": "string"},
            "content_id": {"type": "string"},
            "issued_at": {"type": "string", "format": "date-time"},
            "restriction": {"type": "object"},
            "facts": {"type": "object"},
            "automated_means": {"type": "object"},
            "ground": {"type": "object"},
            "redress": {"type": "object"},
            "transparency_database": {"type": "object"},
        },
    },
}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return response


def _takedown_paths(secured: list[dict[str, list[str]]]) -> dict[str, Any]:
    ticket = {"$ref": "#/components/schemas/Ticket"}
    ticket_param = [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]

    def op(
        summary: str, ok: dict[str, Any], *errors: int, body: dict[str, Any] | None = None, params: bool = True
    ) -> dict[str, Any]:
        result: dict[str, Any] = {"summary": summary, "security": secured, "responses": {"200": ok, **_errors(401, 403, *errors)}}
        if params:
            result["parameters"] = ticket_param
        if body is not None:
            result["requestBody"] = body
        return result

    reason = {"type": "object", "properties": {"explanation": {"type": "string", "maxLength": 5000}}}
    return {
        "/v1/notices": {
            "post": {
                "summary": "File a notice that is not a hash match (role: platform)",
                "description": "Opens a ticket, or attaches to the content's live ticket (raising its priority and bringing "
                "its due time forward). 201 when a ticket was opened, 200 when the notice attached.",
                "security": secured,
                "requestBody": _json_body({"$ref": "#/components/schemas/Notice"}),
                "responses": {
                    "201": _ok("A ticket was opened: {notice_id, ticket_id, attached: false, ticket}."),
                    "200": _ok("The notice attached to the live ticket: {notice_id, ticket_id, attached: true, ticket}."),
                    **_errors(400, 401, 403),
                },
            }
        },
        "/v1/tickets": {
            "get": {
                "summary": "List and filter tickets (roles: reviewer, lead, auditor)",
                "security": secured,
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string"}, "description": "Comma-separated states."},
                    {"name": "source", "in": "query", "schema": {"type": "string"}, "description": "Comma-separated sources."},
                    {"name": "priority", "in": "query", "schema": {"type": "integer"}},
                    {"name": "overdue", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "content_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500, "default": 50}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "default": 0}},
                ],
                "responses": {
                    "200": _ok(
                        "Most urgent first.",
                        {
                            "type": "object",
                            "required": ["tickets", "limit", "offset"],
                            "properties": {
                                "tickets": {"type": "array", "items": ticket},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                            },
                        },
                    ),
                    **_errors(400, 401, 403),
                },
            }
        },
        "/v1/tickets/{ticket_id}": {
            "get": op(
                "A ticket with its evidence, notices, decisions and platform deliveries (roles: reviewer, lead, auditor)",
                _ok("The ticket; evidence never holds a list entry's hash."),
                404,
            )
        },
        "/v1/tickets/{ticket_id}/statement": {
            "get": op(
                "The statement of reasons for the ticket's restriction (roles: platform, reviewer, lead, auditor)",
                _ok("DSA Art 17 statement.", {"$ref": "#/components/schemas/Statement"}),
                404,
            )
        },
        "/v1/queue/claim": {
            "post": op(
                "Claim the most urgent ticket that needs a person, with a lease (roles: reviewer, lead)",
                _ok('{"ticket": Ticket} or {"ticket": null} when the queue is empty.'),
                params=False,
            )
        },
        "/v1/tickets/{ticket_id}/release": {
            "post": op(
                "Give a claimed ticket back to the queue (its holder; a lead for anyone)", _ok("The ticket.", ticket), 404, 409
            )
        },
        "/v1/tickets/{ticket_id}/assign": {
            "post": op(
                "Hand a ticket that awaits a decision to a reviewer (role: lead)",
                _ok("The ticket.", ticket),
                400,
                404,
                409,
                body=_json_body({"type": "object", "required": ["key_prefix"], "properties": {"key_prefix": {"type": "string"}}}),
            )
        },
        "/v1/tickets/{ticket_id}/decision": {
            "post": op(
                "Decide a claimed ticket or appeal (roles: reviewer holding the lease, lead)",
                _ok("The ticket. A restriction queues its platform action and issues a statement of reasons.", ticket),
                400,
                404,
                409,
                body=_json_body({"$ref": "#/components/schemas/Decision"}),
            )
        },
        "/v1/tickets/{ticket_id}/report": {
            "post": op(
                "Record that the content was reported to a hotline or authority (roles: reviewer, lead)",
                _ok("The ticket, now reported; evidence is preserved HASHGUARD_RETENTION_DAYS from now.", ticket),
                400,
                404,
                409,
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["hotline"],
                        "properties": {"hotline": {"type": "string"}, "reference": {"type": "string"}},
                    }
                ),
            )
        },
        "/v1/tickets/{ticket_id}/close": {
            "post": op(
                "Close a decided ticket (roles: reviewer, lead); a restriction only after its appeal window",
                _ok("The ticket.", ticket),
                400,
                404,
                409,
                body=_json_body(reason, required=False),
            )
        },
        "/v1/tickets/{ticket_id}/appeal": {
            "post": op(
                "File the uploader's appeal within HASHGUARD_APPEAL_WINDOW_DAYS (role: platform)",
                _ok("The ticket, appealed; another reviewer than the original decider decides it.", ticket),
                400,
                404,
                409,
                body=_json_body({**reason, "required": ["explanation"]}),
            )
        },
        "/v1/tickets/{ticket_id}/legal-hold": {
            "post": op(
                "Place or lift a legal hold: held evidence is never purged (roles: lead, admin)",
                _ok("The ticket.", ticket),
                400,
                404,
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["hold"],
                        "properties": {"hold": {"type": "boolean"}, "reason": {"type": "string"}},
                    }
                ),
            )
        },
        "/v1/tickets/{ticket_id}/retry-actions": {
            "post": op(
                "Queue the ticket's failed platform actions again (roles: lead, admin)",
                _ok('{"retried": n}'),
                404,
            )
        },
        "/v1/policies": {
            "get": {
                "summary": "Per-list automation policies (roles: lead, admin, auditor)",
                "security": secured,
                "responses": {"200": _ok('{"policies": [{hashset, tool, auto_action, action}]}'), **_errors(401, 403)},
            },
            "put": {
                "summary": "Set a list's policy: auto_action lets its matches be actioned without a reviewer (role: admin)",
                "security": secured,
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["hashset", "auto_action"],
                        "properties": {
                            "hashset": {"type": "string"},
                            "tool": {"type": "string", "default": "*"},
                            "auto_action": {"type": "boolean"},
                            "action": {"type": "string", "enum": ["remove", "block", "restrict"], "default": "remove"},
                        },
                    }
                ),
                "responses": {"200": _ok("The policy."), **_errors(400, 401, 403)},
            },
        },
        "/v1/transparency": {
            "get": {
                "summary": "Transparency figures for a period (roles: lead, admin, auditor)",
                "description": "Notices received by source; actions by action and source; automated detection and "
                "decision counts and automated detections overturned by people; median seconds from receipt to action; "
                "complaints, their outcomes and median decision time; reversals; reports filed by hotline. "
                "Computed from case records, which outlive the evidence purge.",
                "security": secured,
                "parameters": [
                    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                ],
                "responses": {"200": _ok("The figures."), **_errors(400, 401, 403)},
            }
        },
        "/v1/audit": {
            "get": {
                "summary": "Read the hash-chained audit log (roles: auditor, admin)",
                "security": secured,
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "integer", "default": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500, "default": 100}},
                    {"name": "subject", "in": "query", "schema": {"type": "string"}, "description": "e.g. ticket:<id>"},
                ],
                "responses": {
                    "200": _ok('{"entries": [{seq, at, actor, action, subject, before, after, hash, prev_hash}]}'),
                    **_errors(400, 401, 403),
                },
            }
        },
    }


async def handler(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the document for this service's settings."""
    return web.json_response(openapi_document(request.app[SETTINGS]))
