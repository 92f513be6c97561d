"""A hotline report's record and its states. Pure values (stored by ``takedown.reports.store``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    """A hotline report's state, mirrored by the PostgreSQL enum ``hotline_report_status``.

    queued → submitting → finished; submitting → queued again (a retryable failure, with backoff);
    submitting → failed (terminal, nothing left open at the hotline) or retracted (terminal, the
    open report was retracted); failed/retracted → queued by an operator's retry."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    FINISHED = "finished"
    FAILED = "failed"
    RETRACTED = "retracted"


OPEN = frozenset({Status.QUEUED, Status.SUBMITTING})


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportRecord:
    id: uuid.UUID
    ticket_id: uuid.UUID
    hotline: str
    status: Status
    hotline_reference: str | None
    file_ids: tuple[str, ...]
    evidence: str | None
    attempts: int
    last_error: str | None
    last_code: int | None
    last_request_id: str | None
    next_attempt_at: datetime
    lease_token: uuid.UUID | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
