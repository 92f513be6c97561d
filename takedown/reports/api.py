"""The declared answer of the hotline-report endpoints, and a report record as JSON. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, Struct

from takedown.reports.records import ReportRecord, Status


class HotlineReport(Struct, forbid_unknown_fields=True):
    id: uuid.UUID
    ticket_id: uuid.UUID
    hotline: str
    status: Annotated[Status, Meta(description="queued, submitting, finished, failed or retracted.")]
    hotline_reference: Annotated[
        str | None, Meta(description="The hotline's id of the report (CyberTipline report id) once known.")
    ]
    files: Annotated[int, Meta(description="Files uploaded with the report.")]
    evidence: Annotated[str | None, Meta(description="'file' (uploaded and checked), or why the report is hash-only.")]
    attempts: int
    last_error: str | None
    last_code: Annotated[int | None, Meta(description="The hotline's last response code, when a call failed.")]
    request_id: Annotated[str | None, Meta(description="The Request-ID of the last call (for the hotline's support).")]
    requested_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None


def report_json(r: ReportRecord) -> dict[str, Any]:
    def t(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": str(r.id),
        "ticket_id": str(r.ticket_id),
        "hotline": r.hotline,
        "status": r.status.value,
        "hotline_reference": r.hotline_reference,
        "files": len(r.file_ids),
        "evidence": r.evidence,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "last_code": r.last_code,
        "request_id": r.last_request_id,
        "requested_by": r.requested_by,
        "created_at": t(r.created_at),
        "updated_at": t(r.updated_at),
        "finished_at": t(r.finished_at),
        "next_attempt_at": t(r.next_attempt_at) if r.status in (Status.QUEUED, Status.SUBMITTING) else None,
    }
