"""Tenants: platform keys belong to one, staff keys may be limited to some, and what a platform's
calls leave behind (evidence, tickets, notices, statements, appeals) stays in its tenant."""

from __future__ import annotations

import asyncio
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
from tests.harness import HttpResult, make_list, scan
from tests.harness import ok as _ok
from tests.http.inprocess import Cli, Service


def _query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _key(cli: Cli, role: str, *scope: str) -> str:
    return cli("keys", "create", "--role", role, *scope).stdout.strip()


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    hashes = make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "test-list", "--tool", "pdq", "--allow-unsigned")
    return hashes


def test_tenants_are_created_listed_and_audited_and_keys_name_theirs(cli: Cli, service_env: dict[str, str]) -> None:
    assert cli("tenants", "list").stdout.split("\t")[0] == "default"
    cli("tenants", "create", "alpha")
    cli("tenants", "create", "beta")
    assert [line.split("\t")[0] for line in cli("tenants", "list").stdout.splitlines()] == ["default", "alpha", "beta"]
    again = cli("tenants", "create", "alpha", check=False)
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = cli("tenants", "create", "Not A Name", check=False)
    assert bad.returncode == 1 and "tenant name" in bad.stderr

    _key(cli, "platform", "--tenant", "alpha")
    _key(cli, "platform")  # no --tenant: the default tenant, as before tenants existed
    _key(cli, "reviewer", "--tenants", "alpha,beta")
    _key(cli, "lead")
    listing = [line.split("\t") for line in cli("keys", "list").stdout.splitlines()]
    assert [(row[1], row[2]) for row in listing] == [
        ("platform", "alpha"),
        ("platform", "default"),
        ("reviewer", "alpha,beta"),
        ("lead", "*"),
    ]
    unknown = cli("keys", "create", "--role", "platform", "--tenant", "gamma", check=False)
    assert unknown.returncode == 1 and "no tenant named gamma" in unknown.stderr
    mixed = cli("keys", "create", "--role", "platform", "--tenants", "alpha", check=False)
    assert mixed.returncode == 1 and "--tenant NAME" in mixed.stderr
    staff_owner = cli("keys", "create", "--role", "reviewer", "--tenant", "alpha", check=False)
    assert staff_owner.returncode == 1 and "--tenants" in staff_owner.stderr

    url = service_env["HASHGUARD_DATABASE_URL"]
    audit = {(r["action"], r["subject"]): r["entry"] for r in _query(url, "SELECT action, subject, entry::text FROM audit_log")}
    assert ("tenant.created", "tenant:alpha") in audit and ("tenant.created", "tenant:beta") in audit
    created = [json.loads(entry)["after"] for (action, _), entry in audit.items() if action == "key.created"]
    assert {"role": "platform", "label": "", "tenant": "alpha"} in created
    assert {"role": "reviewer", "label": "", "tenants": ["alpha", "beta"]} in created


def test_a_scan_records_its_evidence_in_the_key_s_tenant(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service], service_env: dict[str, str]
) -> None:
    cli("tenants", "create", "alpha")
    service = start_service()
    alpha, default = _key(cli, "platform", "--tenant", "alpha"), _key(cli, "platform")
    assert _ok(scan(service, alpha, variant(draw(13), scale=0.5), content_id="upload-13"))["verdict"] == "match"
    assert _ok(scan(service, default, variant(draw(13), scale=0.5), content_id="upload-13"))["verdict"] == "match"
    rows = _query(
        service_env["HASHGUARD_DATABASE_URL"],
        "SELECT t.name FROM scan_matches m JOIN tenants t ON t.id = m.tenant_id WHERE m.content_id = 'upload-13' ORDER BY m.id",
    )
    assert [r["name"] for r in rows] == ["alpha", "default"]


