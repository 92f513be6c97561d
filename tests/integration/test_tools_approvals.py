"""Approval storage on a real PostgreSQL: changes and their events together, history append-only,
one standing allowance per tool, and a NOTIFY that wakes every replica."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from detector.approvals import pg as approvals_pg
from detector.tools.policy import (
    AllowanceExists,
    AllowanceNotFound,
    ApprovalNotFound,
    ApprovalStatus,
    InvalidTransition,
    NewApproval,
)


def new(**changes: object) -> NewApproval:
    fields: dict[str, object] = {"tool": "pdq", "authority": "Ofcom", "jurisdiction": "gb", "instrument": "test record"}
    fields.update(changes)
    return NewApproval.checked(**fields)  # type: ignore[arg-type]


async def test_changes_are_recorded_with_their_events(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        approval = await approvals_pg.create_approval(conn, new(scope=["csam_known"], versions=">=0.2"), actor="alice")
        assert approval.jurisdiction == "GB" and approval.status is ApprovalStatus.APPROVED and approval.scope == ("csam_known",)
        suspended = await approvals_pg.set_status(conn, approval.id, ApprovalStatus.SUSPENDED, actor="bob", note="review")
        assert suspended.status is ApprovalStatus.SUSPENDED and suspended.updated_at >= approval.updated_at
        await approvals_pg.set_status(conn, approval.id, ApprovalStatus.WITHDRAWN, actor="bob")
        with pytest.raises(InvalidTransition):
            await approvals_pg.set_status(conn, approval.id, ApprovalStatus.APPROVED, actor="mallory")
        with pytest.raises(ApprovalNotFound):
            await approvals_pg.set_status(conn, 424242, ApprovalStatus.SUSPENDED, actor="bob")
        events = await approvals_pg.list_events(conn, "pdq")
        assert [(e.action, e.actor) for e in events] == [
            ("approval.withdrawn", "bob"),
            ("approval.suspended", "bob"),
            ("approval.create", "alice"),
        ]
        assert events[1].before is not None and events[1].before["status"] == "approved"
        assert events[1].after is not None and events[1].after["note"] == "review"
        assert (await approvals_pg.get_approval(conn, approval.id)).status is ApprovalStatus.WITHDRAWN


async def test_the_history_is_append_only(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await approvals_pg.create_approval(conn, new(), actor="alice")
        for sql in (
            "UPDATE tool_approval_events SET actor = 'x'",
            "DELETE FROM tool_approval_events",
            "TRUNCATE tool_approval_events",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM tool_approval_events") == 1


async def test_one_standing_allowance_per_tool(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await approvals_pg.allow_local(conn, tool="md5", versions="*", reason="own list", actor="alice")
        with pytest.raises(AllowanceExists):
            await approvals_pg.allow_local(conn, tool="md5", versions="*", reason="again", actor="alice")
        assert [a.id for a in await approvals_pg.standing_allowances(conn)] == [first.id]
        await approvals_pg.revoke_allowance(conn, tool="md5", actor="bob")
        with pytest.raises(AllowanceNotFound):
            await approvals_pg.revoke_allowance(conn, tool="md5", actor="bob")
        assert await approvals_pg.standing_allowances(conn) == []
        second = await approvals_pg.allow_local(conn, tool="md5", versions="==1", reason="back", actor="alice")
        assert second.id != first.id
        # Three changes, three events; the failed attempts left none.
        assert [e.action for e in await approvals_pg.list_events(conn)] == [
            "allowance.create",
            "allowance.revoke",
            "allowance.create",
        ]


async def test_every_change_wakes_the_listeners(pool: asyncpg.Pool, migrated_database_url: str) -> None:
    listener = await asyncpg.connect(migrated_database_url)
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("hashguard_hashsets", lambda *args: got.put_nowait(args[-1]))
    try:
        async with pool.acquire() as conn:
            approval = await approvals_pg.create_approval(conn, new(), actor="alice")
            assert await asyncio.wait_for(got.get(), 10) == "tools"
            await approvals_pg.set_status(conn, approval.id, ApprovalStatus.SUSPENDED, actor="bob")
            assert await asyncio.wait_for(got.get(), 10) == "tools"
            await approvals_pg.allow_local(conn, tool="md5", versions="*", reason="x", actor="alice")
            assert await asyncio.wait_for(got.get(), 10) == "tools"
    finally:
        await listener.close()


async def test_scan_matches_carry_the_approval(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        columns = {
            r["column_name"]
            for r in await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'scan_matches'")
        }
        assert {"approval_id", "local_allowance_id", "approval_reason"} <= columns
