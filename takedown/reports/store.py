"""Storage of hotline reports: the request that files one, the job's claim, progress and outcome,
and the case record a report is built from. Storage only; the rules are in ``takedown.rules``
(who may report) and ``takedown.reports.ncmec`` (what an answer means).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.auditlog import append_audit
from kernel.db import Queries
from takedown import rules, ticket_store
from takedown.config import TakedownConfig
from takedown.decision_store import DecisionHook, apply_decision
from takedown.errors import TicketNotFound
from takedown.reports.case import Detection, ReportCase, Review, Uploader
from takedown.reports.errors import ReportingNotConfigured, ReportNotFound, ReportNotRetryable
from takedown.reports.evidence_store import purge_case_evidence, record_review, record_upload_hashes, record_uploader
from takedown.reports.records import ReportRecord, Status
from takedown.ticket_store import audit_subject, db_now, locked_ticket
from takedown.tickets import Actor, DecisionInput, Notice, Scope, Ticket
from takedown.workflow import State

Q = Queries("takedown.reports")


def _record(row: asyncpg.Record) -> ReportRecord:
    return ReportRecord(
        id=row["id"],
        ticket_id=row["ticket_id"],
        hotline=row["hotline"],
        status=Status(row["status_text"]),
        hotline_reference=row["hotline_reference"],
        file_ids=tuple(row["file_ids"]),
        evidence=row["evidence"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        last_code=row["last_code"],
        last_request_id=row["last_request_id"],
        next_attempt_at=row["next_attempt_at"],
        lease_token=row["lease_token"],
        requested_by=row["requested_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


def _scope(scope: Scope) -> list[int] | None:
    return None if scope is None else sorted(scope)


# ---------------------------------------------------------------- filing


async def request_report(
    conn: asyncpg.Connection,
    ticket_id: uuid.UUID,
    actor: Actor,
    hotline: str,
    config: TakedownConfig,
    on_decision: Sequence[DecisionHook] = (),
    *,
    override: bool = False,
    problem: str | None = None,
) -> tuple[ReportRecord, bool]:
    """Ask hashguard to file the ticket's confirmed item with ``hotline``; (the record, whether it is new).

    ``problem``: why hashguard cannot file with the hotline now (unset settings), refused with 409
    after the ticket's own checks (visibility, state, lease) and before anything is written.

    The ticket is locked, so two requests at once are served one after the other: the first moves
    the ticket to ``reported`` and queues the report in the same transaction; the second (and any
    later one) answers that same record. The report itself is filed by the job, after the commit."""
    async with conn.transaction():
        ticket = await locked_ticket(conn, ticket_id, actor.tenants)
        existing = await conn.fetchrow(Q.report_for_ticket, ticket_id, hotline)
        if existing is not None:
            return _record(existing), False
        rules.check_report(ticket, actor, await db_now(conn), override=override)
        if problem is not None:  # after the ticket's own checks: an unknown ticket is a 404 either way
            raise ReportingNotConfigured(problem)
        await apply_decision(
            conn,
            ticket,
            DecisionInput(to=State.REPORTED, explanation=f"filed with {hotline} by hashguard"),
            actor,
            config,
            automated_decision=False,
            override=override,
            reported=(hotline, None),
            on_decision=on_decision,
        )
        row = await conn.fetchrow(Q.insert_report, uuid.uuid4(), ticket_id, hotline, actor.name, actor.key_id)
        await append_audit(
            conn,
            actor=actor.name,
            action="report.queued",
            subject=audit_subject(ticket_id),
            after={"report_id": str(row["id"]), "hotline": hotline},
        )
        return _record(row), True


async def file_notice(
    conn: asyncpg.Connection, notice: Notice, actor: Actor, config: TakedownConfig, uploader: Uploader | None
) -> tuple[Ticket, int, bool]:
    """A notice (``ticket_store.file_notice``) with the uploader details the platform sent, in one transaction."""
    async with conn.transaction():
        ticket, notice_id, opened = await ticket_store.file_notice(conn, notice, actor, config)
        if uploader is not None and uploader.any():
            await record_uploader(conn, ticket.id, uploader)
        return ticket, notice_id, opened


__all__ = ["purge_case_evidence", "record_review", "record_upload_hashes", "record_uploader"]


async def get_report(conn: asyncpg.Connection, report_id: uuid.UUID, scope: Scope = None) -> ReportRecord:
    row = await conn.fetchrow(Q.get_report, report_id, _scope(scope))
    if row is None:
        raise ReportNotFound()
    return _record(row)


async def ticket_reports(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> list[ReportRecord]:
    return [_record(r) for r in await conn.fetch(Q.ticket_reports, ticket_id)]


async def list_reports(
    conn: asyncpg.Connection, statuses: Sequence[Status] | None = None, limit: int = 100
) -> list[ReportRecord]:
    return [_record(r) for r in await conn.fetch(Q.list_reports, [s.value for s in statuses] if statuses else None, limit)]


async def report_calls(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(Q.report_calls, report_id)]


async def retry_report(conn: asyncpg.Connection, report_id: uuid.UUID, actor: Actor) -> ReportRecord:
    """Queue a failed or retracted report again (after the credentials or the data were fixed)."""
    async with conn.transaction():
        current = await get_report(conn, report_id, actor.tenants)
        row = await conn.fetchrow(Q.retry_report, report_id)
        if row is None:
            raise ReportNotRetryable(
                f"report {report_id} is {current.status.value}; only failed or retracted reports are retried"
            )
        await append_audit(
            conn,
            actor=actor.name,
            action="report.retried",
            subject=audit_subject(current.ticket_id),
            before={"status": current.status.value},
            after={"report_id": str(report_id)},
        )
        return _record(row)


# ---------------------------------------------------------------- the job's side


async def claim_reports(conn: asyncpg.Connection, limit: int, lease_s: float, hotline: str | None = None) -> list[ReportRecord]:
    async with conn.transaction():
        return [_record(r) for r in await conn.fetch(Q.claim_reports, limit, lease_s, hotline)]


async def save_progress(
    conn: asyncpg.Connection,
    report: ReportRecord,
    token: uuid.UUID,
    *,
    reference: str | None,
    file_ids: Sequence[str],
    lease_s: float,
    evidence: str | None = None,
) -> bool:
    """Persist what the hotline just answered (the report id, the file ids); False if the lease was lost."""
    return await conn.fetchval(Q.save_progress, report.id, token, reference, list(file_ids), evidence, lease_s) is not None


async def log_call(
    conn: asyncpg.Connection,
    report_id: uuid.UUID,
    call: str,
    *,
    reference: str | None,
    http_status: int | None,
    code: int | None,
    request_id: str | None,
    error: str | None,
) -> None:
    async with conn.transaction():
        await conn.execute(
            Q.log_call, report_id, call, reference, http_status, code, request_id, (error or None) and error[:1000]
        )
        await conn.execute(Q.set_last_call, report_id, request_id)


async def mark_finished(conn: asyncpg.Connection, report: ReportRecord, token: uuid.UUID, reference: str) -> bool:
    async with conn.transaction():
        done = await conn.fetchval(Q.mark_finished, report.id, token, reference) is not None
        if done:
            await append_audit(
                conn,
                actor="system",
                action="report.finished",
                subject=audit_subject(report.ticket_id),
                after={"report_id": str(report.id), "hotline": report.hotline, "reference": reference},
            )
        return done


async def reschedule(
    conn: asyncpg.Connection, report: ReportRecord, token: uuid.UUID, *, delay_s: float, error: str, code: int | None
) -> bool:
    return await conn.fetchval(Q.reschedule, report.id, token, delay_s, error[:1000], code) is not None


async def mark_terminal(
    conn: asyncpg.Connection, report: ReportRecord, token: uuid.UUID, status: Status, *, error: str, code: int | None
) -> bool:
    async with conn.transaction():
        done = await conn.fetchval(Q.mark_terminal, report.id, token, status.value, error[:1000], code) is not None
        if done:
            await append_audit(
                conn,
                actor="system",
                action=f"report.{status.value}",
                subject=audit_subject(report.ticket_id),
                after={"report_id": str(report.id), "hotline": report.hotline, "code": code},
            )
        return done


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenReports:
    count: int
    oldest: datetime | None


async def open_report_gauges(conn: asyncpg.Connection) -> dict[str, OpenReports]:
    return {r["hotline"]: OpenReports(count=r["n"], oldest=r["oldest"]) for r in await conn.fetch(Q.open_report_gauges)}


async def signing_secret(conn: asyncpg.Connection, ticket_id: uuid.UUID, global_secret: str | None) -> str | None:
    """The secret that signs evidence fetches: the ticket's tenant's webhook secret, else (default
    tenant only) HASHGUARD_WEBHOOK_SECRET, as for platform actions."""
    secret: str | None = await conn.fetchval(Q.ticket_signing_secret, ticket_id)
    if secret is not None:
        return secret
    return global_secret if await conn.fetchval(Q.ticket_tenant, ticket_id) == 1 else None


EntryCategories = Callable[
    [asyncpg.Connection, Sequence[int]], Awaitable[Mapping[int, tuple[str | None, str | None, str | None]]]
]
"""(category, scheme, issuer) of list entries by row id: the lists' context answers (the root passes it in)."""


