"""No stored record stops reloads or the start (finding 8 of issue 11): an approval whose dates the
driver cannot hand over as comparable moments fails closed for its tool alone, and a reload that
fails keeps the last good index, is counted, and turns /readyz 503 once the index is stale."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from detector.synthetic import draw, variant
from tests.harness import make_list, scan
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until

STOP_WITHIN_S = 5.0


def sql(url: str, statement: str, *args: Any) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()

    asyncio.run(run())


def tools_state(service: Service) -> dict[str, dict[str, Any]]:
    return {t["tool"]: t for t in service.request("GET", "/readyz").json().get("tools", [])}


def metric(service: Service, line_start: str) -> str:
    body = service.request("GET", "/metrics").body.decode()
    return next((line for line in body.splitlines() if line.startswith(line_start)), "")


def approve_pdq(cli: Cli) -> int:
    out = cli("tools", "approve", "pdq", "--authority", "Ofcom", "--jurisdiction", "GB", "--instrument", "code (test record)")
    return int(out.stdout.splitlines()[0])


def test_an_approval_stored_with_extreme_dates_stops_its_tool_and_neither_reloads_nor_starts_fail(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path, migrated_database_url: str
) -> None:
    make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "gb-list", "--tool", "pdq", "--allow-unsigned")
    approval_id = approve_pdq(cli)
    env = {"HASHGUARD_JURISDICTIONS": "GB", "HASHGUARD_RELOAD_INTERVAL_S": "0.5"}
    service = start_service(allow_tools=False, **env)
    key = cli.new_key()
    upload = variant(draw(13), scale=0.5, quality=60)
    assert scan(service, key, upload).json()["verdict"] == "match"

    # What the API used to store for "9999-12-31T23:59:59.999999Z" (PostgreSQL's infinity, read back as a
    # naive datetime), and a row written with SQL with a moment before any the rule accepts.
    sql(migrated_database_url, "UPDATE tool_approvals SET valid_until = 'infinity' WHERE id = $1", approval_id)
    sql(
        migrated_database_url,
        "INSERT INTO tool_approvals (tool, authority, jurisdiction, instrument, status, valid_from)"
        " VALUES ('phash', 'X', 'GB', 'by hand', 'approved', '0001-01-01 00:00:00+00')",
    )
    # The two rows are written by two statements, so a reload may see the first alone: wait for both.
    wait_until(lambda: {tools_state(service)[t]["reason"] for t in ("pdq", "phash")} == {"unreadable_approval"}, STOP_WITHIN_S)
    assert not tools_state(service)["pdq"]["active"]
    # Failing closed: the tool no longer scans, and nothing answers no_match for it.
    refused = scan(service, key, upload)
    assert refused.status == 503 and refused.json()["error"]["code"] == "not_ready", refused.body
    lookup = service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": "00" * 32}}, key)
    assert lookup.status == 503
    # Handled record by record: the reloads themselves went on without a failure.
    assert metric(service, "hashguard_index_reload_failures_total") == "hashguard_index_reload_failures_total 0.0"
    assert (
        'hashguard_tool_active{reason="unreadable_approval",tool="pdq"} 0.0' in service.request("GET", "/metrics").body.decode()
    )
    # The registry still lists it, with a closed window in place of what cannot be read.
    admin = cli.new_key("admin")
    listed = service.request("GET", "/v1/tools/approvals", None, admin)
    assert listed.status == 200 and len(listed.json()["approvals"]) == 2

    # A restart on these records starts (it used to fail at once), not ready and saying why.
    service.stop()
    again = start_service(allow_tools=False, expect_ready=False, **env)
    ready = again.request("GET", "/readyz")
    assert ready.status == 503
    assert "cannot be read" in tools_state(again)["pdq"]["detail"]

    # The way back: withdraw it (final, whatever its dates) and record a new approval.
    cli("tools", "withdraw", str(approval_id), "--note", "stored with an unreadable end")
    wait_until(lambda: tools_state(again)["pdq"]["reason"] == "withdrawn", STOP_WITHIN_S)
    approve_pdq(cli)
    wait_until(lambda: again.request("GET", "/readyz").status == 200, STOP_WITHIN_S)
    assert scan(again, key, upload).json()["verdict"] == "match"


def test_a_failing_reload_keeps_the_last_good_index_counts_and_turns_readyz_503_once_stale(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path, migrated_database_url: str
) -> None:
    make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "gb-list", "--tool", "pdq", "--allow-unsigned")
    service = start_service(HASHGUARD_RELOAD_INTERVAL_S="0.5", HASHGUARD_INDEX_STALE_S="2")
    key = cli.new_key()
    upload = variant(draw(12), scale=0.5, quality=60)
    # A real fault, no stand-in: a table the reload reads goes away under the running service.
    sql(migrated_database_url, "ALTER TABLE tool_local_allowances RENAME TO tool_local_allowances_away")
    try:
        wait_until(lambda: metric(service, "hashguard_index_reload_failures_total").endswith(("1.0", "2.0", "3.0", "4.0")), 10)
        # The last good index keeps serving meanwhile...
        assert scan(service, key, upload).json()["verdict"] == "match"
        # ...until it is older than HASHGUARD_INDEX_STALE_S: then the replica says it is not ready.
        wait_until(lambda: service.request("GET", "/readyz").status == 503, 10)
        problems = service.request("GET", "/readyz").json()["problems"]
        assert any(p.startswith("index stale") and "HASHGUARD_INDEX_STALE_S=2" in p for p in problems), problems
        assert "ALERT: could not reload" in service.log()
    finally:
        sql(migrated_database_url, "ALTER TABLE tool_local_allowances_away RENAME TO tool_local_allowances")
    # Back by itself once the fault is gone.
    wait_until(lambda: service.request("GET", "/readyz").status == 200, 10)
