"""Takedown through the service (the app in this process, over loopback HTTP): roles on every
endpoint, a match becoming a ticket and a platform action, appeals, and the takedown commands.

A SIGKILL between decision and delivery, which needs a real process: tests/acceptance/test_takedown_delivery.py."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from detector.synthetic import draw, variant
from hashguard import app as hashguard_app
from tests.conftest import FakePlatform
from tests.harness import make_list, scan
from tests.harness import ok as _ok
from tests.http.inprocess import Cli, Service

ROLES = ("platform", "reviewer", "lead", "admin", "auditor")
ANYONE = frozenset({*ROLES, None})

# Who may call what, written out here independently of the code (takedown.http.ROLES is checked
# against it): a change to either side has to be a deliberate change to both.
EXPECTED: dict[tuple[str, str], frozenset[str | None]] = {
    ("GET", "/healthz"): ANYONE,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/metrics"): ANYONE,
    ("GET", "/openapi.json"): ANYONE,
    ("POST", "/v1/scan"): frozenset({"platform"}),
    ("POST", "/v1/lookup"): frozenset({"platform"}),
    ("POST", "/v1/notices"): frozenset({"platform"}),
    ("GET", "/v1/tickets"): frozenset({"reviewer", "lead", "auditor"}),
    ("GET", "/v1/tickets/{ticket_id}"): frozenset({"reviewer", "lead", "auditor"}),
    ("GET", "/v1/tickets/{ticket_id}/statement"): frozenset({"platform", "reviewer", "lead", "auditor"}),
    ("POST", "/v1/queue/claim"): frozenset({"reviewer", "lead"}),
    ("POST", "/v1/tickets/{ticket_id}/release"): frozenset({"reviewer", "lead"}),
    ("POST", "/v1/tickets/{ticket_id}/assign"): frozenset({"lead"}),
    ("POST", "/v1/tickets/{ticket_id}/decision"): frozenset({"reviewer", "lead"}),
    ("POST", "/v1/tickets/{ticket_id}/report"): frozenset({"reviewer", "lead"}),
    ("POST", "/v1/tickets/{ticket_id}/close"): frozenset({"reviewer", "lead"}),
    ("POST", "/v1/tickets/{ticket_id}/appeal"): frozenset({"platform"}),
    ("POST", "/v1/tickets/{ticket_id}/legal-hold"): frozenset({"lead", "admin"}),
    ("POST", "/v1/tickets/{ticket_id}/retry-actions"): frozenset({"lead", "admin"}),
    ("GET", "/v1/policies"): frozenset({"lead", "admin", "auditor"}),
    ("PUT", "/v1/policies"): frozenset({"admin"}),
    ("GET", "/v1/audit"): frozenset({"auditor", "admin"}),
    ("GET", "/v1/transparency"): frozenset({"lead", "admin", "auditor"}),
    ("GET", "/v1/transparency/export"): frozenset({"lead", "admin", "auditor"}),
    # The tool registry (issue 7).
    ("GET", "/v1/tools"): frozenset({"admin", "auditor"}),
    ("GET", "/v1/tools/approvals"): frozenset({"admin", "auditor"}),
    ("POST", "/v1/tools/approvals"): frozenset({"admin"}),
    ("GET", r"/v1/tools/approvals/{approval_id:\d{1,18}}"): frozenset({"admin", "auditor"}),
    ("POST", r"/v1/tools/approvals/{approval_id:\d{1,18}}/status"): frozenset({"admin"}),
    ("GET", "/v1/tools/allowances"): frozenset({"admin", "auditor"}),
    ("POST", "/v1/tools/allowances"): frozenset({"admin"}),
    ("DELETE", "/v1/tools/allowances/{tool}"): frozenset({"admin"}),
    ("GET", "/v1/tools/events"): frozenset({"admin", "auditor"}),
    # Lifting a probing suspension (issue 11).
    ("POST", "/v1/keys/{key_prefix}/release"): frozenset({"lead", "admin"}),
    # Previews for the console (issue 13).
    ("POST", "/v1/tickets/{ticket_id}/previews"): frozenset({"platform"}),
    # HMA-compatible matching (detector.hma_http): platform keys, as /v1/lookup.
    ("GET", "/m/raw_lookup"): frozenset({"platform"}),
    ("GET", "/m/lookup"): frozenset({"platform"}),
    ("POST", "/m/compare"): frozenset({"platform"}),
    ("GET", "/m/index/status"): frozenset({"platform"}),
}


def test_the_role_table_covers_every_route_and_matches_the_code() -> None:
    # The route table is the one source the router, the OpenAPI document and this test read.
    served = {route.key: frozenset(r.value for r in route.roles) or ANYONE for route in hashguard_app.service_routes()}
    assert served == EXPECTED


def test_every_endpoint_against_every_role_and_no_key(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    keys: dict[str | None, str | None] = {role: cli.new_key(role) for role in ROLES}
    keys[None] = None
    missing = str(uuid.uuid4())
    checked = 0
    for (method, path), allowed in EXPECTED.items():
        url = path.replace("{ticket_id}", missing).replace(r"{approval_id:\d{1,18}}", "999999").replace("{tool}", "nosuchtool")
        url = url.replace("{key_prefix}", "hg_nosuchkey")
        for role, key in keys.items():
            result = service.request(method, url, b"{}", key, Content_Type="application/json")
            where = f"{method} {path} as {role or 'no key'}: {result.status} {result.body[:200]!r}"
            if role in allowed:
                assert result.status not in (401, 403), where
                assert result.status < 500, where
            elif role is None:
                assert result.status == 401 and result.json()["error"]["code"] == "unauthorized", where
            else:
                assert result.status == 403 and result.json()["error"]["code"] == "forbidden", where
            checked += 1
    assert checked == len(EXPECTED) * (len(ROLES) + 1)
    assert "Traceback" not in service.log()


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    hashes = make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "test-list", "--tool", "pdq", "--allow-unsigned")
    return hashes


def test_a_match_becomes_a_ticket_a_decision_a_platform_action_a_statement_and_an_appeal(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service], fake_platform: FakePlatform
) -> None:
    service = start_service(
        HASHGUARD_WEBHOOK_URL=fake_platform.url,
        HASHGUARD_WEBHOOK_SECRET=fake_platform.secret,
        HASHGUARD_OUTBOX_POLL_S="0.1",
        HASHGUARD_WEBHOOK_BACKOFF_S="0.05",
    )
    platform, alice, bob, admin = cli.new_key(), cli.new_key("reviewer"), cli.new_key("reviewer"), cli.new_key("admin")

    first = _ok(scan(service, platform, variant(draw(13), scale=0.5), content_id="upload-13"))
    again = _ok(scan(service, platform, variant(draw(13), scale=0.7), content_id="upload-13"))
    other = _ok(scan(service, platform, variant(draw(12), scale=0.5), content_id="upload-12"))
    assert first["verdict"] == "match" and first["ticket_id"] == again["ticket_id"] != other["ticket_id"]
    assert _ok(scan(service, platform, variant(draw(999)), content_id="clean"))["ticket_id"] is None
    ticket_id = first["ticket_id"]
    notice = _ok(
        service.post_json(
            "/v1/notices",
            {"source": "hotline", "content_id": "upload-13", "explanation": "reported by a hotline analyst"},
            platform,
        )
    )
    assert notice["ticket_id"] == ticket_id and notice["attached"]

    detail = _ok(service.request("GET", f"/v1/tickets/{ticket_id}", key=alice))
    assert detail["state"] == "open" and detail["sightings"] == 2 and detail["notices"] == 1 and detail["source"] == "hash_match"
    assert [e["entry_id"] for e in detail["evidence"]] == ["entry-13", "entry-13"]
    assert {(e["approval_id"], e["approval_reason"]) for e in detail["evidence"]} == {(None, "local_allowance")}
    listing = _ok(service.request("GET", "/v1/tickets?state=open&source=hash_match", key=alice))["tickets"]
    assert {t["id"] for t in listing} == {ticket_id, other["ticket_id"]}
    body = json.dumps(detail) + json.dumps(listing)
    assert all(value not in body for value in listed.values())  # never a list entry's hash

    # A decision needs a claim; a refused move is a 409 and changes nothing.
    refused = service.post_json(f"/v1/tickets/{ticket_id}/decision", {"decision": "actioned", "explanation": "x"}, alice)
    assert refused.status == 409 and refused.json()["error"]["code"] == "invalid_transition"
    claimed = [_ok(service.post_json("/v1/queue/claim", {}, alice))["ticket"]["id"] for _ in range(2)]
    assert set(claimed) == {ticket_id, other["ticket_id"]}
    assert _ok(service.post_json("/v1/queue/claim", {}, bob))["ticket"] is None
    stolen = service.post_json(f"/v1/tickets/{ticket_id}/decision", {"decision": "actioned", "explanation": "x"}, bob)
    assert stolen.status == 409 and stolen.json()["error"]["code"] == "not_lease_holder"
    bad = service.post_json(
        f"/v1/tickets/{ticket_id}/decision", {"decision": "actioned", "action": "explode", "explanation": "x"}, alice
    )
    assert bad.status == 400 and bad.json()["error"]["code"] == "bad_request"
    decided = _ok(
        service.post_json(
            f"/v1/tickets/{ticket_id}/decision",
            {"decision": "actioned", "action": "remove", "explanation": "matches a vetted entry"},
            alice,
        )
    )
    assert decided["state"] == "actioned" and decided["action"] == "remove"
    fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 1, what="the remove action")
    [applied] = fake_platform.snapshot()[1].values()
    assert applied["action"] == "remove" and applied["ticket_id"] == ticket_id and applied["content_id"] == "upload-13"

    statement = _ok(service.request("GET", f"/v1/tickets/{ticket_id}/statement", key=platform))
    assert statement["restriction"]["action"] == "remove"
    assert statement["automated_means"]["detection"] is True and statement["automated_means"]["decision"] is False
    assert statement["facts"]["sources"] == ["hash_match", "hotline"]
    assert "test-list" not in json.dumps(statement)

    # The uploader appeals; the original reviewer cannot decide it, another one does.
    _ok(service.post_json(f"/v1/tickets/{ticket_id}/appeal", {"explanation": "this is not what you think"}, platform))
    assert _ok(service.post_json("/v1/queue/claim", {}, alice))["ticket"] is None
    same = service.post_json(f"/v1/tickets/{ticket_id}/decision", {"decision": "reinstated", "explanation": "x"}, alice)
    assert same.status == 409 and same.json()["error"]["code"] == "same_reviewer"
    assert _ok(service.post_json("/v1/queue/claim", {}, bob))["ticket"]["id"] == ticket_id
    _ok(service.post_json(f"/v1/tickets/{ticket_id}/decision", {"decision": "reinstated", "explanation": "a false match"}, bob))
    fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 2, what="the reinstate action")
    assert [b["action"] for b in fake_platform.snapshot()[1].values()] == ["remove", "reinstate"]
    # The reinstatement says the match was wrong: the list's issuer gets it as feedback per entry.
    feedback = list(csv.DictReader(io.StringIO(cli("hashsets", "feedback", "test-list").stdout)))
    assert [(f["entry_id"], f["wrong_matches"]) for f in feedback] == [("entry-13", "2")]  # both sightings' evidence

    # A list marked auto_action: the next match is actioned by the system at once.
    _ok(
        service.request(
            "PUT",
            "/v1/policies",
            json.dumps({"hashset": "test-list", "auto_action": True}).encode(),
            admin,
            Content_Type="application/json",
        )
    )
    auto = _ok(scan(service, platform, variant(draw(14), scale=0.5), content_id="upload-14"))
    auto_ticket = _ok(service.request("GET", f"/v1/tickets/{auto['ticket_id']}", key=bob))
    assert auto_ticket["state"] == "actioned" and auto_ticket["decisions"][0]["automated_decision"] is True
    fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 3, what="the automated remove action")

    delivered = 'hashguard_webhook_deliveries_total{action="remove",result="delivered"} 2.0'
    # The platform applies an action a moment before hashguard hears its answer and counts it.
    fake_platform.wait_for(lambda: delivered in service.request("GET", "/metrics").body.decode(), what="the delivery count")
    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_tickets_opened_total{source="hash_match"} 3.0' in metrics
    assert 'hashguard_ticket_decisions_total{automated="true",state="actioned"} 1.0' in metrics
    auditor = cli.new_key("auditor")
    audit = _ok(service.request("GET", f"/v1/audit?subject=ticket:{ticket_id}", key=auditor))["entries"]
    assert [e["action"] for e in audit][:3] == ["ticket.opened", "ticket.match_attached", "ticket.notice_attached"]
    settings = _ok(service.request("GET", "/v1/audit?subject=settings", key=auditor))
    assert settings["entries"][0]["after"]["HASHGUARD_WEBHOOK_SECRET"] == "(set)"
    assert settings["entries"][0]["after"]["HASHGUARD_WEBHOOK_URL"] == fake_platform.url
    assert fake_platform.secret not in json.dumps(settings)
    verified = cli("audit", "verify")
    assert "audit chain intact" in verified.stdout
    assert "Traceback" not in service.log()


def test_audit_verify_reports_the_first_broken_link(cli: Cli, migrated_database_url: str) -> None:
    for _ in range(3):
        cli.new_key("reviewer")
    assert "3 entries" in cli("audit", "verify").stdout

    async def tamper() -> None:
        conn = await asyncpg.connect(migrated_database_url)
        try:
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            await conn.execute("UPDATE audit_log SET entry = replace(entry, 'reviewer', 'admin') WHERE seq = 2")
            await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        finally:
            await conn.close()

    asyncio.run(tamper())
    broken = cli("audit", "verify", check=False)
    assert broken.returncode == 1
    assert "BROKEN at entry 2" in broken.stderr and "1 entries before it are intact" in broken.stderr


def test_bad_takedown_input_gets_clear_errors_and_changes_nothing(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    platform, reviewer, admin = cli.new_key(), cli.new_key("reviewer"), cli.new_key("admin")

    def expect(result: Any, status: int, code: str) -> None:
        assert result.status == status, result.body
        assert result.json()["error"]["code"] == code and result.json()["error"]["message"]

    notice = {"source": "user_report", "content_id": "c-1", "explanation": "x"}
    expect(service.post_json("/v1/notices", {**notice, "source": "hash_match"}, platform), 400, "bad_request")
    expect(service.post_json("/v1/notices", {**notice, "source": "gossip"}, platform), 400, "bad_request")
    expect(
        service.post_json("/v1/notices", {k: v for k, v in notice.items() if k != "content_id"}, platform), 400, "missing_field"
    )
    expect(service.post_json("/v1/notices", {**notice, "explanation": "a\u0000b"}, platform), 400, "bad_request")
    expect(service.post_json("/v1/notices", {**notice, "content_id": "x" * 2000}, platform), 400, "bad_request")
    expect(service.post_json("/v1/notices", {**notice, "source": "authority_order"}, platform), 400, "bad_request")
    order = {**notice, "source": "authority_order", "authority": {"name": "eSafety", "reference": "R1", "deadline": "tomorrow"}}
    expect(service.post_json("/v1/notices", order, platform), 400, "bad_request")
    expect(service.post_json("/v1/notices", [notice], platform), 400, "bad_request")
    expect(service.request("POST", "/v1/notices", b"{nope", platform, Content_Type="application/json"), 400, "bad_request")
    expect(
        service.request("POST", "/v1/notices", b"x" * 300_000, platform, Content_Type="application/json"),
        413,
        "payload_too_large",
    )
    # The same mistake gets the same answer in every context: a wrong content type is 415 for notices,
    # lookups and tool approvals alike.
    for path, key in (("/v1/notices", platform), ("/v1/lookup", platform), ("/v1/tools/approvals", admin)):
        expect(service.request("POST", path, b"{}", key, Content_Type="text/plain"), 415, "unsupported_media_type")
    expect(service.request("GET", "/v1/tickets?state=lost", key=reviewer), 400, "bad_request")
    expect(service.request("GET", "/v1/tickets?limit=100000", key=reviewer), 400, "bad_request")
    expect(service.request("GET", "/v1/tickets?content_id=%00", key=reviewer), 400, "bad_request")
    expect(service.request("GET", "/v1/tickets/not-a-uuid", key=reviewer), 404, "ticket_not_found")
    expect(service.request("GET", f"/v1/tickets/{uuid.uuid4()}/statement", key=platform), 404, "ticket_not_found")
    expect(
        service.request("PUT", "/v1/policies", b'{"hashset": "l", "auto_action": "yes"}', admin, Content_Type="application/json"),
        400,
        "bad_request",
    )
    expect(
        service.request(
            "PUT",
            "/v1/policies",
            b'{"hashset": "l", "auto_action": true, "action": "reinstate"}',
            admin,
            Content_Type="application/json",
        ),
        400,
        "bad_request",
    )
    assert service.request("GET", "/v1/tickets", key=reviewer).json()["tickets"] == []  # nothing was opened

    opened = _ok(service.post_json("/v1/notices", notice, platform), 201)
    ticket = opened["ticket_id"]
    assert opened["ticket"]["notices"] == 1 and not opened["attached"]
    expect(service.request("GET", f"/v1/tickets/{ticket}/statement", key=platform), 404, "statement_not_found")
    expect(service.post_json(f"/v1/tickets/{ticket}/appeal", {"explanation": "x"}, platform), 409, "invalid_transition")
    expect(service.post_json(f"/v1/tickets/{ticket}/release", {}, reviewer), 409, "invalid_transition")
    _ok(service.post_json("/v1/queue/claim", {}, reviewer))
    expect(
        service.post_json(f"/v1/tickets/{ticket}/decision", {"decision": "upheld", "explanation": "x"}, reviewer),
        409,
        "invalid_transition",
    )
    expect(service.post_json(f"/v1/tickets/{ticket}/decision", {"decision": "actioned"}, reviewer), 400, "missing_field")
    expect(
        service.post_json(
            f"/v1/tickets/{ticket}/decision", {"decision": "dismissed", "action": "remove", "explanation": "x"}, reviewer
        ),
        400,
        "bad_request",
    )
    assert service.request("GET", f"/v1/tickets/{ticket}", key=reviewer).json()["state"] == "in_review"
    # No Content-Type at all is read as JSON.
    closed = service.request("POST", f"/v1/tickets/{ticket}/close", None, reviewer)
    expect(closed, 409, "invalid_transition")
    assert "Traceback" not in service.log()


def test_the_takedown_commands_and_key_changes_are_audited(cli: Cli) -> None:
    key = cli.new_key("reviewer")
    prefix = key[:11]
    cli("keys", "revoke", prefix)
    out = cli("takedown", "policy", "ncmec-pdq", "--auto-action", "--action", "block")
    assert "auto_action (block)" in out.stdout
    cli("takedown", "policy", "ncmec-pdq", "--review")
    assert cli("takedown", "policies").stdout.splitlines()[1:] == ["ncmec-pdq\t*\tfalse\tremove"]
    assert "purged the evidence of 0 tickets" in cli("takedown", "purge").stdout
    entries = [json.loads(line) for line in cli("audit", "show").stdout.splitlines()]
    assert [(e["action"], e["subject"]) for e in entries] == [
        ("key.created", f"key:{prefix}"),
        ("key.revoked", f"key:{prefix}"),
        ("policy.changed", "policy:ncmec-pdq/*"),
        ("policy.changed", "policy:ncmec-pdq/*"),
    ]
    assert entries[0]["after"] == {"role": "reviewer", "label": ""} and entries[0]["actor"].startswith("cli:")
    assert entries[3]["before"] == {"auto_action": True, "action": "block"}
    assert key not in json.dumps(entries)  # never the key itself
    only = [json.loads(line) for line in cli("audit", "show", "--subject", f"key:{prefix}").stdout.splitlines()]
    assert len(only) == 2
    assert "4 entries" in cli("audit", "verify").stdout