async def load_case(
    conn: asyncpg.Connection, ticket_id: uuid.UUID, scope: Scope = None, categories: EntryCategories | None = None
) -> ReportCase:
    """Everything a report about the ticket's item is built from."""
    ticket = await conn.fetchrow(Q.case_ticket, ticket_id, _scope(scope))
    if ticket is None:
        raise TicketNotFound()
    evidence = await conn.fetch(Q.case_evidence, ticket_id)
    known = await categories(conn, sorted({r["entry_row"] for r in evidence})) if categories and evidence else {}
    detections: dict[tuple[str, str, int, str], Detection] = {}
    for r in evidence:
        category, scheme, issuer = known.get(r["entry_row"], (None, None, None))
        key = (r["tool"], r["hashset"], r["hashset_version"], r["tool_version"])
        if key not in detections or detections[key].distance > r["distance"]:
            detections[key] = Detection(
                tool=r["tool"],
                tool_version=r["tool_version"],
                hashset=r["hashset"],
                hashset_version=r["hashset_version"],
                distance=r["distance"],
                issuer=issuer,
                category=category,
                scheme=scheme,
            )
    review_row = await conn.fetchrow(Q.case_review, ticket_id)
    review = (
        Review(
            file_viewed=review_row["file_viewed"],
            exif_viewed=review_row["exif_viewed"],
            escalate=review_row["escalate"],
            viral=review_row["viral"],
            potential_meme=review_row["potential_meme"],
            uk_priority=review_row["uk_priority"],
            iwf_category=review_row["iwf_category"],
            iccam_verdict=review_row["iccam_verdict"],
        )
        if review_row is not None
        else Review()
    )
    up = await conn.fetchrow(Q.case_uploader, ticket_id)
    uploader = (
        Uploader(
            account_id=up["account_id"],
            screen_name=up["screen_name"],
            ip=up["upload_ip"],
            port=up["upload_port"],
            upload_time=up["upload_time"],
        )
        if up is not None
        else None
    )
    first_seen = min([r["observed_at"] for r in evidence] + [ticket["received_at"]])
    return ReportCase(
        ticket_id=ticket_id,
        tenant=ticket["tenant"],
        content_id=ticket["content_id"],
        content_url=ticket["content_url"],
        content_type=await conn.fetchval(Q.case_content_type, ticket_id),
        detected_at=first_seen,
        confirmed_at=review_row["decided_at"] if review_row is not None else ticket["first_action_at"],
        detections=tuple(detections.values()),
        file_hashes={r["tool"]: bytes(r["value"]) for r in await conn.fetch(Q.case_hashes, ticket_id)},
        uploader=uploader,
        review=review,
        automated_detection=ticket["automated_detection"],
        # The platform is the tenant (the default tenant of a single-platform install names none).
        platform=ticket["tenant"] if ticket["tenant"] not in (None, "default") else None,
    )
