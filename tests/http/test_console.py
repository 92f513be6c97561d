"""The console over HTTP (the app in this process, over loopback): sign-in, sessions and their
timeouts, CSRF, lockout, the API's roles on every console action, tenant limits, and the exposure
limit on previews. The same flows in a real browser: tests/browser/."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from detector.synthetic import draw, encode
from tests.console_client import PASSWORD, Person, make_user, notice
from tests.harness import make_list, ok, scan
from tests.http.inprocess import Cli, Service


def _sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _audit(url: str, action: str) -> list[dict[str, Any]]:
    return [json.loads(r["entry"]) for r in _sql(url, "SELECT entry FROM audit_log WHERE action = $1 ORDER BY seq", action)]


def test_sign_in_session_cookie_csrf_sign_out_and_timeouts(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    url = service.env["HASHGUARD_DATABASE_URL"]
    make_user(cli, "rita@example.org", "reviewer")
    rita = Person(service.url)

    assert rita.get("/console/queue").location.startswith("/console/login")
    wrong = rita.sign_in("rita@example.org", "not the password at all")
    assert wrong.status == 401 and "wrong" in wrong.text
    assert [e["after"]["why"] for e in _audit(url, "user.sign_in_failed")] == ["wrong_password"]
    assert rita.sign_in("nobody@example.org").status == 401
    assert _audit(url, "user.sign_in_failed")[-1]["after"]["why"] == "unknown"

    signed = rita.sign_in("RITA@example.org ")
    assert signed.status == 303 and signed.location == "/console/"
    assert rita.get("/console/").location == "/console/queue"  # a reviewer's home
    cookie = next(c for c in signed.cookies() if c.startswith("hg_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # loopback: no TLS to require
    assert [e["actor"] for e in _audit(url, "user.signed_in")] == ["rita@example.org"]
    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_console_sign_ins_total{outcome="wrong_password"} 1.0' in metrics
    assert 'hashguard_console_sign_ins_total{outcome="unknown"} 1.0' in metrics
    assert 'hashguard_console_sign_ins_total{outcome="ok"} 1.0' in metrics
    queue = rita.get("/console/queue")
    assert queue.status == 200 and "Claim next" in queue.text
    assert queue.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert queue.headers["X-Frame-Options"] == "DENY"

    # A form without its token, with another one, or from another site is refused and changes nothing.
    assert rita.post("/console/claim-next", {}, csrf=False).status == 403
    assert rita.post("/console/claim-next", {"csrf": "forged"}, csrf=False).status == 403
    assert rita.post("/console/claim-next", {}, Origin="https://evil.example").status == 403
    assert rita.post("/console/claim-next", {}).status == 303  # the real token: the queue is empty, back to it

    # Idle past HASHGUARD_CONSOLE_IDLE_MIN: the session is over.
    _sql(url, "UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'")
    assert rita.get("/console/queue").location.startswith("/console/login")
    rita.sign_in("rita@example.org")
    # Past its absolute end, however active.
    _sql(url, "UPDATE staff_sessions SET expires_at = now() - interval '1 second' WHERE revoked_at IS NULL")
    assert rita.get("/console/queue").location.startswith("/console/login")
    rita.sign_in("rita@example.org")
    assert rita.get("/console/queue").status == 200
    assert rita.post("/console/logout", {}).status == 303
    assert rita.get("/console/queue").location.startswith("/console/login")
    assert len(_audit(url, "user.signed_out")) == 1

    # Outside loopback the console's cookies are Secure (so this plain-http client cannot even send them back).
    remote = Person(service.url).get("/console/login", Host="console.example.org")
    assert remote.cookies() and all("Secure" in c for c in remote.cookies())

    # A disabled account's sessions end at once; a reset password ends them too.
    rita.sign_in("rita@example.org")
    cli("users", "disable", "rita@example.org")
    assert rita.get("/console/queue").location.startswith("/console/login")
    assert rita.sign_in("rita@example.org").status == 401
    assert "rita@example.org\treviewer\t*\tdisabled" in cli("users", "list").stdout


def test_lockout_after_repeated_failures_refuses_even_the_right_password(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service(HASHGUARD_CONSOLE_LOCKOUT_FAILURES="3")
    url = service.env["HASHGUARD_DATABASE_URL"]
    make_user(cli, "lee@example.org", "lead")
    lee = Person(service.url)
    for _ in range(3):
        assert lee.sign_in("lee@example.org", "guessing-wrong-1234").status == 401
    locked = lee.sign_in("lee@example.org")
    assert locked.status == 401 and "locked" in locked.text
    assert len(_audit(url, "user.locked")) == 1
    assert [e["after"]["why"] for e in _audit(url, "user.sign_in_failed")] == ["wrong_password"] * 3 + ["locked"]
    # An admin's password reset lifts the lock.
    cli("users", "reset-password", "lee@example.org", input="a brand new password\n")
    assert lee.sign_in("lee@example.org", "a brand new password").status == 303
    assert _audit(url, "user.password_reset")[0]["actor"].startswith("cli:")


def test_each_console_action_takes_the_roles_of_its_api_route(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    platform = cli.new_key()
    ticket = notice(service, platform, "item-roles")
    people: dict[str, Person] = {}
    for role in ("reviewer", "lead", "admin", "auditor"):
        make_user(cli, f"{role}@example.org", role)
        people[role] = Person(service.url)
        assert people[role].sign_in(f"{role}@example.org").status == 303
    auditor, admin, reviewer = people["auditor"], people["admin"], people["reviewer"]

    # Auditors read the queue, the ticket and the figures, and find no button to change anything...
    page = auditor.get(f"/console/tickets/{ticket}")
    assert page.status == 200 and "data-open=" not in page.text and f"/console/tickets/{ticket}/" not in page.text
    assert "Claim next" not in auditor.get("/console/queue").text
    assert auditor.get("/console/figures").status == 200
    # ...and the server refuses them anyway, with a valid token.
    for path in ("/console/claim-next", f"/console/tickets/{ticket}/claim", f"/console/tickets/{ticket}/escalate"):
        assert auditor.post(path, {"explanation": "x"}).status == 403, path
    assert auditor.post(f"/console/tickets/{ticket}/decide", {"decision": "dismissed", "explanation": "x"}).status == 403
    # Admins (no ticket reading in the API) get no queue; reviewers no user administration.
    assert admin.get("/console/queue").status == 403
    assert admin.get("/console/admin").status == 200
    assert reviewer.get("/console/admin").status == 403
    assert reviewer.get("/console/figures").status == 403
    assert (
        reviewer.post(
            "/console/admin/users", {"do": "create", "email": "x@example.org", "role": "admin", "password": PASSWORD}
        ).status
        == 403
    )
    assert reviewer.post("/console/exposure", {"email": "reviewer@example.org", "extra": "5", "reason": "x"}).status == 403
    # The reviewer claims it; another reviewer cannot take it while it is held.
    assert reviewer.post(f"/console/tickets/{ticket}/claim", {}).status == 303
    make_user(cli, "second@example.org", "reviewer")
    second = Person(service.url)
    second.sign_in("second@example.org")
    second.get(f"/console/tickets/{ticket}")
    refused = second.post(f"/console/tickets/{ticket}/claim", {})
    assert refused.status == 409 and "held by" in refused.text
    # Without an explanation a decision is refused; with one it goes through the API's rules.
    assert reviewer.post(f"/console/tickets/{ticket}/decide", {"decision": "dismissed"}).status == 400
    done = reviewer.post(f"/console/tickets/{ticket}/decide", {"decision": "dismissed", "explanation": "not illegal"})
    assert done.status == 303 and done.location == "/console/queue?done=dismissed"
    detail = service.request("GET", f"/v1/tickets/{ticket}", key=cli.new_key("auditor")).json()
    assert detail["state"] == "dismissed" and detail["decisions"][0]["explanation"] == "not illegal"
    # Admins create accounts in the console (audited under their own name).
    assert (
        admin.post(
            "/console/admin/users", {"do": "create", "email": "new@example.org", "role": "auditor", "password": PASSWORD}
        ).status
        == 303
    )
    entry = _audit(service.env["HASHGUARD_DATABASE_URL"], "user.created")[-1]
    assert entry["subject"] == "user:new@example.org" and entry["actor"] == "admin@example.org"


def test_tenant_limited_staff_see_only_their_tenants(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    cli("tenants", "create", "other")
    mine = notice(service, cli.new_key(), "item-default")
    theirs = notice(service, cli("keys", "create", "--role", "platform", "--tenant", "other").stdout.strip(), "item-other")
    make_user(cli, "limited@example.org", "reviewer", "--tenants", "other")
    person = Person(service.url)
    person.sign_in("limited@example.org")
    assert person.get(f"/console/tickets/{theirs}").status == 200
    hidden = person.get(f"/console/tickets/{mine}")
    assert hidden.status == 404 and "ticket_not_found" in hidden.text
    queue = person.get("/console/queue?state=all").text
    assert theirs[:8] in queue and mine[:8] not in queue


def test_previews_are_revealed_step_by_step_recorded_and_limited(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service(HASHGUARD_EXPOSURE_LIMIT="1")
    url = service.env["HASHGUARD_DATABASE_URL"]
    platform = cli.new_key()
    first, second = notice(service, platform, "item-a"), notice(service, platform, "item-b")
    for ticket in (first, second):
        made = service.post_json(f"/v1/tickets/{ticket}/previews", {"url": "https://cdn.example.org/preview.jpg"}, platform)
        assert made.status == 201, made.body
    assert service.post_json(f"/v1/tickets/{first}/previews", {"url": "http://cdn.example.org/x.jpg"}, platform).status == 400
    make_user(cli, "vera@example.org", "reviewer")
    make_user(cli, "lena@example.org", "lead")
    vera = Person(service.url)
    vera.sign_in("vera@example.org")

    page = vera.get(f"/console/tickets/{first}")
    assert "<img" not in page.text and "Show preview 1" in page.text  # nothing shown until asked
    preview = _sql(url, "SELECT id FROM ticket_previews WHERE ticket_id = $1", uuid.UUID(first))[0]["id"]
    assert (
        vera.post(f"/console/tickets/{first}/reveal", {"preview": str(preview), "step": "2"}).status == 403
    )  # one step at a time
    assert vera.post(f"/console/tickets/{first}/reveal", {"preview": str(preview), "step": "1"}).status == 303
    shown = vera.get(f"/console/tickets/{first}").text
    assert 'class="reveal-1"' in shown and "file viewed" in shown.lower() and "yes: a preview was revealed" in shown
    assert (
        vera.post(f"/console/tickets/{first}/reveal", {"preview": str(preview), "step": "2"}).status == 303
    )  # same item: no new count
    rows = _sql(url, "SELECT step FROM console_reveals ORDER BY id")
    assert [r["step"] for r in rows] == [1, 2]
    assert [e["after"]["step"] for e in _audit(url, "ticket.preview_revealed")] == [1, 2]

    # The limit stops the next item; a lead's grant (recorded) lets one more through.
    other = _sql(url, "SELECT id FROM ticket_previews WHERE ticket_id = $1", uuid.UUID(second))[0]["id"]
    vera.get(f"/console/tickets/{second}")
    refused = vera.post(f"/console/tickets/{second}/reveal", {"preview": str(other), "step": "1"})
    assert refused.status == 403 and "exposure_limit_reached" in refused.text
    lena = Person(service.url)
    lena.sign_in("lena@example.org")
    lena.get("/console/me")
    assert (
        lena.post("/console/exposure", {"email": "vera@example.org", "extra": "1", "reason": "second look needed"}).status == 303
    )
    assert _audit(url, "exposure.limit_raised")[0]["after"]["reason"] == "second look needed"
    assert vera.post(f"/console/tickets/{second}/reveal", {"preview": str(other), "step": "1"}).status == 303

    # Previews off: nothing is offered, and the server refuses a reveal.
    vera.get("/console/me")
    vera.post("/console/me", {"previews_off": "1"})
    assert "turned off" in vera.get(f"/console/tickets/{first}").text
    assert vera.post(f"/console/tickets/{first}/reveal", {"preview": str(preview), "step": "3"}).status == 403


def test_bulk_action_takes_only_exact_known_hash_matches(cli: Cli, start_service: Callable[..., Service], tmp_path: Path) -> None:
    service = start_service()
    make_list(cli, tmp_path / "exact", tool="sha256")
    cli("hashsets", "import", str(tmp_path / "exact" / "list.csv"), "--name", "exact", "--tool", "sha256", "--allow-unsigned")
    platform, auditor = cli.new_key(), cli.new_key("auditor")
    exact = [
        str(ok(scan(service, platform, encode(draw(s)), content_id=f"u-{s}", ctype="image/png"))["ticket_id"]) for s in (11, 12)
    ]
    other = notice(service, platform, "n-1")
    make_user(cli, "bulk@example.org", "reviewer")
    person = Person(service.url)
    person.sign_in("bulk@example.org")
    queue = person.get("/console/queue").text
    assert all(f'name="ticket" value="{t}"' in queue for t in exact) and f'name="ticket" value="{other}"' not in queue

    mixed = person.post("/console/bulk", [("ticket", exact[0]), ("ticket", other), ("action", "block"), ("explanation", "exact")])
    assert mixed.status == 400 and "not an undecided exact known-hash match" in mixed.text
    assert {ok(service.request("GET", f"/v1/tickets/{t}", key=auditor))["state"] for t in [*exact, other]} == {"open"}

    done = person.post(
        "/console/bulk", [*[("ticket", t) for t in exact], ("action", "block"), ("reason", "Exact match; not viewed.")]
    )
    assert done.status == 303 and done.location == "/console/queue?done=bulk&n=2"
    for ticket in exact:
        detail = ok(service.request("GET", f"/v1/tickets/{ticket}", key=auditor))
        assert detail["state"] == "actioned" and detail["action"] == "block"
        assert detail["decisions"][-1]["explanation"] == "Exact match; not viewed."
    assert ok(service.request("GET", f"/v1/tickets/{other}", key=auditor))["state"] == "open"


def test_leads_reassign_hold_and_take_escalations_and_admins_change_lists(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = start_service()
    url = service.env["HASHGUARD_DATABASE_URL"]
    platform, auditor = cli.new_key(), cli.new_key("auditor")
    ticket = notice(service, platform, "item-lead", source="trusted_flagger")
    for email, role in (
        ("r1@example.org", "reviewer"),
        ("r2@example.org", "reviewer"),
        ("boss@example.org", "lead"),
        ("root@example.org", "admin"),
    ):
        make_user(cli, email, role)
    r1, boss, root = Person(service.url), Person(service.url), Person(service.url)
    r1.sign_in("r1@example.org")
    boss.sign_in("boss@example.org")
    root.sign_in("root@example.org")

    # A reviewer escalates the ticket: it goes back to the queue, flagged, with the reason on record.
    r1.get(f"/console/tickets/{ticket}")
    assert r1.post(f"/console/tickets/{ticket}/claim", {}).status == 303
    assert r1.post(f"/console/tickets/{ticket}/escalate", {"explanation": "unclear: needs a lead"}).status == 303
    flagged = boss.get("/console/queue?escalated=1").text
    assert ticket[:8] in flagged and "escalated" in flagged
    assert _audit(url, "ticket.escalated")[0]["after"]["reason"] == "unclear: needs a lead"
    assert ok(service.request("GET", f"/v1/tickets/{ticket}", key=auditor))["lease"] is None

    # The lead hands it to the second reviewer and places a legal hold.
    page = boss.get(f"/console/tickets/{ticket}").text
    r2_prefix = _sql(
        url, "SELECT k.key_prefix FROM staff_users u JOIN api_keys k ON k.id = u.key_id WHERE u.email = 'r2@example.org'"
    )[0][0]
    assert f'value="{r2_prefix}"' in page
    assert boss.post(f"/console/tickets/{ticket}/assign", {"key_prefix": r2_prefix}).status == 303
    assert boss.post(f"/console/tickets/{ticket}/hold", {"hold": "1"}).status == 400  # a hold needs its reason
    assert boss.post(f"/console/tickets/{ticket}/hold", {"hold": "1", "reason": "police request"}).status == 303
    detail = ok(service.request("GET", f"/v1/tickets/{ticket}", key=auditor))
    assert detail["lease"]["holder"] == r2_prefix and detail["legal_hold"] is True
    assert "r2@example.org" in boss.get("/console/queue").text  # who holds it, by name

    # An admin sets a list's status (the lists' own audited change, under the admin's name).
    make_list(cli, tmp_path / "l", tool="sha256")
    cli("hashsets", "import", str(tmp_path / "l" / "list.csv"), "--name", "some-list", "--tool", "sha256", "--allow-unsigned")
    assert "some-list" in root.get("/console/admin/lists").text
    assert root.post("/console/admin/lists", {"list": "some-list", "status": "shadow", "reason": "trial"}).status == 303
    changed = _audit(url, "hashset.status")[-1]
    assert changed["actor"] == "root@example.org" and changed["after"]["to"] == "shadow"
    assert r1.post("/console/admin/lists", {"list": "some-list", "status": "active", "reason": "x"}).status == 403

    # The break reminder after a stretch of continuous review; a pause of ten minutes starts a new one.
    _sql(url, "UPDATE staff_sessions SET stretch_started_at = now() - interval '51 minutes'")
    assert "Consider a short break" in r1.get("/console/queue").text
    _sql(url, "UPDATE staff_sessions SET last_seen_at = now() - interval '11 minutes'")
    assert "Consider a short break" not in r1.get("/console/queue").text


def test_an_appeal_is_decided_by_another_reviewer_in_the_console(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    platform, auditor = cli.new_key(), cli.new_key("auditor")
    ticket = notice(service, platform, "item-appeal", source="trusted_flagger")
    make_user(cli, "first@example.org", "reviewer")
    make_user(cli, "other@example.org", "reviewer")
    first, other = Person(service.url), Person(service.url)
    first.sign_in("first@example.org")
    other.sign_in("other@example.org")
    first.get(f"/console/tickets/{ticket}")
    first.post(f"/console/tickets/{ticket}/claim", {})
    page = first.get(f"/console/tickets/{ticket}").text
    assert 'data-open="dlg-actioned"' in page and 'data-open="dlg-dismissed"' in page
    assert (
        first.post(
            f"/console/tickets/{ticket}/decide", {"decision": "actioned", "action": "restrict", "explanation": "flagged"}
        ).status
        == 303
    )
    # The one who actioned it holds it for the hotline report, recorded with its reference.
    first.get(f"/console/tickets/{ticket}")
    assert first.post(f"/console/tickets/{ticket}/report", {"hotline": "NCMEC", "reference": "SYN-42"}).status == 303
    assert (
        ok(service.post_json(f"/v1/tickets/{ticket}/appeal", {"explanation": "it is my own photo"}, platform))["state"]
        == "appealed"
    )

    # Not the reviewer who made the decision: refused. Another reviewer claims it and upholds it.
    first.get(f"/console/tickets/{ticket}")
    assert first.post(f"/console/tickets/{ticket}/claim", {}).status == 409
    other.get(f"/console/tickets/{ticket}")
    assert other.post(f"/console/tickets/{ticket}/claim", {}).status == 303
    assert 'data-open="dlg-appeal"' in other.get(f"/console/tickets/{ticket}").text
    assert (
        other.post(f"/console/tickets/{ticket}/decide", {"decision": "upheld", "reason": "The appeal gives no reason."}).status
        == 303
    )
    detail = ok(service.request("GET", f"/v1/tickets/{ticket}", key=auditor))
    assert detail["state"] == "upheld" and detail["action"] == "restrict"
    assert [d["to"] for d in detail["decisions"]] == ["actioned", "reported", "appealed", "upheld"]
    assert detail["decisions"][1]["report_reference"] == "SYN-42"