def _error(result: HttpResult, ticket_id: str) -> tuple[int, str, str]:
    """A refusal as (status, code, message with the ticket id blanked): what must not tell tenants apart."""
    error = result.json()["error"]
    return result.status, error["code"], error["message"].replace(ticket_id, "<id>")


# A valid body for each ticket route, so only the ticket's visibility can refuse the request.
TICKET_BODIES: dict[str, Any] = {
    "release": {},
    "decision": {"decision": "actioned", "explanation": "x"},
    "report": {"hotline": "NCMEC", "reference": "CT-1"},
    "close": {},
    "appeal": {"explanation": "x"},
    "legal-hold": {"hold": False},
    "retry-actions": {},
    "previews": {"url": "https://cdn.example.org/preview.jpg"},
}


def test_a_key_of_one_tenant_can_neither_see_nor_touch_another_s_records(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    cli("tenants", "create", "alpha")
    cli("tenants", "create", "beta")
    service = start_service()
    a, b = _key(cli, "platform", "--tenant", "alpha"), _key(cli, "platform", "--tenant", "beta")
    reviewer, lead = _key(cli, "reviewer"), _key(cli, "lead")
    private = "https://alpha.example/private/upload-13"
    first = service.request(
        "POST", f"/v1/scan?content_id=upload-13&content_url={private}", variant(draw(13), scale=0.5), a, Content_Type="image/jpeg"
    )
    ticket = _ok(first)["ticket_id"]
    assert _ok(service.post_json("/v1/queue/claim", {}, reviewer))["ticket"]["id"] == ticket
    _ok(service.post_json(f"/v1/tickets/{ticket}/decision", {"decision": "actioned", "explanation": "known"}, reviewer))
    assert _ok(service.request("GET", f"/v1/tickets/{ticket}/statement", key=a))["restriction"]["action"] == "remove"

    # Finding 4: B filed a notice on A's content id and got A's ticket, with A's private URL, back.
    notice = {"source": "user_report", "content_id": "upload-13", "explanation": "seen on beta"}
    filed = _ok(service.post_json("/v1/notices", notice, b), 201)
    assert filed["ticket_id"] != ticket and not filed["attached"] and filed["ticket"]["state"] == "open"
    assert "alpha.example" not in json.dumps(filed)
    # B's own scan of the same picture under the same content id joins B's ticket, not A's.
    assert _ok(scan(service, b, variant(draw(13), scale=0.6), content_id="upload-13"))["ticket_id"] == filed["ticket_id"]
    # ...and A's next notice still joins A's.
    assert _ok(service.post_json("/v1/notices", notice, a))["ticket_id"] == ticket

    # Every route that takes a ticket id, for every role, with a key that cannot see the ticket:
    # the answer an unknown id gets, to the letter.
    outsiders = {role: _key(cli, role, "--tenants", "beta") for role in ("reviewer", "lead", "admin", "auditor")}
    outsiders["platform"] = b
    unknown = str(uuid.uuid4())
    checked = 0
    for route in hashguard_app.service_routes():
        if "{ticket_id}" not in route.path:
            continue
        for role in route.roles:
            key = outsiders[role.value]
            tail = route.path.rsplit("/", 1)[-1]
            body = TICKET_BODIES.get(tail)
            if tail == "assign":
                body = {"key_prefix": reviewer[:11]}
            payload = None if body is None else json.dumps(body).encode()
            theirs = service.request(
                route.method, route.path.replace("{ticket_id}", ticket), payload, key, Content_Type="application/json"
            )
            absent = service.request(
                route.method, route.path.replace("{ticket_id}", unknown), payload, key, Content_Type="application/json"
            )
            where = f"{route.method} {route.path} as {role}: {theirs.body[:200]!r}"
            assert _error(theirs, ticket) == _error(absent, unknown) == (404, "ticket_not_found", "no ticket has the id <id>"), (
                where
            )
            checked += 1
    assert checked >= 15
    detail = _ok(service.request("GET", f"/v1/tickets/{ticket}", key=lead))
    assert (
        detail["state"] == "actioned" and detail["content_url"] == private and detail["notices"] == 1
    )  # nothing B sent touched it

    # A staff key limited to beta lists and claims only beta's tickets.
    listing = _ok(service.request("GET", "/v1/tickets", key=outsiders["reviewer"]))["tickets"]
    assert [t["id"] for t in listing] == [filed["ticket_id"]]
    assert _ok(service.request("GET", "/v1/tickets?content_id=upload-13", key=outsiders["auditor"]))["tickets"] == listing
    assert {t["id"] for t in _ok(service.request("GET", "/v1/tickets?content_id=upload-13", key=lead))["tickets"]} == {
        ticket,
        filed["ticket_id"],
    }
    # A key limited to beta cannot be handed an alpha ticket either.
    handed = service.post_json(f"/v1/tickets/{ticket}/assign", {"key_prefix": outsiders["reviewer"][:11]}, lead)
    assert handed.status == 400 and handed.json()["error"]["code"] == "unknown_key"
    assert _ok(service.post_json("/v1/queue/claim", {}, outsiders["reviewer"]))["ticket"]["id"] == filed["ticket_id"]
    assert _ok(service.post_json("/v1/queue/claim", {}, outsiders["lead"]))["ticket"] is None  # alpha's are not offered

    # Transparency: overall, per tenant, and a tenant out of reach is answered as one that does not exist.
    auditor = _key(cli, "auditor")
    overall = _ok(service.request("GET", "/v1/transparency", key=auditor))
    alpha = _ok(service.request("GET", "/v1/transparency?tenant=alpha", key=auditor))
    beta = _ok(service.request("GET", "/v1/transparency?tenant=beta", key=auditor))
    assert overall["tenant"] is None and alpha["tenant"] == "alpha"
    assert alpha["actions_taken"]["by_action"] == {"remove": 1} and beta["actions_taken"]["by_action"] == {}
    assert alpha["notices_received"] == {"hash_match": 1, "user_report": 1}
    assert beta["notices_received"] == {"hash_match": 0, "user_report": 1}  # B's scan joined B's notice ticket
    assert overall["notices_received"] == {"hash_match": 1, "user_report": 2}
    assert (
        _ok(service.request("GET", "/v1/transparency", key=outsiders["auditor"]))["notices_received"] == beta["notices_received"]
    )
    # The audit log, read by a key limited to beta: beta's ticket entries only; paging by next_after reaches them all.
    everything = _ok(service.request("GET", "/v1/audit?limit=500", key=auditor))
    assert {e["subject"] for e in everything["entries"]} >= {f"ticket:{ticket}", f"ticket:{filed['ticket_id']}"}
    seen, after = [], 0
    while True:
        page = _ok(service.request("GET", f"/v1/audit?limit=2&after={after}", key=outsiders["auditor"]))
        seen += page["entries"]
        if page["next_after"] == after:
            break
        after = page["next_after"]
    assert seen and {e["subject"] for e in seen} == {f"ticket:{filed['ticket_id']}"}
    assert [e["seq"] for e in seen] == [e["seq"] for e in everything["entries"] if e["subject"] == f"ticket:{filed['ticket_id']}"]
    assert _ok(service.request("GET", f"/v1/audit?subject=ticket:{ticket}", key=outsiders["auditor"]))["entries"] == []
    for name in ("alpha", "nosuch"):
        refused = service.request("GET", f"/v1/transparency?tenant={name}", key=outsiders["lead"])
        assert (refused.status, refused.json()["error"]) == (
            404,
            {"code": "tenant_not_found", "message": f"no tenant is named {name!r}"},
        )
    # A's own key still does all it did: its uploader's appeal goes through.
    assert _ok(service.post_json(f"/v1/tickets/{ticket}/appeal", {"explanation": "mine"}, a))["state"] == "appealed"
    assert "Traceback" not in service.log()


def test_a_single_tenant_install_behaves_as_before(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service], fake_platform: FakePlatform
) -> None:
    # No tenant is ever named: keys, tickets and the global webhook work as they did before tenants.
    service = start_service(
        HASHGUARD_WEBHOOK_URL=fake_platform.url,
        HASHGUARD_WEBHOOK_SECRET=fake_platform.secret,
        HASHGUARD_OUTBOX_POLL_S="0.1",
    )
    uploads, reports, reviewer = cli.new_key(), cli.new_key(), cli.new_key("reviewer")
    matched = _ok(scan(service, uploads, variant(draw(13), scale=0.5), content_id="upload-13"))
    # Two keys of the one platform share its content ids, as before: the notice joins the match's ticket.
    notice = {"source": "hotline", "content_id": "upload-13", "explanation": "x"}
    assert _ok(service.post_json("/v1/notices", notice, reports))["ticket_id"] == matched["ticket_id"]
    assert _ok(service.post_json("/v1/queue/claim", {}, reviewer))["ticket"]["id"] == matched["ticket_id"]
    _ok(service.post_json(f"/v1/tickets/{matched['ticket_id']}/decision", {"decision": "actioned", "explanation": "x"}, reviewer))
    fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 1, what="the remove action, through the global webhook")
    assert _ok(service.request("GET", f"/v1/tickets/{matched['ticket_id']}/statement", key=reports))["restriction"]
    assert (
        _ok(service.request("GET", "/v1/transparency?tenant=default", key=cli.new_key("auditor")))["actions_taken"]
        == (_ok(service.request("GET", "/v1/transparency", key=cli.new_key("auditor")))["actions_taken"])
    )


