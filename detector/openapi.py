"""The OpenAPI 3.1 description of every endpoint. A test checks it covers every route the app serves."""

from __future__ import annotations

from typing import Any

from detector.approvals.openapi import ACTIVATION, APPROVAL, tool_registry_paths
from detector.settings import Settings

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
        413: "Body larger than HASHGUARD_MAX_UPLOAD_BYTES.",
        415: "Not an image in a supported format, or wrong content type.",
        422: "Corrupt or truncated image, or more pixels than HASHGUARD_MAX_PIXELS.",
        503: "Not ready or timed out: hold the upload and retry. Never a reason to publish it.",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for s in statuses
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
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
        },
    }
