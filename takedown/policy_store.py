"""Storage of takedown policies: which lists (and tools) are actioned automatically, and how.

Whether a policy applies to a match is ``takedown.rules.auto_action``'s to say; this module keeps
the policies and fetches the ones that can apply.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from detector.match import Match
from kernel.auditlog import append_audit
from kernel.db import Queries
from takedown import rules
from takedown.rules import Policy
from takedown.tickets import Actor
from takedown.workflow import Action

Q = Queries("takedown")


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(hashset=row["hashset"], tool=row["tool"], auto_action=row["auto_action"], action=Action(row["action"]))


async def list_policies(conn: asyncpg.Connection) -> list[Policy]:
    return [_policy(r) for r in await conn.fetch(Q.list_policies)]


async def auto_action_policies(conn: asyncpg.Connection, matches: Sequence[Match]) -> list[Policy]:
    """The auto_action policies for these matches' lists and tools (or '*')."""
    hashsets, tools = rules.policy_hashsets_and_tools(matches)
    return [_policy(r) for r in await conn.fetch(Q.policies_for, hashsets, tools)]


async def set_policy(conn: asyncpg.Connection, actor: Actor, policy: Policy) -> Policy:
    """Mark a list (and tool, or '*') for automated action or back to human review; audited."""
    async with conn.transaction():
        row = await conn.fetchrow(Q.get_policy, policy.hashset, policy.tool)
        await conn.execute(Q.upsert_policy, policy.hashset, policy.tool, policy.auto_action, policy.action.value)
        await append_audit(
            conn,
            actor=actor.name,
            action="policy.changed",
            subject=f"policy:{policy.hashset}/{policy.tool}",
            before=None if row is None else {"auto_action": row["auto_action"], "action": row["action"]},
            after={"auto_action": policy.auto_action, "action": policy.action.value},
        )
    return policy