def test_each_tenant_s_actions_go_to_its_own_webhook(
    cli: Cli, start_service: Callable[..., Service], fake_platform: FakePlatform, service_env: dict[str, str]
) -> None:
    cli("tenants", "create", "alpha")
    cli("tenants", "create", "beta")
    alpha_secret = "alpha-webhook-secret-0123456789abcdef"
    alpha_platform = FakePlatform(secret=alpha_secret)
    try:
        refused = cli("tenants", "webhook", "alpha", "http://alpha.example/hook", input=alpha_secret + "\n", check=False)
        assert refused.returncode == 1 and "https" in refused.stderr
        short = cli("tenants", "webhook", "alpha", alpha_platform.url, input="short\n", check=False)
        assert short.returncode == 1 and "its secret must be at least 32 bytes" in short.stderr
        cli("tenants", "webhook", "alpha", alpha_platform.url, input=alpha_secret + "\n")
        listing = {line.split("\t")[0]: line.split("\t")[2] for line in cli("tenants", "list").stdout.splitlines()}
        assert listing == {"default": "(HASHGUARD_WEBHOOK_URL)", "alpha": alpha_platform.url, "beta": "(no webhook)"}
        service = start_service(
            HASHGUARD_WEBHOOK_URL=fake_platform.url,
            HASHGUARD_WEBHOOK_SECRET=fake_platform.secret,
            HASHGUARD_OUTBOX_POLL_S="0.1",
        )
        lead = _key(cli, "lead")
        keys = {"default": _key(cli, "platform"), "alpha": _key(cli, "platform", "--tenant", "alpha")}
        keys["beta"] = _key(cli, "platform", "--tenant", "beta")
        tickets = {}
        for tenant, key in keys.items():
            notice = {"source": "user_report", "content_id": "same-name", "explanation": "x"}
            tickets[tenant] = _ok(service.post_json("/v1/notices", notice, key), 201)["ticket_id"]
            assert _ok(service.post_json("/v1/queue/claim", {}, lead))["ticket"]["id"] == tickets[tenant]
            _ok(service.post_json(f"/v1/tickets/{tickets[tenant]}/decision", {"decision": "actioned", "explanation": "x"}, lead))
        fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 1, what="the default tenant's action")
        alpha_platform.wait_for(lambda: len(alpha_platform.snapshot()[1]) == 1, what="alpha's action, signed with its secret")
        assert [b["ticket_id"] for b in fake_platform.snapshot()[1].values()] == [tickets["default"]]
        assert [b["ticket_id"] for b in alpha_platform.snapshot()[1].values()] == [tickets["alpha"]]
        # beta has no webhook: its action waits in the outbox, unattempted, until it gets one.
        pending = _query(
            service_env["HASHGUARD_DATABASE_URL"],
            "SELECT state::text AS state, attempts FROM takedown_outbox WHERE ticket_id = $1",
            uuid.UUID(tickets["beta"]),
        )
        assert [(r["state"], r["attempts"]) for r in pending] == [("pending", 0)]
        audit = _query(
            service_env["HASHGUARD_DATABASE_URL"],
            "SELECT entry::text AS entry FROM audit_log WHERE action = 'tenant.webhook_set'",
        )
        assert len(audit) == 1 and alpha_secret not in audit[0]["entry"]
    finally:
        alpha_platform.close()


