"""The transparency figures equal values computed by hand from a seeded set of tickets, each built
through the real store operations (matches, notices, claims, decisions, appeals, reports), per
tenant and overall; and the 2024/2835 and 2021/1232 files carry the same numbers."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import numpy as np
import pytest

from detector.match import Match
from kernel import keystore
from kernel.keys import DEFAULT_TENANT_ID, Role, new_key
from takedown import decision_store, figures_formats, matching, policy_store, queue_store, ticket_store, transparency
from takedown import transparency_store as store
from takedown.config import TakedownConfig
from takedown.rules import Policy
from takedown.tickets import SYSTEM, Actor, DecisionInput, Notice
from takedown.workflow import Action, Source, State
from tests.waiting import eventually

CONFIG = TakedownConfig()
DUE_AT_ONCE = TakedownConfig(due_hours={**CONFIG.due_hours, Source.HASH_MATCH: 0.000001})


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


async def staff(conn: asyncpg.Connection) -> Actor:
    made = new_key()
    return Actor(key_id=await keystore.insert_key(conn, made, Role.REVIEWER, "reviewer"), name=made.prefix)


async def match(
    conn: asyncpg.Connection,
    content: str,
    hashset: str,
    tool: str,
    *,
    tenant: int = DEFAULT_TENANT_ID,
    config: TakedownConfig = CONFIG,
) -> uuid.UUID:
    got = await matching.open_for_matches(
        conn,
        tenant_id=tenant,
        scan_id=uuid.uuid4(),
        content_id=content,
        content_url=f"https://platform.test/{content}",
        matches=[Match(entry_row=1, hashset=hashset, hashset_version=1, entry_id="e1", tool=tool, tool_version="1", distance=3)],
        api_key_id=None,
        config=config,
    )
    return got.ticket_id


async def review(conn: asyncpg.Connection, who: Actor, ticket: uuid.UUID, decision: DecisionInput) -> None:
    claimed = await queue_store.claim_next(conn, who, CONFIG)
    assert claimed is not None and claimed.id == ticket
    await decision_store.decide(conn, ticket, who, decision, CONFIG, override=False)


def remove(action: Action = Action.REMOVE, ground: str | None = None) -> DecisionInput:
    return DecisionInput(to=State.ACTIONED, action=action, ground=ground, explanation="known material")


async def appeal(conn: asyncpg.Connection, ticket: uuid.UUID, second: Actor, outcome: State) -> None:
    await decision_store.appeal(conn, ticket, Actor(key_id=None, name="platform"), "mine", CONFIG)
    await review(conn, second, ticket, DecisionInput(to=outcome, explanation="second look"))


async def seed(conn: asyncpg.Connection) -> dict[str, Any]:
    alice, bob = await staff(conn), await staff(conn)
    other = await keystore.create_tenant(conn, "other")
    assert other is not None
    await policy_store.set_policy(conn, SYSTEM, Policy(hashset="verified", tool="*", auto_action=True, action=Action.REMOVE))
    t: dict[str, uuid.UUID] = {}
    t["auto1"] = await match(conn, "auto1", "verified", "pdq")  # actioned by policy, never reviewed
    t["auto2"] = await match(conn, "auto2", "verified", "pdq")
    t["reported"] = await match(conn, "reported", "review-list", "pdq")  # a person blocks it, then reports it
    await review(conn, alice, t["reported"], remove(Action.BLOCK))
    await decision_store.report(conn, t["reported"], alice, "NCMEC", "CT-1", CONFIG)
    t["dismissed"] = await match(conn, "dismissed", "review-list", "md5")  # a person finds the match wrong
    await review(conn, alice, t["dismissed"], DecisionInput(to=State.DISMISSED, explanation="not the same picture"))
    t["reversed"] = await match(conn, "reversed", "review-list", "pdq")  # removed, then reinstated on appeal
    await review(conn, alice, t["reversed"], remove())
    await appeal(conn, t["reversed"], bob, State.REINSTATED)
    t["upheld"] = await match(conn, "upheld", "verified", "pdq")  # auto-actioned, upheld on appeal
    await appeal(conn, t["upheld"], bob, State.UPHELD)
    user = Notice(source=Source.USER_REPORT, content_id="user1", content_url=None, explanation="x", content_type="image")
    t["user"] = (await ticket_store.file_notice(conn, user, SYSTEM, CONFIG))[0].id
    await review(conn, alice, t["user"], remove())
    flagger = Notice(source=Source.TRUSTED_FLAGGER, content_id="tf1", content_url=None, explanation="y", content_type="video")
    t["flagger"] = (await ticket_store.file_notice(conn, flagger, SYSTEM, CONFIG))[0].id
    await review(conn, alice, t["flagger"], remove(Action.RESTRICT, "incompatible_content"))
    t["overdue"] = await match(conn, "late", "other-list", "pdq", config=DUE_AT_ONCE)  # open, past due
    t["tenant_b"] = await match(conn, "b1", "verified", "pdq", tenant=other.id)  # another tenant's

    async def past_due() -> bool:
        return bool(await conn.fetchval("SELECT due_at < now() FROM tickets WHERE id = $1", t["overdue"]))

    await eventually(past_due, 10, what="the late ticket passing its due time")
    return {"tickets": t, "other": other.id}


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)  # linear interpolation, like percentile_cont


async def test_the_figures_equal_the_hand_computed_values(conn: asyncpg.Connection) -> None:
    seeded = await seed(conn)
    t = seeded["tickets"]
    now = await conn.fetchval("SELECT now()")
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    ours = await store.transparency_report(conn, start, end, [DEFAULT_TENANT_ID])
    # Notices: the seven hash-match tickets are own-initiative detections, plus one of each notice.
    assert ours["notices"]["by_source"] == {"hash_match": 7, "trusted_flagger": 1, "user_report": 1}
    assert ours["notices"]["trusted_flagger"] == 1
    kinds = {(n["source"], n["content_type"]): n["n"] for n in ours["notices"]["by_source_and_category"]}
    assert kinds == {("hash_match", "unspecified"): 7, ("trusted_flagger", "video"): 1, ("user_report", "image"): 1}
    # Actions: auto1, auto2, upheld (by policy); reported (block), reversed, user (by people); flagger (T&C).
    actions = ours["actions"]
    assert actions["total"] == 7
    assert actions["by_type_and_ground"] == {
        "block": {"illegal_content": 1},
        "remove": {"illegal_content": 5},
        "restrict": {"incompatible_content": 1},
    }
    assert actions["automated_share"] == {"detection": round(5 / 7, 6), "decision": round(3 / 7, 6)}
    assert actions["own_initiative_by_type"] == {"block": 1, "remove": 4}
    # Time to action per source, from the records' own timestamps.
    rows = await conn.fetch(
        "SELECT source::text AS source, extract(epoch FROM first_action_at - received_at)::float8 AS s FROM tickets"
        " WHERE first_action_at IS NOT NULL AND tenant_id = $1",
        DEFAULT_TENANT_ID,
    )
    for source in ("hash_match", "user_report", "trusted_flagger"):
        values = [r["s"] for r in rows if r["source"] == source]
        got = ours["time_to_action_seconds"][source]
        assert got == {"n": len(values), "median": pct(values, 50), "p90": pct(values, 90)}
    assert ours["time_to_action_seconds"]["hash_match"]["n"] == 5
    assert ours["overdue_tickets"] == {"total": 1, "by_source": {"hash_match": 1}}
    assert ours["appeals"] == {"received": 2, "decided": 2, "reversed": 1, "upheld": 1}
    # Precision: pdq reviewed on reported, reversed, upheld (reversed wrong); md5 on dismissed (wrong);
    # review-list on reported, dismissed, reversed; verified only on upheld. auto1/auto2: not reviewed.
    acc = ours["accuracy"]
    assert acc["by_tool"] == {
        "md5": {"reviewed": 1, "wrong": 1, "error_rate": 1.0, "precision": 0.0},
        "pdq": {"reviewed": 3, "wrong": 1, "error_rate": round(1 / 3, 6), "precision": round(1 - round(1 / 3, 6), 6)},
    }
    assert acc["by_list"]["review-list"] == {
        "reviewed": 3,
        "wrong": 2,
        "error_rate": round(2 / 3, 6),
        "precision": round(1 - round(2 / 3, 6), 6),
    }
    assert acc["by_list"]["verified"] == {"reviewed": 1, "wrong": 0, "error_rate": 0.0, "precision": 1.0}
    assert acc["overall"]["reviewed"] == 4 and acc["overall"]["wrong"] == 2
    # Reports: one to NCMEC, timed from the match to the report decision.
    seconds = await conn.fetchval(
        "SELECT extract(epoch FROM d.decided_at - t.received_at)::float8 FROM ticket_decisions d JOIN tickets t ON t.id = d.ticket_id"
        " WHERE d.to_state = 'reported' AND t.id = $1",
        t["reported"],
    )
    assert ours["reports"] == {
        "by_hotline": {"NCMEC": {"filed": 1, "median_seconds_match_to_report": round(seconds, 3)}},
        "total": 1,
    }
    assert ours["lists"]["matched"] == [
        {"hashset": "other-list", "version": 1, "tickets": 1},
        {"hashset": "review-list", "version": 1, "tickets": 3},
        {"hashset": "verified", "version": 1, "tickets": 3},
    ]
    # Overall adds the other tenant's one automated removal; its own figures are only that.
    overall = await store.transparency_report(conn, start, end)
    assert overall["actions"]["total"] == 8 and overall["notices"]["by_source"]["hash_match"] == 8
    theirs = await store.transparency_report(conn, start, end, [seeded["other"]])
    assert theirs["actions"]["by_type_and_ground"] == {"remove": {"illegal_content": 1}}
    assert theirs["accuracy"]["by_tool"] == {} and theirs["overdue_tickets"]["total"] == 0
    # The figures survive the evidence purge: ticket_detections keeps which list and tool matched.
    await conn.execute("UPDATE tickets SET preserve_until = now() - interval '1 minute' WHERE legal_hold IS false")
    await conn.execute("DELETE FROM ticket_evidence")
    assert (await store.transparency_report(conn, start, end, [DEFAULT_TENANT_ID]))["accuracy"] == acc


def _rows(text: str) -> dict[tuple[str, str, str], str]:
    return {(r["section"], r["quantity"], r["breakdown"]): r["value"] for r in csv.DictReader(io.StringIO(text))}


async def test_the_regulatory_files_carry_the_same_numbers(conn: asyncpg.Connection) -> None:
    await seed(conn)
    now = await conn.fetchval("SELECT now()")
    context = transparency.Context(
        eu=transparency.EuBasis(serves_eu=True, basis=None, halted="the deployment serves EU and no EU legal basis ..."),
        retention_days=365,
        appeal_window_days=183,
    )
    report = await store.transparency_report(
        conn, now - timedelta(hours=1), now + timedelta(hours=1), [DEFAULT_TENANT_ID], context=context
    )
    dsa = _rows(figures_formats.dsa_2024_2835(report))
    cat = "category=STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    assert dsa[("1.3", "notices_received", cat)] == "2"
    assert dsa[("1.3", "notices_from_trusted_flaggers", cat)] == "1"
    assert dsa[("1.3", "actions_taken_on_notices", "basis=law")] == "1"
    assert dsa[("1.3", "actions_taken_on_notices", "basis=terms_and_conditions")] == "1"
    assert dsa[("1.4", "own_initiative_measures", f"{cat};detection=automated_hash_matching;restriction=remove")] == "4"
    assert dsa[("1.5", "complaints_decision_reversed", "")] == "1"
    assert dsa[("1.5", "out_of_court_disputes", "")] == ""  # not recorded: empty, never a made-up 0
    assert dsa[("1.6", "error_rate", "tool=md5")] == "1.0"
    assert float(dsa[("1.6", "precision", "list=review-list")]) == report["accuracy"]["by_list"]["review-list"]["precision"]
    eu = _rows(figures_formats.eu_2021_1232(report))
    assert eu[("cases", "cases_identified", "type=csam")] == "7"
    assert eu[("cases", "cases_identified", "type=solicitation")] == "0"
    assert eu[("errors", "false_positives", "technology=pdq")] == "1"
    assert eu[("errors", "error_rate_achieved", "technology=all")] == "0.5"
    assert eu[("legal_basis", "detection_halted_for_eu", "")] == "True"
    assert eu[("retention", "evidence_retention_days", "")] == "365"
    flat = dict(csv.reader(io.StringIO(figures_formats.flat_csv(report))))
    assert flat["actions.total"] == "7" and flat["accuracy.by_tool.pdq.reviewed"] == "3"
