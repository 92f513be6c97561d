"""PostgreSQL storage of tool approvals, local allowances and their append-only event history.

Every change and its event are written in one transaction, so there is no change without its
audit record and no record of a change that did not happen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from detector.tools.policy import (
    UNREADABLE_WINDOW,
    AllowanceExists,
    AllowanceNotFound,
    Approval,
    ApprovalNotFound,
    ApprovalStatus,
    LocalAllowance,
    NewApproval,
    allowance_record,
    approval_record,
    check_text,
    check_tool_name,
    check_transition,
    check_version_spec,
)
from kernel import auditlog
from kernel.api import EARLIEST
from kernel.auditlog import Change
from kernel.db import Queries
from kernel.errors import BadRequest

Q = Queries("detector.approvals")


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    id: int
    at: datetime
    actor: str
    action: str
    tool: str
    approval_id: int | None
    allowance_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def record(self) -> dict[str, Any]:
        """The event as JSON for the admin API and the command line (one shape for both)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "tool": self.tool,
            "approval_id": self.approval_id,
            "local_allowance_id": self.allowance_id,
            "before": self.before,
            "after": self.after,
        }


def _approval(row: asyncpg.Record) -> Approval:
    # The queries read a moment outside the timestamp rule as NULL (queries.sql): such an approval is
    # kept, marked unreadable, with a closed window in place of the dates, and its tool fails closed.
    valid_from, valid_until = row["valid_from"], row["valid_until"]
    problem = None
    if valid_from is None or (row["has_until"] and valid_until is None):
        problem = "its validity dates are stored outside 1970-01-01 to 9999-01-01 and cannot be compared"
        valid_from, valid_until = EARLIEST, EARLIEST + UNREADABLE_WINDOW
    return Approval(
        problem=problem,
        id=row["id"],
        tool=row["tool"],
        versions=row["versions"],
        authority=row["authority"],
        jurisdiction=row["jurisdiction"],
        instrument=row["instrument"],
        scope=tuple(row["scope"]),
        status=ApprovalStatus(row["status"]),
        valid_from=valid_from,
        valid_until=valid_until,
        accuracy_statement=row["accuracy_statement"],
        accuracy_reference=row["accuracy_reference"],
        evidence_url=row["evidence_url"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _allowance(row: asyncpg.Record) -> LocalAllowance:
    return LocalAllowance(
        id=row["id"],
        tool=row["tool"],
        versions=row["versions"],
        reason=row["reason"],
        allowed_by=row["allowed_by"],
        allowed_at=row["allowed_at"],
    )


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


async def _event(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    tool: str,
    approval_id: int | None = None,
    allowance_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await conn.fetchval(Q.insert_event, actor, action, tool, approval_id, allowance_id, _json(before), _json(after))
    ids = {k: v for k, v in (("approval_id", approval_id), ("allowance_id", allowance_id)) if v is not None}
    await auditlog.record(
        conn,
        Change(actor=actor, action=f"tool.{action}", subject=f"tool:{tool}", before=before, after={**(after or {}), **ids}),
    )


async def list_approvals(conn: asyncpg.Connection, tool: str | None = None) -> list[Approval]:
    return [_approval(r) for r in await conn.fetch(Q.list_approvals, tool)]


async def get_approval(conn: asyncpg.Connection, approval_id: int) -> Approval:
    row = await conn.fetchrow(Q.get_approval, approval_id)
    if row is None:
        raise ApprovalNotFound(f"no tool approval has id {approval_id}")
    return _approval(row)


async def create_approval(conn: asyncpg.Connection, new: NewApproval, *, actor: str) -> Approval:
    try:
        return await _create_approval(conn, new, actor=actor)
    except (asyncpg.CheckViolationError, asyncpg.DataError) as exc:
        # NewApproval.checked should have caught it; the table's own rules are the last word.
        raise BadRequest(f"the approval breaks a rule of the registry: {exc.__class__.__name__}") from exc


async def _create_approval(conn: asyncpg.Connection, new: NewApproval, *, actor: str) -> Approval:
    async with conn.transaction():
        row = await conn.fetchrow(
            Q.insert_approval,
            new.tool,
            new.versions,
            new.authority,
            new.jurisdiction,
            new.instrument,
            list(new.scope),
            new.status.value,
            new.valid_from,
            new.valid_until,
            new.accuracy_statement,
            new.accuracy_reference,
            new.evidence_url,
        )
        approval = _approval(row)
        await _event(
            conn,
            actor=actor,
            action="approval.create",
            tool=approval.tool,
            approval_id=approval.id,
            after=approval_record(approval),
        )
    return approval


async def set_status(
    conn: asyncpg.Connection, approval_id: int, status: ApprovalStatus, *, actor: str, note: str = ""
) -> Approval:
    """Move an approval to ``status`` (suspend, withdraw, reinstate), checked against the allowed transitions."""
    note = check_text("note", note, required=False)
    async with conn.transaction():
        row = await conn.fetchrow(Q.lock_approval, approval_id)
        if row is None:
            raise ApprovalNotFound(f"no tool approval has id {approval_id}")
        before = _approval(row)
        check_transition(before.status, status)
        after = _approval(await conn.fetchrow(Q.set_approval_status, approval_id, status.value))
        await _event(
            conn,
            actor=actor,
            action=f"approval.{status.value}",
            tool=after.tool,
            approval_id=after.id,
            before=approval_record(before),
            after={**approval_record(after), "note": note},
        )
    return after


async def standing_allowances(conn: asyncpg.Connection) -> list[LocalAllowance]:
    return [_allowance(r) for r in await conn.fetch(Q.standing_allowances)]


async def allow_local(conn: asyncpg.Connection, *, tool: str, versions: str, reason: str, actor: str) -> LocalAllowance:
    tool, versions = check_tool_name(tool), check_version_spec(versions)
    reason = check_text("reason", reason, required=False)
    if not reason:
        raise BadRequest("a local allowance needs a reason: say why this tool may scan here without an approval")
    async with conn.transaction():
        row = await conn.fetchrow(Q.insert_allowance, tool, versions, reason.strip(), actor)
        if row is None:
            raise AllowanceExists(f"the tool {tool!r} is already allowed locally; revoke that allowance first")
        allowance = _allowance(row)
        await _event(
            conn, actor=actor, action="allowance.create", tool=tool, allowance_id=allowance.id, after=allowance_record(allowance)
        )
    return allowance


async def revoke_allowance(conn: asyncpg.Connection, *, tool: str, actor: str, note: str = "") -> LocalAllowance:
    note = check_text("note", note, required=False)
    async with conn.transaction():
        row = await conn.fetchrow(Q.revoke_allowance, tool, actor)
        if row is None:
            raise AllowanceNotFound(f"the tool {tool!r} has no standing local allowance")
        allowance = _allowance(row)
        await _event(
            conn,
            actor=actor,
            action="allowance.revoke",
            tool=tool,
            allowance_id=allowance.id,
            before=allowance_record(allowance),
            after={"revoked_by": actor, "revoked_at": row["revoked_at"].isoformat(), "note": note},
        )
    return allowance


async def list_events(conn: asyncpg.Connection, tool: str | None = None, limit: int = 100) -> list[Event]:
    return [
        Event(
            id=r["id"],
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            tool=r["tool"],
            approval_id=r["approval_id"],
            allowance_id=r["allowance_id"],
            before=None if r["before"] is None else json.loads(r["before"]),
            after=None if r["after"] is None else json.loads(r["after"]),
        )
        for r in await conn.fetch(Q.list_events, tool, limit)
    ]


async def policy_inputs(conn: asyncpg.Connection) -> tuple[list[Approval], list[LocalAllowance]]:
    """Everything the policy decides from. Call inside the snapshot's transaction for a consistent view."""
    return await list_approvals(conn), await standing_allowances(conn)
