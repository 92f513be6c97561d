"""A lookup batch over HTTP: all its matches in one transaction, the answer's shape as before, and
the size limits (more than 1,000 items: 400; a body over 4 MiB, such as 100,000 items: 413)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg

from tests.harness import import_test_list
from tests.http.inprocess import Cli, Service


def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_a_1000_item_batch_records_its_500_matches_in_one_transaction(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    listed = import_test_list(cli, tmp_path / "pictures")
    service = start_service()
    key = cli.new_key()
    far = "00" * 32
    hashes = list(listed.values())
    items = [{"content_id": f"c-{i}", "hashes": {"pdq": hashes[i % len(hashes)] if i % 2 else far}} for i in range(1000)]
    answer = service.post_json("/v1/lookup", {"items": items}, key)
    assert answer.status == 200, answer.body
    verdicts = answer.json()["items"]
    assert [v["content_id"] for v in verdicts] == [f"c-{i}" for i in range(1000)]
    assert sum(v["verdict"] == "match" for v in verdicts) == 500
    first = next(v for v in verdicts if v["verdict"] == "match")
    assert set(first) == {"scan_id", "content_id", "verdict", "matches", "ticket_id", "elapsed_ms"}
    assert set(first["matches"][0]) == {
        "hashset",
        "hashset_version",
        "entry_id",
        "tool",
        "tool_version",
        "approval_id",
        "approval_reason",
        "transform",
    }

    # One transaction: every row carries the one transaction's start time (now()); the evidence is one
    # COPY (one xmin), and the 500 tickets, their evidence rows and their audit entries are each written
    # by one set-based statement in one savepoint of it (one xmin per table), not one round trip per match.
    url = cli.env["HASHGUARD_DATABASE_URL"]
    [row] = fetch(url, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS xids, min(scanned_at) AS at FROM scan_matches")
    assert (row["n"], row["xids"]) == (500, 1)
    [tickets] = fetch(
        url,
        "SELECT count(*) AS n, count(DISTINCT observed_at) AS starts, min(observed_at) AS at,"
        " count(DISTINCT xmin::text) AS xids FROM ticket_evidence",
    )
    assert (tickets["n"], tickets["starts"], tickets["at"], tickets["xids"]) == (500, 1, row["at"], 1)
    [opened] = fetch(url, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS xids, sum(sightings) AS seen FROM tickets")
    assert (opened["n"], opened["xids"], opened["seen"]) == (500, 1, 500)
    [audited] = fetch(
        url, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS xids FROM audit_log WHERE action = 'ticket.opened'"
    )
    assert (audited["n"], audited["xids"]) == (500, 1)
    assert "intact" in cli("audit", "verify").stdout


def test_a_batch_naming_a_content_twice_joins_one_ticket_and_auto_actions_it_once(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    """The set-based path keeps what one call per item did: one live ticket per (tenant, content id),
    a second sighting attached to it, an earlier ticket joined, and an auto-action policy applied once."""
    listed = list(import_test_list(cli, tmp_path / "pictures").values())
    cli("takedown", "policy", "test-list", "--auto-action", "--action", "remove")
    service = start_service()
    key = cli.new_key()
    first = service.post_json("/v1/lookup", {"items": [{"content_id": "earlier", "hashes": {"pdq": listed[0]}}]}, key)
    assert first.status == 200, first.body
    earlier_ticket = first.json()["items"][0]["ticket_id"]
    items = [
        {"content_id": "twice", "hashes": {"pdq": listed[1]}},
        {"content_id": "clean", "hashes": {"pdq": "00" * 32}},
        {"content_id": "earlier", "hashes": {"pdq": listed[2]}},
        {"content_id": "twice", "hashes": {"pdq": listed[3]}},
        {"content_id": "once", "hashes": {"pdq": listed[4]}},
    ]
    answer = service.post_json("/v1/lookup", {"items": items}, key)
    assert answer.status == 200, answer.body
    got = answer.json()["items"]
    assert [v["verdict"] for v in got] == ["match", "no_match", "match", "match", "match"]
    assert got[0]["ticket_id"] == got[3]["ticket_id"] != got[4]["ticket_id"]
    assert got[2]["ticket_id"] == earlier_ticket
    assert got[1]["ticket_id"] is None and "distance" not in got[0]["matches"][0]

    url = cli.env["HASHGUARD_DATABASE_URL"]
    rows = {
        r["content_id"]: r
        for r in fetch(url, "SELECT content_id, sightings, state::text AS state, action::text AS action FROM tickets")
    }
    assert {c: (r["sightings"], r["state"], r["action"]) for c, r in rows.items()} == {
        "earlier": (2, "actioned", "remove"),
        "twice": (2, "actioned", "remove"),
        "once": (1, "actioned", "remove"),
    }
    evidence = fetch(
        url, "SELECT t.content_id, count(*) AS n FROM ticket_evidence e JOIN tickets t ON t.id = e.ticket_id GROUP BY 1"
    )
    assert {r["content_id"]: r["n"] for r in evidence} == {"earlier": 2, "twice": 2, "once": 1}
    actions = [
        (r["subject"], r["action"])
        for r in fetch(url, "SELECT subject, action FROM audit_log WHERE subject LIKE 'ticket:%' ORDER BY seq")
    ]
    twice = f"ticket:{got[0]['ticket_id']}"
    assert [a for s, a in actions if s == twice] == ["ticket.opened", "ticket.actioned", "ticket.match_attached"]
    assert [a for s, a in actions if s == f"ticket:{earlier_ticket}"] == [
        "ticket.opened",
        "ticket.actioned",
        "ticket.match_attached",
    ]
    decided = fetch(url, "SELECT ticket_id, count(*) AS n FROM ticket_decisions GROUP BY 1")
    assert sorted(r["n"] for r in decided) == [1, 1, 1]
    assert "intact" in cli("audit", "verify").stdout


def test_batch_size_limits(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    key = cli.new_key()
    item = {"content_id": "c", "hashes": {"pdq": "00" * 32}}
    over = service.post_json("/v1/lookup", {"items": [item] * 1001}, key)
    assert over.status == 400 and "items" in over.json()["error"]["message"], over.body
    huge = service.request(
        "POST", "/v1/lookup", json.dumps({"items": [item] * 100_000}).encode(), key, Content_Type="application/json"
    )
    assert huge.status == 413, huge.body
    assert huge.json()["error"]["code"] == "payload_too_large"
    assert "at most 1000 items" in huge.json()["error"]["message"]
