"""Tickets, queues, decisions, appeals, retention and the audit log against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from detector.match import Match
from hashguard.flows import DETECTOR_SCANS
from kernel import auditlog, keystore
from kernel.keys import DEFAULT_TENANT_ID, Role, new_key
from takedown import (
    decision_store,
    matching,
    policy_store,
    queue_store,
    retention_store,
    statement_store,
    ticket_store,
    transparency_store,
)
from takedown.config import TakedownConfig
from takedown.errors import AppealWindowClosed, InvalidTransition, NotLeaseHolder, SameReviewer, TakedownError
from takedown.matching import MatchTicket
from takedown.rules import Policy
from takedown.tickets import SYSTEM, Actor, DecisionInput, Notice
from takedown.workflow import Action, Source, State

CONFIG = TakedownConfig()


async def staff(conn: asyncpg.Connection, role: Role = Role.REVIEWER) -> Actor:
    made = new_key()
    key_id = await keystore.insert_key(conn, made, role, f"test {role}")
    return Actor(key_id=key_id, name=made.prefix)


def matches(hashset: str = "list-a", tool: str = "pdq", entry: str = "e-1") -> list[Match]:
    return [Match(entry_row=1, hashset=hashset, hashset_version=1, entry_id=entry, tool=tool, tool_version="1", distance=4)]


async def match(conn: asyncpg.Connection, content_id: str, **kw: Any) -> MatchTicket:
    return await matching.open_for_matches(
        conn,
        tenant_id=DEFAULT_TENANT_ID,
        scan_id=uuid.uuid4(),
        content_id=content_id,
        content_url=f"https://example.test/{content_id}",
        matches=matches(**kw),
        api_key_id=None,
        config=CONFIG,
    )


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


async def snapshot(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> dict[str, Any]:
    """Everything a refused change must leave untouched."""
    return {
        "ticket": dict(await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)),
        "decisions": await conn.fetchval("SELECT count(*) FROM ticket_decisions"),
        "outbox": await conn.fetchval("SELECT count(*) FROM takedown_outbox"),
        "statements": await conn.fetchval("SELECT count(*) FROM ticket_statements"),
        "audit": await conn.fetchval("SELECT count(*) FROM audit_log"),
    }


async def drive(conn: asyncpg.Connection, target: State, reviewer: Actor, second: Actor) -> uuid.UUID:
    """A fresh ticket brought to ``target`` through the real operations."""
    content = f"item-{uuid.uuid4().hex[:8]}"
    ticket_id = (await match(conn, content)).ticket_id
    if target is State.OPEN:
        return ticket_id
    claimed = await queue_store.claim_next(conn, reviewer, CONFIG)
    assert claimed is not None and claimed.id == ticket_id
    if target is State.IN_REVIEW:
        return ticket_id
    if target is State.DISMISSED or target is State.CLOSED:
        await decision_store.decide(
            conn, ticket_id, reviewer, DecisionInput(to=State.DISMISSED, explanation="not illegal"), CONFIG, override=False
        )
        if target is State.CLOSED:
            await decision_store.close(conn, ticket_id, reviewer, "done", CONFIG)
        return ticket_id
    await decision_store.decide(
        conn,
        ticket_id,
        reviewer,
        DecisionInput(to=State.ACTIONED, action=Action.REMOVE, explanation="known CSAM"),
        CONFIG,
        override=False,
    )
    if target is State.ACTIONED:
        return ticket_id
    if target is State.REPORTED:
        await decision_store.report(conn, ticket_id, reviewer, "NCMEC", "123", CONFIG)
        return ticket_id
    await decision_store.appeal(conn, ticket_id, Actor(key_id=None, name="platform"), "this is my own drawing", CONFIG)
    if target is State.APPEALED:
        return ticket_id
    got = await queue_store.claim_next(conn, second, CONFIG)
    assert got is not None and got.id == ticket_id
    outcome = State.UPHELD if target is State.UPHELD else State.REINSTATED
    await decision_store.decide(
        conn, ticket_id, second, DecisionInput(to=outcome, explanation="reviewed again"), CONFIG, override=False
    )
    return ticket_id


async def test_matches_open_one_ticket_per_content_and_repeats_attach(conn: asyncpg.Connection) -> None:
    first = await match(conn, "upload-1")
    again = await match(conn, "upload-1", entry="e-2")
    other = await match(conn, "upload-2")
    assert first.opened and not again.opened and other.opened
    assert first.ticket_id == again.ticket_id != other.ticket_id
    ticket = await ticket_store.get_ticket(conn, first.ticket_id)
    assert ticket.state is State.OPEN and ticket.source is Source.HASH_MATCH and ticket.priority == 1
    assert ticket.sightings == 2 and ticket.automated_detection
    assert ticket.due_at - ticket.received_at == timedelta(hours=1)
    detail = await ticket_store.ticket_detail(conn, first.ticket_id)
    assert [(e.match.hashset, e.match.entry_id, e.match.tool, e.match.distance) for e in detail.evidence] == [
        ("list-a", "e-1", "pdq", 4),
        ("list-a", "e-2", "pdq", 4),
    ]


async def test_concurrent_matches_of_one_item_agree_on_one_ticket(migrated_database_url: str, conn: asyncpg.Connection) -> None:
    pool = await asyncpg.create_pool(migrated_database_url, min_size=8, max_size=8)
    assert pool is not None
    try:
        async with pool.acquire() as c:
            await keystore.ping(c)

        async def one() -> uuid.UUID:
            async with pool.acquire() as c, c.transaction():
                return (await match(c, "same-item")).ticket_id

        ids = await asyncio.gather(*(one() for _ in range(8)))
        assert len(set(ids)) == 1
        async with pool.acquire() as c:
            assert (await ticket_store.get_ticket(c, ids[0])).sightings == 8
            assert await c.fetchval("SELECT count(*) FROM tickets") == 1
    finally:
        await pool.close()


async def test_notices_attach_raise_priority_and_bring_the_due_time_forward(conn: asyncpg.Connection) -> None:
    user = Notice(source=Source.USER_REPORT, content_id="post-9", content_url=None, explanation="looks like abuse")
    ticket, _, opened = await ticket_store.file_notice(conn, user, SYSTEM, CONFIG)
    assert opened and ticket.priority == 3 and ticket.due_at - ticket.received_at == timedelta(hours=72)
    deadline = ticket.received_at + timedelta(hours=5)
    order = Notice(
        source=Source.AUTHORITY_ORDER,
        content_id="post-9",
        content_url=None,
        explanation=None,
        authority="eSafety Commissioner",
        authority_reference="RN-1",
        legal_deadline=deadline,
    )
    again, _, opened = await ticket_store.file_notice(conn, order, SYSTEM, CONFIG)
    assert not opened and again.id == ticket.id
    assert again.priority == 1 and again.due_at == deadline and again.notices == 2
    # A hash match on content a user reported makes the ticket as urgent as a match.
    user2 = Notice(source=Source.USER_REPORT, content_id="post-10", content_url=None, explanation="bad")
    reported, _, _ = await ticket_store.file_notice(conn, user2, SYSTEM, CONFIG)
    assert (await match(conn, "post-10")).ticket_id == reported.id
    matched = await ticket_store.get_ticket(conn, reported.id)
    assert matched.priority == 1 and matched.due_at < reported.due_at and matched.source is Source.USER_REPORT
    detail = await ticket_store.ticket_detail(conn, ticket.id)
    assert [n["source"] for n in detail.notices] == ["user_report", "authority_order"]
    assert detail.notices[0]["notifier_email"] is None  # anonymous notices are allowed


async def test_two_concurrent_claimers_never_get_the_same_ticket(migrated_database_url: str, conn: asyncpg.Connection) -> None:
    for i in range(12):
        await match(conn, f"queue-{i}")
    reviewers = [await staff(conn) for _ in range(16)]
    pool = await asyncpg.create_pool(migrated_database_url, min_size=16, max_size=16)
    assert pool is not None
    try:

        async def claim(actor: Actor) -> uuid.UUID | None:
            async with pool.acquire() as c:
                got = await queue_store.claim_next(c, actor, CONFIG)
                return None if got is None else got.id

        got = await asyncio.gather(*(claim(r) for r in reviewers))
    finally:
        await pool.close()
    claimed = [g for g in got if g is not None]
    assert len(claimed) == 12 and len(set(claimed)) == 12
    assert got.count(None) == 4
    holders = await conn.fetch("SELECT lease_key_id FROM tickets WHERE state = 'in_review'")
    assert len({r["lease_key_id"] for r in holders}) == 12


async def test_an_expired_lease_returns_the_ticket_to_the_queue(conn: asyncpg.Connection) -> None:
    first, second = await staff(conn), await staff(conn)
    ticket_id = (await match(conn, "lease-1")).ticket_id
    assert (await queue_store.claim_next(conn, first, CONFIG)).id == ticket_id  # type: ignore[union-attr]
    assert await queue_store.claim_next(conn, second, CONFIG) is None  # leased: not in the queue
    with pytest.raises(NotLeaseHolder):
        await decision_store.decide(
            conn, ticket_id, second, DecisionInput(to=State.DISMISSED, explanation="x"), CONFIG, override=False
        )
    await conn.execute("UPDATE tickets SET lease_expires_at = now() - interval '1 second' WHERE id = $1", ticket_id)
    taken = await queue_store.claim_next(conn, second, CONFIG)
    assert taken is not None and taken.id == ticket_id and taken.lease_key_id == second.key_id
    with pytest.raises(NotLeaseHolder):  # the first reviewer lost it
        await decision_store.decide(
            conn, ticket_id, first, DecisionInput(to=State.DISMISSED, explanation="x"), CONFIG, override=False
        )
    released = await queue_store.release(conn, ticket_id, second, override=False)
    assert released.state is State.OPEN and released.lease_key_id is None
    # The upkeep job makes an expired lease visible: the ticket is open again, and it is audited.
    await queue_store.claim_next(conn, first, CONFIG)
    assert await queue_store.expire_leases(conn) == 0
    await conn.execute("UPDATE tickets SET lease_expires_at = now() - interval '1 second' WHERE id = $1", ticket_id)
    assert await queue_store.expire_leases(conn) == 1
    expired = await ticket_store.get_ticket(conn, ticket_id)
    assert expired.state is State.OPEN and expired.lease_key_id is None
    last = (await auditlog.audit_page(conn, after_seq=0, subject=f"ticket:{ticket_id}", limit=100))[-1]
    assert last.action == "ticket.lease_expired" and last.actor == "system"


async def test_the_whole_lifecycle_with_appeal_decided_by_another_reviewer(conn: asyncpg.Connection) -> None:
    alice, bob = await staff(conn), await staff(conn)
    ticket_id = (await match(conn, "life-1", hashset="listname-hidden", entry="entryid-hidden")).ticket_id
    await queue_store.claim_next(conn, alice, CONFIG)
    actioned = await decision_store.decide(
        conn,
        ticket_id,
        alice,
        DecisionInput(
            to=State.ACTIONED, action=Action.BLOCK, legal_ground="18 U.S.C. 2252A", explanation="matches known material"
        ),
        CONFIG,
        override=False,
    )
    assert actioned.state is State.ACTIONED and actioned.action is Action.BLOCK and actioned.decided_key_id == alice.key_id
    # The decider keeps the lease, for the follow-up report or close (finding 11: those need it too).
    assert actioned.preserve_until is not None and actioned.lease_key_id == alice.key_id
    statement = await statement_store.latest_statement(conn, ticket_id)
    assert statement["restriction"]["action"] == "block"
    assert statement["automated_means"] == {"detection": True, "detection_tools": ["pdq"], "decision": False}
    assert statement["transparency_database"]["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DISABLED"]
    assert statement["transparency_database"]["source_type"] == "SOURCE_VOLUNTARY"
    assert statement["ground"]["legal_ground"] == "18 U.S.C. 2252A"
    assert "listname-hidden" not in json.dumps(statement) and "entryid-hidden" not in json.dumps(statement)

    reported = await decision_store.report(conn, ticket_id, alice, "NCMEC", "CT-42", CONFIG)
    assert reported.state is State.REPORTED
    appealed = await decision_store.appeal(conn, ticket_id, Actor(key_id=None, name="platform"), "it is a drawing I made", CONFIG)
    assert appealed.state is State.APPEALED
    assert await queue_store.claim_next(conn, alice, CONFIG) is None  # the queue skips the original decider
    with pytest.raises(SameReviewer):
        await decision_store.decide(
            conn, ticket_id, alice, DecisionInput(to=State.UPHELD, explanation="x"), CONFIG, override=True
        )
    assert (await queue_store.claim_next(conn, bob, CONFIG)).id == ticket_id  # type: ignore[union-attr]
    upheld = await decision_store.decide(
        conn, ticket_id, bob, DecisionInput(to=State.UPHELD, explanation="confirmed"), CONFIG, override=False
    )
    assert upheld.state is State.UPHELD and upheld.action is Action.BLOCK
    closed = await decision_store.close(conn, ticket_id, bob, "case complete", CONFIG)
    assert closed.state is State.CLOSED

    detail = await ticket_store.ticket_detail(conn, ticket_id)
    assert [(d.from_state, d.to_state) for d in detail.decisions] == [
        (State.IN_REVIEW, State.ACTIONED),
        (State.ACTIONED, State.REPORTED),
        (State.REPORTED, State.APPEALED),
        (State.APPEALED, State.UPHELD),
        (State.UPHELD, State.CLOSED),
    ]
    assert detail.decisions[0].actor == alice.name and detail.decisions[3].actor == bob.name
    assert detail.decisions[1].reported_to == "NCMEC" and detail.decisions[1].report_reference == "CT-42"
    assert all(not d.automated_decision and d.automated_detection for d in detail.decisions)
    assert [d["action"] for d in detail.deliveries] == ["block"]
    # A closed ticket is finished: the same content opens a new one.
    assert (await match(conn, "life-1")).ticket_id != ticket_id
    result = await auditlog.verify_audit(conn)
    assert result.ok and result.checked >= 9
    actions = [
        r["action"]
        for r in await conn.fetch("SELECT action FROM audit_log WHERE subject = $1 ORDER BY seq", f"ticket:{ticket_id}")
    ]
    assert actions == [
        "ticket.opened",
        "ticket.claimed",
        "ticket.actioned",
        "ticket.reported",
        "ticket.appealed",
        "ticket.claimed",
        "ticket.upheld",
        "ticket.closed",
    ]


async def test_a_reinstatement_tells_the_platform_to_undo_the_restriction(conn: asyncpg.Connection) -> None:
    alice, bob = await staff(conn), await staff(conn)
    ticket_id = await drive(conn, State.REINSTATED, alice, bob)
    ticket = await ticket_store.get_ticket(conn, ticket_id)
    assert ticket.action is None
    deliveries = (await ticket_store.ticket_detail(conn, ticket_id)).deliveries
    assert [d["action"] for d in deliveries] == ["remove", "reinstate"]
    # A reinstated ticket is finished: a new match of the content opens a new ticket.
    assert (await match(conn, ticket.content_id)).ticket_id != ticket_id


DECISIONS = [State.ACTIONED, State.DISMISSED, State.REINSTATED, State.UPHELD, State.OPEN, State.CLOSED, State.REPORTED]


@pytest.mark.parametrize("state", list(State))
async def test_every_refused_move_is_409_and_changes_nothing(conn: asyncpg.Connection, state: State) -> None:
    reviewer, second = await staff(conn), await staff(conn)
    lead = await staff(conn, Role.LEAD)
    ticket_id = await drive(conn, state, reviewer, second)
    holder = second if state is State.APPEALED else reviewer
    allowed = {State.IN_REVIEW: {State.ACTIONED, State.DISMISSED}, State.APPEALED: {State.REINSTATED, State.UPHELD}}.get(
        state, set()
    )
    attempts: list[tuple[str, Any]] = []
    for to in DECISIONS:
        if to not in allowed:
            decision = DecisionInput(to=to, action=Action.REMOVE if to is State.ACTIONED else None, explanation="x")
            attempts.append(
                (f"decide {to}", lambda to=decision: decision_store.decide(conn, ticket_id, lead, to, CONFIG, override=True))
            )
    if state not in (State.ACTIONED, State.REPORTED):
        attempts.append(("appeal", lambda: decision_store.appeal(conn, ticket_id, SYSTEM, "x", CONFIG)))
    if state not in (State.ACTIONED, State.UPHELD):
        attempts.append(("report", lambda: decision_store.report(conn, ticket_id, holder, "NCMEC", None, CONFIG)))
    if state not in (State.UPHELD, State.DISMISSED, State.REINSTATED):
        # actioned/reported cannot be closed inside the appeal window; open/in_review/appealed never.
        attempts.append(("close", lambda: decision_store.close(conn, ticket_id, holder, None, CONFIG)))
    if state not in (State.IN_REVIEW, State.APPEALED):
        attempts.append(("release", lambda: queue_store.release(conn, ticket_id, holder, override=True)))
    assert attempts
    for name, attempt in attempts:
        before = await snapshot(conn, ticket_id)
        with pytest.raises(TakedownError) as caught:
            await attempt()
        assert caught.value.status == 409, name
        assert isinstance(caught.value, InvalidTransition), name
        assert await snapshot(conn, ticket_id) == before, name


async def test_a_list_with_auto_action_is_actioned_without_a_reviewer(conn: asyncpg.Connection) -> None:
    await policy_store.set_policy(conn, SYSTEM, Policy(hashset="verified", tool="*", auto_action=True, action=Action.REMOVE))
    reviewed = await match(conn, "needs-review", hashset="unverified")
    auto = await match(conn, "auto-1", hashset="verified")
    assert reviewed.auto_action is None and (await ticket_store.get_ticket(conn, reviewed.ticket_id)).state is State.OPEN
    assert auto.auto_action is Action.REMOVE
    ticket = await ticket_store.get_ticket(conn, auto.ticket_id)
    assert ticket.state is State.ACTIONED and ticket.action is Action.REMOVE and ticket.decided_key_id is None
    detail = await ticket_store.ticket_detail(conn, auto.ticket_id)
    assert detail.decisions[0].automated_decision and detail.decisions[0].actor == "system"
    assert [d["action"] for d in detail.deliveries] == ["remove"]
    statement = await statement_store.latest_statement(conn, auto.ticket_id)
    assert statement["automated_means"]["decision"] is True
    assert statement["transparency_database"]["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    # An appeal of an automated decision can be decided by any reviewer.
    await decision_store.appeal(conn, auto.ticket_id, SYSTEM, "mistake", CONFIG)
    reviewer = await staff(conn)
    assert (await queue_store.claim_next(conn, reviewer, CONFIG)) is not None
    # A policy for another tool does not apply.
    await policy_store.set_policy(conn, SYSTEM, Policy(hashset="md5-only", tool="md5", auto_action=True, action=Action.REMOVE))
    assert (await match(conn, "pdq-on-md5-list", hashset="md5-only", tool="pdq")).auto_action is None
    assert (await match(conn, "md5-on-md5-list", hashset="md5-only", tool="md5")).auto_action is Action.REMOVE


async def test_appeals_only_within_the_window(conn: asyncpg.Connection) -> None:
    reviewer, second = await staff(conn), await staff(conn)
    ticket_id = await drive(conn, State.ACTIONED, reviewer, second)
    await conn.execute("UPDATE tickets SET decided_at = decided_at - interval '184 days' WHERE id = $1", ticket_id)
    before = await snapshot(conn, ticket_id)
    with pytest.raises(AppealWindowClosed):
        await decision_store.appeal(conn, ticket_id, SYSTEM, "too late", CONFIG)
    assert await snapshot(conn, ticket_id) == before
    # ...and after the window, the case can be closed.
    assert (await decision_store.close(conn, ticket_id, reviewer, "window passed", CONFIG)).state is State.CLOSED


async def test_evidence_is_purged_after_its_deadline_unless_on_legal_hold(conn: asyncpg.Connection) -> None:
    reviewer, second, lead = await staff(conn), await staff(conn), await staff(conn, Role.LEAD)
    kept = await drive(conn, State.REPORTED, reviewer, second)
    held = await drive(conn, State.REPORTED, reviewer, second)
    young = await drive(conn, State.REPORTED, reviewer, second)
    for ticket_id in (kept, held, young):
        await ticket_store.file_notice(
            conn,
            Notice(
                source=Source.HOTLINE,
                content_id=(await ticket_store.get_ticket(conn, ticket_id)).content_id,
                content_url="https://example.test/x",
                explanation="hotline says so",
                notifier_name="Hotline analyst",
                notifier_email="analyst@hotline.test",
            ),
            SYSTEM,
            CONFIG,
        )
    young_until = (await ticket_store.get_ticket(conn, young)).preserve_until
    assert young_until is not None and young_until - (await ticket_store.get_ticket(conn, young)).updated_at > timedelta(days=364)
    await conn.execute("UPDATE tickets SET preserve_until = now() - interval '1 minute' WHERE id = ANY($1::uuid[])", [kept, held])
    await ticket_store.set_hold(conn, held, lead, True, "law enforcement preservation request")
    assert await retention_store.purge_expired_evidence(conn, DETECTOR_SCANS) == 1
    purged = await ticket_store.ticket_detail(conn, kept)
    assert purged.evidence == [] and purged.ticket.evidence_purged_at is not None and purged.ticket.content_url is None
    assert all(n["notifier_email"] is None and n["explanation"] is None for n in purged.notices)
    assert [d.to_state for d in purged.decisions][:2] == [State.ACTIONED, State.REPORTED]  # the case record stays
    for ticket_id in (held, young):
        detail = await ticket_store.ticket_detail(conn, ticket_id)
        assert detail.evidence and detail.notices[0]["notifier_email"] == "analyst@hotline.test"
    await ticket_store.set_hold(conn, held, lead, False, None)
    assert await retention_store.purge_expired_evidence(conn, DETECTOR_SCANS) == 1
    assert (await ticket_store.ticket_detail(conn, held)).evidence == []
    assert await retention_store.purge_expired_evidence(conn, DETECTOR_SCANS) == 0
    assert (await auditlog.verify_audit(conn)).ok


async def test_the_audit_log_refuses_changes_and_verify_finds_an_edited_row(conn: asyncpg.Connection) -> None:
    for i in range(5):
        await match(conn, f"audited-{i}")
    assert (await auditlog.verify_audit(conn)).checked == 5
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("DELETE FROM audit_log WHERE seq = 3")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("TRUNCATE audit_log")
    # A superuser can switch the trigger off; the chain still gives the edit away.
    await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    await conn.execute("UPDATE audit_log SET entry = replace(entry, 'ticket.opened', 'ticket.dismissed') WHERE seq = 3")
    await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    result = await auditlog.verify_audit(conn)
    assert result.broken is not None and result.broken.seq == 3 and result.checked == 2


async def test_append_audit_needs_the_changes_transaction(conn: asyncpg.Connection) -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        await auditlog.append_audit(conn, actor="x", action="y", subject="z")
    async with conn.transaction():
        assert (
            await auditlog.append_audit(
                conn, actor="cli:test", action="hashset.imported", subject="hashset:l", after={"version": 2}
            )
            == 1
        )


async def test_settings_are_audited_when_they_change(conn: asyncpg.Connection) -> None:
    assert await auditlog.record_settings(conn, {"HASHGUARD_LEASE_S": "900.0", "HASHGUARD_WEBHOOK_SECRET": "(set)"})
    assert not await auditlog.record_settings(conn, {"HASHGUARD_LEASE_S": "900.0", "HASHGUARD_WEBHOOK_SECRET": "(set)"})
    assert await auditlog.record_settings(conn, {"HASHGUARD_LEASE_S": "60.0", "HASHGUARD_WEBHOOK_SECRET": "(set)"})
    [last] = [e for e in await auditlog.audit_page(conn, after_seq=0, subject="settings", limit=10) if e.seq == 2]
    entry = json.loads(last.entry)
    assert entry["before"]["HASHGUARD_LEASE_S"] == "900.0" and entry["after"]["HASHGUARD_LEASE_S"] == "60.0"
    assert (await auditlog.verify_audit(conn)).ok


async def test_transparency_figures_come_from_the_case_records(conn: asyncpg.Connection) -> None:
    alice, bob = await staff(conn), await staff(conn)
    await policy_store.set_policy(conn, SYSTEM, Policy(hashset="verified", tool="*", auto_action=True, action=Action.REMOVE))
    for i in range(2):
        await match(conn, f"auto-{i}", hashset="verified")
    reinstated = await drive(conn, State.REINSTATED, alice, bob)  # hash match, actioned by a person, then reversed
    await drive(conn, State.DISMISSED, alice, bob)  # a hash match a person found to be a false match
    reported = await drive(conn, State.REPORTED, alice, bob)
    user = Notice(source=Source.USER_REPORT, content_id="user-1", content_url=None, explanation="x")
    await ticket_store.file_notice(conn, user, SYSTEM, CONFIG)
    now = await conn.fetchval("SELECT now()")
    figures = await transparency_store.transparency_report(conn, now - timedelta(hours=1), now + timedelta(hours=1))
    assert figures["notices_received"] == {"hash_match": 5, "user_report": 1}
    assert figures["actions_taken"] == {"by_action": {"remove": 4}, "by_source": {"hash_match": 4}}
    assert figures["automated_means"] == {
        "actions_with_automated_detection": 4,
        "actions_decided_by_automated_means": 2,
        "automated_detections_overturned_by_people": 2,
    }
    assert set(figures["median_seconds_to_action"]) == {"hash_match"} and figures["median_seconds_to_action"]["hash_match"] >= 0
    assert figures["complaints"]["received"] == 1 and figures["complaints"]["decided"] == {"reinstated": 1}
    assert figures["complaints"]["reversals"] == 1
    assert figures["reports_filed"] == {"NCMEC": 1}
    assert figures["decisions"]["dismissed"] == 1
    # Purging evidence does not change the figures.
    await conn.execute(
        "UPDATE tickets SET preserve_until = now() - interval '1 minute' WHERE id = ANY($1::uuid[])", [reinstated, reported]
    )
    assert await retention_store.purge_expired_evidence(conn, DETECTOR_SCANS) == 2
    assert await transparency_store.transparency_report(conn, now - timedelta(hours=1), now + timedelta(hours=1)) == figures
