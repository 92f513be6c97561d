"""The tool registry end to end: the service as real processes, approvals recorded through the
command line and the admin API, enforcement at scan time in every replica."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from detector.synthetic import draw, variant
from tests.harness import make_list, scan
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until

# The requirement: a suspended or withdrawn tool stops in every replica within 5 s, without restart.
STOP_WITHIN_S = 5.0


def tools_state(service: Service) -> dict[str, dict[str, Any]]:
    ready = service.request("GET", "/readyz").json()
    return {t["tool"]: t for t in ready.get("tools", [])}


def test_a_fresh_install_scans_with_nothing_and_says_so(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service(allow_tools=False, expect_ready=False)
    key = cli.new_key()
    ready = service.request("GET", "/readyz")
    assert ready.status == 503
    assert any("no detection tool is active" in p for p in ready.json()["problems"])
    assert {t["tool"]: t["reason"] for t in ready.json()["tools"]} == dict.fromkeys(
        ["dhash", "md5", "pdq", "phash", "sha256", "vpdq"], "no_approval"
    )
    refused = scan(service, key, variant(draw(12)))
    assert refused.status == 503 and refused.json()["error"]["code"] == "not_ready"
    lookup = service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"md5": "00" * 16}}, key)
    assert lookup.status == 503 and lookup.json()["error"]["code"] == "not_ready"
    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_tool_active{reason="no_approval",tool="pdq"} 0.0' in metrics

    # An admin allows one tool locally: the running service starts scanning with it, labelled as such.
    out = cli("tools", "allow-local", "md5", "--reason", "exact matching of our own list", "--actor", "alice")
    assert "not an approval" in out.stdout
    wait_until(lambda: service.request("GET", "/readyz").status == 200, STOP_WITHIN_S)
    assert tools_state(service)["md5"]["reason"] == "local_allowance"
    assert scan(service, key, variant(draw(12))).json()["verdict"] == "no_match"
    # md5 is active, pdq is not: a lookup naming pdq is refused rather than silently ignored.
    inactive = service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": "00" * 32}}, key)
    assert inactive.status == 400 and inactive.json()["error"]["code"] == "tool_not_active"
    assert "no_approval" in inactive.json()["error"]["message"]


def test_suspension_and_withdrawal_stop_the_tool_in_every_replica(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path, migrated_database_url: str
) -> None:
    make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "gb-list", "--tool", "pdq", "--allow-unsigned")
    approval_id = int(
        cli(
            "tools",
            "approve",
            "pdq",
            "--authority",
            "Ofcom",
            "--jurisdiction",
            "gb",
            "--instrument",
            "ICU code measure (test record)",
            "--status",
            "recommended",
            "--versions",
            ">=0.2",
            "--scope",
            "csam_known",
        ).stdout.splitlines()[0]
    )
    cli("tools", "allow-local", "md5", "--reason", "keeps the replicas ready while pdq is stopped")
    replicas = [start_service(allow_tools=False, HASHGUARD_JURISDICTIONS="GB,AU") for _ in range(2)]
    key = cli.new_key()
    upload = variant(draw(13), scale=0.5, quality=60)

    for replica in replicas:
        verdict = scan(replica, key, upload).json()
        assert verdict["verdict"] == "match"
        [match] = verdict["matches"]
        assert (match["tool"], match["approval_id"], match["approval_reason"]) == ("pdq", approval_id, "recommended")
        assert tools_state(replica)["pdq"]["detail"] == "Ofcom (GB): ICU code measure (test record)"

    def pdq_active(replica: Service) -> bool:
        return bool(tools_state(replica)["pdq"]["active"])

    # Timed from before the command starts: its own start-up (about a second) counts too.
    since = time.monotonic()
    cli("tools", "suspend", str(approval_id), "--note", "accuracy under review")
    took = [wait_until(lambda r=r: not pdq_active(r), STOP_WITHIN_S, since=since) for r in replicas]  # type: ignore[misc]
    print(f"suspension applied by both replicas {max(took):.2f} s after the command started")
    for replica in replicas:
        assert scan(replica, key, upload).json()["verdict"] == "no_match"
        assert tools_state(replica)["pdq"]["reason"] == "suspended"
        metrics = replica.request("GET", "/metrics").body.decode()
        assert 'hashguard_tool_active{reason="suspended",tool="pdq"} 0.0' in metrics
        # The list stays stored, just not matched.
        assert "gb-list" in cli("hashsets", "list").stdout

    cli("tools", "reinstate", str(approval_id), "--status", "recommended")
    for replica in replicas:
        wait_until(lambda r=replica: pdq_active(r), STOP_WITHIN_S)  # type: ignore[misc]
        assert scan(replica, key, upload).json()["verdict"] == "match"

    since = time.monotonic()
    cli("tools", "withdraw", str(approval_id), "--note", "withdrawn by the authority")
    took = [wait_until(lambda r=r: not pdq_active(r), STOP_WITHIN_S, since=since) for r in replicas]  # type: ignore[misc]
    print(f"withdrawal applied by both replicas {max(took):.2f} s after the command started")
    assert all(scan(r, key, upload).json()["verdict"] == "no_match" for r in replicas)
    # A local allowance cannot override the withdrawal; withdrawn is final.
    cli("tools", "allow-local", "pdq", "--reason", "trying to override")
    # Proof the replicas have read that allowance: a later change (allowing dhash) is visible in
    # each, and each reload reads every standing allowance, the pdq one included.
    cli("tools", "allow-local", "dhash", "--reason", "a later change to wait for")
    for replica in replicas:
        wait_until(lambda r=replica: bool(tools_state(r)["dhash"]["active"]), STOP_WITHIN_S)  # type: ignore[misc]
        assert not pdq_active(replica) and tools_state(replica)["pdq"]["reason"] == "withdrawn"
    again = cli("tools", "reinstate", str(approval_id), check=False)
    assert again.returncode == 1 and "withdrawn is final" in again.stderr

    # Provenance in storage and the history of every change.
    async def stored() -> tuple[list[Any], list[str]]:
        conn = await asyncpg.connect(migrated_database_url)
        try:
            rows = await conn.fetch("SELECT tool, tool_version, approval_id, approval_reason FROM scan_matches")
            actions = [r["action"] for r in await conn.fetch("SELECT action FROM tool_approval_events ORDER BY id")]
            return list(rows), actions
        finally:
            await conn.close()

    rows, actions = asyncio.run(stored())
    assert len(rows) == 4 and {(r["tool"], r["approval_id"], r["approval_reason"]) for r in rows} == {
        ("pdq", approval_id, "recommended")
    }
    assert actions == [
        "approval.create",
        "allowance.create",
        "approval.suspended",
        "approval.recommended",
        "approval.withdrawn",
        "allowance.create",
        "allowance.create",
    ]
    # The CLI decides as a deployment with its own HASHGUARD_JURISDICTIONS would.
    gb = Cli({**cli.env, "HASHGUARD_JURISDICTIONS": "GB"})
    shown = json.loads(gb("tools", "show", "pdq").stdout)
    assert shown["activation"]["reason"] == "withdrawn" and shown["approvals"][0]["status"] == "withdrawn"
    assert [e["action"] for e in shown["events"]][:2] == ["allowance.create", "approval.withdrawn"]
    listed = {line.split("\t")[0]: line.split("\t") for line in gb("tools", "list").stdout.splitlines()[1:]}
    assert listed["pdq"][5:7] == ["no", "withdrawn"] and listed["md5"][5:7] == ["yes", "local_allowance"]
    # Where the withdrawal does not apply (no jurisdiction declared), the local allowance does.
    elsewhere = {line.split("\t")[0]: line.split("\t") for line in cli("tools", "list").stdout.splitlines()[1:]}
    assert elsewhere["pdq"][5:7] == ["yes", "local_allowance"]


def test_an_expiring_approval_stops_the_tool_at_its_end_without_any_write(
    cli: Cli, start_service: Callable[..., Service]
) -> None:
    cli("tools", "allow-local", "md5", "--reason", "keeps the service ready")
    service = start_service(
        allow_tools=False, HASHGUARD_JURISDICTIONS="EU", HASHGUARD_EU_VOLUNTARY_DETECTION_BASIS="a recorded basis (test)"
    )
    admin = cli.new_key("admin")
    until = datetime.now(UTC) + timedelta(seconds=3)
    body = {"tool": "pdq", "authority": "EU", "jurisdiction": "EU", "instrument": "test", "valid_until": until.isoformat()}
    assert service.post_json("/v1/tools/approvals", body, admin).status == 201
    wait_until(lambda: bool(tools_state(service)["pdq"]["active"]), STOP_WITHIN_S)
    # The periodic check runs every 30 s here: only the scheduled wake-up can be this quick.
    left = max(0.0, (until - datetime.now(UTC)).total_seconds())
    wait_until(lambda: tools_state(service)["pdq"]["reason"] == "expired", left + STOP_WITHIN_S)
    assert datetime.now(UTC) >= until


def test_admin_api(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service(allow_tools=False, expect_ready=False, HASHGUARD_JURISDICTIONS="AU")
    admin, auditor, platform = cli.new_key("admin"), cli.new_key("auditor"), cli.new_key("platform")

    def expect(result, status: int, code: str | None = None) -> Any:  # type: ignore[no-untyped-def]
        assert result.status == status, result.body
        if code is not None:
            assert result.json()["error"]["code"] == code
        return result.json()

    body = {"tool": "pdq", "authority": "eSafety", "jurisdiction": "au", "instrument": "DIS Standard (test record)"}
    expect(service.post_json("/v1/tools/approvals", body, platform), 403, "forbidden")
    expect(service.post_json("/v1/tools/approvals", body, auditor), 403, "forbidden")
    expect(service.post_json("/v1/tools/approvals", body, None), 401, "unauthorized")
    for bad, code in (
        ({**body, "authority": ""}, "bad_request"),
        ({**body, "status": "withdrawn"}, "bad_request"),
        ({**body, "status": "nonsense"}, "bad_request"),
        ({**body, "versions": "latest"}, "invalid_version_spec"),
        ({**body, "valid_from": "2026-02-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"}, "bad_request"),
        ({**body, "valid_until": "tomorrow"}, "bad_request"),
        ({**body, "evidence_url": "javascript:alert(1)"}, "bad_request"),
        ({**body, "scope": "csam_known"}, "bad_request"),
        ({**body, "extra": 1}, "bad_request"),
        ({**body, "tool": "Not A Tool"}, "bad_request"),
        ({**body, "instrument": "nul\u0000inside"}, "bad_request"),
        ({**body, "jurisdiction": "Great Britain"}, "bad_request"),
    ):
        expect(service.post_json("/v1/tools/approvals", bad, admin), 400, code)
    expect(service.request("POST", "/v1/tools/approvals", b"{", admin, Content_Type="application/json"), 400, "bad_request")

    created = expect(
        service.post_json(
            "/v1/tools/approvals",
            {**body, "versions": ">=0.2,<1", "scope": ["csam_known"], "valid_until": "2099-01-01T00:00:00Z"},
            admin,
        ),
        201,
    )
    assert created["jurisdiction"] == "AU" and created["status"] == "approved" and created["scope"] == ["csam_known"]
    approval_path = f"/v1/tools/approvals/{created['id']}"
    assert expect(service.request("GET", approval_path, key=auditor), 200) == created
    expect(service.request("GET", "/v1/tools/approvals/999999", key=auditor), 404, "approval_not_found")
    expect(service.request("GET", "/v1/tools/approvals/x", key=auditor), 404, "not_found")
    assert [a["id"] for a in expect(service.request("GET", "/v1/tools/approvals?tool=pdq", key=admin), 200)["approvals"]] == [
        created["id"]
    ]
    wait_until(lambda: service.request("GET", "/readyz").status == 200, STOP_WITHIN_S)
    tools = {t["name"]: t for t in expect(service.request("GET", "/v1/tools", key=auditor), 200)["tools"]}
    assert tools["pdq"]["activation"]["approval_id"] == created["id"] and tools["pdq"]["bits"] == 256
    assert tools["md5"]["activation"]["reason"] == "no_approval" and tools["md5"]["index"] == "exact"

    expect(service.post_json(f"{approval_path}/status", {"status": "suspended"}, auditor), 403, "forbidden")
    expect(service.post_json(f"{approval_path}/status", {"status": "maybe"}, admin), 400, "bad_request")
    expect(service.post_json(f"{approval_path}/status", {"status": "suspended", "note": "\u0000"}, admin), 400, "bad_request")
    expect(service.post_json(f"{approval_path}/status", {"status": "withdrawn", "note": "gone"}, admin), 200)
    expect(service.post_json(f"{approval_path}/status", {"status": "approved"}, admin), 409, "invalid_transition")
    expect(service.post_json("/v1/tools/approvals/999999/status", {"status": "suspended"}, admin), 404, "approval_not_found")

    expect(service.post_json("/v1/tools/allowances", {"tool": "nosuch", "reason": "x"}, admin), 400, "bad_request")
    expect(service.post_json("/v1/tools/allowances", {"tool": "md5"}, admin), 400, "missing_field")
    allowance = expect(service.post_json("/v1/tools/allowances", {"tool": "md5", "reason": "own list"}, admin), 201)
    expect(service.post_json("/v1/tools/allowances", {"tool": "md5", "reason": "again"}, admin), 409, "allowance_exists")
    assert [a["tool"] for a in expect(service.request("GET", "/v1/tools/allowances", key=auditor), 200)["allowances"]] == ["md5"]
    expect(service.request("DELETE", "/v1/tools/allowances/md5", key=admin), 200)
    expect(service.request("DELETE", "/v1/tools/allowances/md5", key=admin), 404, "allowance_not_found")

    events = expect(service.request("GET", "/v1/tools/events?limit=10", key=auditor), 200)["events"]
    assert [e["action"] for e in events] == ["allowance.revoke", "allowance.create", "approval.withdrawn", "approval.create"]
    admin_prefix = admin[:11]
    assert {e["actor"] for e in events} == {f"api:{admin_prefix}"}
    assert events[2]["before"]["status"] == "approved" and events[2]["after"]["status"] == "withdrawn"
    assert events[2]["after"]["note"] == "gone" and events[1]["local_allowance_id"] == allowance["id"]
    expect(service.request("GET", "/v1/tools/events?limit=0", key=auditor), 400, "bad_request")
    assert "Traceback" not in service.log()
