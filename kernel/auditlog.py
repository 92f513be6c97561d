"""The hash-chained audit log's storage: every context appends its changes here, inside the
transaction that makes them (tickets, list imports, tool approvals, keys, settings).

It is the kernel's because every context writes it and none owns it: a list change is audited by
the hashsets code calling ``record`` directly, with no hook in between. The chain itself (canonical
text, links, verification) is pure, in ``kernel.audit``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from kernel import audit
from kernel.db import Queries

Q = Queries("kernel")

# Who changes that no person or key made are attributed to (settings at start, lease expiry).
SYSTEM_ACTOR = "system"


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """One audited change, as a value: who did what to which subject, and its state before and after."""

    actor: str
    action: str
    subject: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


async def record(conn: asyncpg.Connection, change: Change) -> None:
    """Append ``change``, in the caller's transaction when there is one (else in a transaction of its own)."""
    if conn.is_in_transaction():
        await _record(conn, change)
    else:
        async with conn.transaction():
            await _record(conn, change)


async def _record(conn: asyncpg.Connection, change: Change) -> None:
    await append_audit(
        conn, actor=change.actor, action=change.action, subject=change.subject, before=change.before, after=change.after
    )


async def append_audit(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry to the hash-chained audit log; returns its sequence number.

    Call it inside the transaction that makes the change, so the change and its entry commit or
    roll back together. A transaction-scoped advisory lock serialises appends (each entry links to
    the one before), which also makes ``seq`` gap-free. Every context records its changes through it
    (``record`` for a ``Change`` value).
    """
    if not conn.is_in_transaction():
        raise RuntimeError("append_audit must run inside the transaction that makes the change")
    await conn.execute(Q.audit_lock)
    head = await conn.fetchrow(Q.audit_head)
    if head is None:
        seq, prev, at = 1, audit.GENESIS, await conn.fetchval(Q.clock)
    else:
        seq, prev, at = head["seq"] + 1, bytes(head["hash"]), head["now"]
    entry = audit.AuditEntry(seq=seq, at=at, actor=actor, action=action, subject=subject, before=before, after=after)
    text = audit.canonical(entry)
    await conn.execute(Q.insert_audit, seq, at, actor, action, subject, text, prev, audit.link(prev, text))
    return seq


async def append_audit_many(conn: asyncpg.Connection, changes: Sequence[Change]) -> list[int]:
    """Append ``changes`` in order, in one round trip for the rows; returns their sequence numbers.

    The same chain as ``append_audit`` called once per change, under one lock and one timestamp:
    what a 1,000-item lookup batch that opens hundreds of tickets appends in its transaction.
    """
    if not changes:
        return []
    if not conn.is_in_transaction():
        raise RuntimeError("append_audit_many must run inside the transaction that makes the changes")
    await conn.execute(Q.audit_lock)
    head = await conn.fetchrow(Q.audit_head)
    if head is None:
        seq, prev, at = 1, audit.GENESIS, await conn.fetchval(Q.clock)
    else:
        seq, prev, at = head["seq"] + 1, bytes(head["hash"]), head["now"]
    rows: list[tuple[int, str, str, str, str, bytes, bytes]] = []
    for change in changes:
        entry = audit.AuditEntry(
            seq=seq,
            at=at,
            actor=change.actor,
            action=change.action,
            subject=change.subject,
            before=change.before,
            after=change.after,
        )
        text = audit.canonical(entry)
        here = audit.link(prev, text)
        rows.append((seq, change.actor, change.action, change.subject, text, prev, here))
        seq, prev = seq + 1, here
    await conn.execute(Q.insert_audit_many, at, *(list(column) for column in zip(*rows, strict=True)))
    return [r[0] for r in rows]


async def record_settings(conn: asyncpg.Connection, settings: Mapping[str, Any]) -> bool:
    """Append ``settings.changed`` when the settings in effect differ from the last ones recorded.

    Called at every start; replicas starting together with the same settings record them once
    (the check runs under the audit lock). Returns whether an entry was appended.
    """
    async with conn.transaction():
        await conn.execute(Q.audit_lock)
        last = await conn.fetchval(Q.last_entry_for_subject, "settings")
        before = json.loads(last)["after"] if last else None
        after = json.loads(json.dumps(dict(settings), sort_keys=True))
        if before == after:
            return False
        await append_audit(conn, actor=SYSTEM_ACTOR, action="settings.changed", subject="settings", before=before, after=after)
        return True


def _stored(row: asyncpg.Record) -> audit.StoredEntry:
    return audit.StoredEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        entry=row["entry"],
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )


async def verify_audit(conn: asyncpg.Connection) -> audit.Verification:
    """Walk the whole chain in one consistent snapshot, streaming rows through a server-side cursor."""
    walker = audit.ChainWalker()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(Q.audit_all, prefetch=5000):
            if not walker.feed(_stored(row)):
                break
    return walker.result()


async def audit_page(conn: asyncpg.Connection, *, after_seq: int, subject: str | None, limit: int) -> list[audit.StoredEntry]:
    return [_stored(r) for r in await conn.fetch(Q.audit_page, after_seq, subject, limit)]
