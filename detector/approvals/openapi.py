"""OpenAPI description of the tool registry's admin API (merged into ``hashguard.openapi``)."""

from __future__ import annotations

from typing import Any

_STATUSES = ["approved", "recommended", "permitted", "proposed", "suspended", "withdrawn"]

APPROVAL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "tool": {"type": "string"},
        "versions": {"type": "string", "description": "'*' or a PEP 440 range of the tool's release, e.g. '>=0.2,<0.3'."},
        "authority": {"type": "string", "description": "e.g. Ofcom, eSafety."},
        "jurisdiction": {"type": "string", "description": "e.g. GB, AU, EU; compared with HASHGUARD_JURISDICTIONS."},
        "instrument": {"type": "string", "description": "The notice, code or decision, e.g. 'OSA s.121 accreditation'."},
        "scope": {"type": "array", "items": {"type": "string"}, "description": "Content categories, e.g. csam_known."},
        "status": {"type": "string", "enum": _STATUSES},
        "valid_from": {"type": "string", "format": "date-time"},
        "valid_until": {"type": ["string", "null"], "format": "date-time"},
        "accuracy_statement": {"type": "string"},
        "accuracy_reference": {"type": "string"},
        "evidence_url": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}

ACTIVATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"type": "string"},
        "version": {"type": "string"},
        "active": {"type": "boolean"},
        "reason": {
            "type": "string",
            "description": "approved, recommended, permitted or local_allowance when active; suspended, withdrawn,"
            " expired, not_yet_valid, proposed, version_not_covered or no_approval when not.",
        },
        "approval_id": {"type": ["integer", "null"]},
        "local_allowance_id": {"type": ["integer", "null"]},
        "detail": {"type": "string"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def tool_registry_paths(secured: list[dict[str, list[str]]], errors: Any) -> dict[str, Any]:
    approval_ref = {"$ref": "#/components/schemas/ToolApproval"}
    approval_id = {"name": "approval_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "/v1/tools": {
            "get": {
                "summary": "Installed detection tools, their interface, and whether each scans here and why (admin, auditor)",
                "security": secured,
                "responses": {"200": {"description": '{"tools": [...]}'}, **errors(401, 403)},
            }
        },
        "/v1/tools/approvals": {
            "get": {
                "summary": "Recorded approvals, optionally ?tool=NAME (admin, auditor)",
                "security": secured,
                "responses": {"200": {"description": '{"approvals": [...]}'}, **errors(400, 401, 403)},
            },
            "post": {
                "summary": "Record an authority's approval of a tool (admin); audited",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["tool", "authority", "jurisdiction", "instrument"],
                            "properties": {
                                k: v for k, v in APPROVAL["properties"].items() if k not in ("id", "created_at", "updated_at")
                            },
                        }
                    ),
                },
                "responses": {"201": {"description": "The approval.", "content": _json(approval_ref)}, **errors(400, 401, 403)},
            },
        },
        "/v1/tools/approvals/{approval_id}": {
            "get": {
                "summary": "One approval (admin, auditor)",
                "security": secured,
                "parameters": [approval_id],
                "responses": {"200": {"description": "The approval.", "content": _json(approval_ref)}, **errors(401, 403, 404)},
            }
        },
        "/v1/tools/approvals/{approval_id}/status": {
            "post": {
                "summary": "Suspend, withdraw or reinstate an approval (admin); every replica applies it within seconds; audited",
                "security": secured,
                "parameters": [approval_id],
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"type": "string", "enum": _STATUSES}, "note": {"type": "string"}},
                        }
                    ),
                },
                "responses": {
                    "200": {"description": "The approval.", "content": _json(approval_ref)},
                    **errors(400, 401, 403, 404, 409),
                },
            }
        },
        "/v1/tools/allowances": {
            "get": {
                "summary": "Standing local allowances (admin, auditor)",
                "security": secured,
                "responses": {"200": {"description": '{"allowances": [...]}'}, **errors(401, 403)},
            },
            "post": {
                "summary": "Allow an installed tool to scan here without an approval (admin); recorded as such; audited",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["tool", "reason"],
                            "properties": {
                                "tool": {"type": "string"},
                                "reason": {"type": "string"},
                                "versions": {"type": "string"},
                            },
                        }
                    ),
                },
                "responses": {"201": {"description": "The allowance."}, **errors(400, 401, 403, 409)},
            },
        },
        "/v1/tools/allowances/{tool}": {
            "delete": {
                "summary": "Revoke a tool's local allowance (admin); audited",
                "security": secured,
                "parameters": [{"name": "tool", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The revoked allowance."}, **errors(400, 401, 403, 404)},
            }
        },
        "/v1/tools/events": {
            "get": {
                "summary": "History of approval and allowance changes, newest first; ?tool=NAME&limit=N (admin, auditor)",
                "security": secured,
                "responses": {"200": {"description": '{"events": [...]}'}, **errors(400, 401, 403)},
            }
        },
    }