def test_close_and_report_need_the_ticket_s_lease(cli: Cli, start_service: Callable[..., Service]) -> None:
    # Finding 11: a second reviewer closed another's ticket and recorded a report on one it never held.
    service = start_service()
    platform, alice, bob, lead = cli.new_key(), cli.new_key("reviewer"), cli.new_key("reviewer"), cli.new_key("lead")

    def ticket(content_id: str, decision: str) -> str:
        filed = _ok(
            service.post_json("/v1/notices", {"source": "user_report", "content_id": content_id, "explanation": "x"}, platform),
            201,
        )
        assert _ok(service.post_json("/v1/queue/claim", {}, alice))["ticket"]["id"] == filed["ticket_id"]
        _ok(service.post_json(f"/v1/tickets/{filed['ticket_id']}/decision", {"decision": decision, "explanation": "x"}, alice))
        return str(filed["ticket_id"])

    def refused(result: HttpResult) -> None:
        assert result.status == 409 and result.json()["error"]["code"] == "not_lease_holder", result.body

    actioned = ticket("c-actioned", "actioned")
    refused(service.post_json(f"/v1/tickets/{actioned}/report", {"hotline": "NCMEC", "reference": "CT-1"}, bob))
    assert _ok(service.request("GET", f"/v1/tickets/{actioned}", key=bob))["decisions"][-1]["to"] == "actioned"  # unchanged
    assert (
        _ok(service.post_json(f"/v1/tickets/{actioned}/report", {"hotline": "NCMEC", "reference": "CT-1"}, alice))["state"]
        == "reported"
    )

    dismissed = ticket("c-dismissed", "dismissed")
    refused(service.post_json(f"/v1/tickets/{dismissed}/close", {}, bob))
    assert _ok(service.request("GET", f"/v1/tickets/{dismissed}", key=bob))["state"] == "dismissed"
    assert _ok(service.post_json(f"/v1/tickets/{dismissed}/close", {}, alice))["state"] == "closed"

    # A lead may act on any ticket, as with decisions; or hand a decided one to another reviewer.
    other = ticket("c-other", "actioned")
    _ok(service.post_json(f"/v1/tickets/{other}/assign", {"key_prefix": bob[:11]}, lead))
    refused(service.post_json(f"/v1/tickets/{other}/report", {"hotline": "NCMEC", "reference": "CT-1"}, alice))  # no longer hers
    assert (
        _ok(service.post_json(f"/v1/tickets/{other}/report", {"hotline": "NCMEC", "reference": "CT-1"}, bob))["state"]
        == "reported"
    )
    third = ticket("c-third", "dismissed")
    assert _ok(service.post_json(f"/v1/tickets/{third}/close", {}, lead))["state"] == "closed"
    assert "Traceback" not in service.log()
