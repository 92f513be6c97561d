"""The console in a real browser (Playwright driving the system's headless Chromium) against a real
``hashguard serve`` on loopback with a staged day of synthetic work: the reviewer's keyboard path,
leases between two reviewers, the exposure limit, the auditor's read-only figures, CSRF, a wrong
password, and axe-core on every page (no serious or critical violation)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import VIEWPORT
from tests.browser.stage import ADMIN, AUDITOR, LEAD, REVIEWER, SECOND, Stage
from tests.console_client import PASSWORD

pytestmark = pytest.mark.slow

_AXE = Axe()


def accessible(page: Page) -> None:
    """axe-core's whole rule set on the page as it stands: no serious or critical violation."""
    found = _AXE.run(page).response["violations"]
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"


def sign_in(page: Page, stage: Stage, email: str, password: str = PASSWORD, *, lands: str | None = "/console/queue") -> None:
    page.goto(stage.url + "/console/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.keyboard.press("Enter")
    if lands is not None:
        expect(page).to_have_url(re.compile(re.escape(lands) + "$"))
        page.wait_for_load_state()  # the page's script (the keyboard) has run


def queue_ids(page: Page) -> list[str]:
    return [str(i) for i in page.locator("tr[data-ticket]").evaluate_all("rows => rows.map(r => r.dataset.ticket)")]


def test_a_reviewer_decides_a_known_hash_match_by_keyboard_without_seeing_it(page: Page, stage: Stage) -> None:
    sign_in(page, stage, REVIEWER)
    expect(page).to_have_url(re.compile(r"/console/queue$"))
    accessible(page)
    top = queue_ids(page)[0]
    assert top in stage.exact  # known-hash matches first
    countdown = page.locator(f"tr[data-ticket='{top}'] .countdown")
    expect(countdown).to_have_text(re.compile(r"^\d+ min \d\d s left$"))  # a known-hash match is due within the hour
    shown = countdown.inner_text()
    expect(countdown).not_to_have_text(shown)  # and it counts down live

    # n: claim the top ticket; a: the action dialog; 1: the standard explanation; Enter: confirm.
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(rf"/console/tickets/{top}$"))
    expect(page.locator("#viewed")).to_contain_text("without viewing")
    expect(page.locator("img")).to_have_count(0)
    accessible(page)
    page.keyboard.press("a")
    expect(page.locator("#dlg-actioned")).to_be_visible()
    accessible(page)
    page.keyboard.press("1")
    expect(page.locator("#act-explanation")).to_have_value(re.compile("^Exact match to a verified known-CSAM entry"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/queue\?done=actioned$"))
    expect(page.get_by_role("status").first).to_contain_text("Ticket actioned")
    assert top not in queue_ids(page)

    detail = stage.api("GET", f"/v1/tickets/{top}", stage.auditor_key)
    assert isinstance(detail, dict)
    assert detail["state"] == "actioned" and detail["action"] == "remove"
    assert detail["decisions"][-1]["explanation"].endswith("decided on the evidence without viewing.")
    assert detail["decisions"][-1]["automated_decision"] is False


def test_a_second_reviewer_cannot_claim_a_held_ticket(browser: Browser, stage: Stage) -> None:
    first = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[arg-type]
    second = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[arg-type]
    sign_in(first, stage, REVIEWER)
    first.keyboard.press("n")
    expect(first).to_have_url(re.compile(r"/console/tickets/"))
    held = first.url.rsplit("/", 1)[1]

    sign_in(second, stage, SECOND)
    row = second.locator(f"tr[data-ticket='{held}']")
    expect(row).to_contain_text(REVIEWER)
    expect(row.locator("input[type=checkbox]")).to_have_count(0)
    second.goto(f"{stage.url}/console/tickets/{held}")
    expect(second.get_by_role("button", name="Claim")).to_have_count(0)
    expect(second.locator(".facts")).to_contain_text(f"{REVIEWER} until")
    # Sent anyway (the form the page would have had): the server refuses it.
    token = second.locator("input[name=csrf]").first.input_value()
    answer = second.request.post(f"{stage.url}/console/tickets/{held}/claim", form={"csrf": token}, max_redirects=0)
    assert answer.status == 409 and "held by" in answer.text()
    # Claiming next gives the second reviewer another ticket.
    second.goto(f"{stage.url}/console/queue")
    second.keyboard.press("n")
    expect(second).to_have_url(re.compile(r"/console/tickets/"))
    assert second.url.rsplit("/", 1)[1] != held
    first.context.close()
    second.context.close()


def test_a_reveal_is_recorded_and_counted_and_the_limit_stops_the_next(page: Page, stage: Stage) -> None:
    sign_in(page, stage, SECOND)
    one, other = stage.previewed
    page.goto(f"{stage.url}/console/tickets/{one}")
    expect(page.locator("img")).to_have_count(0)  # nothing shown until asked
    accessible(page)
    page.get_by_role("button", name=re.compile("Show preview 1")).click()
    image = page.get_by_role("img", name=re.compile("step 1 of 3"))
    expect(image).to_be_visible()
    assert "blur(24px) grayscale(1)" in image.evaluate("img => getComputedStyle(img).filter")
    expect(page.locator("#viewed")).to_contain_text("yes")
    accessible(page)
    page.get_by_role("button", name="Less blur").click()
    expect(page.get_by_role("img", name=re.compile("step 2 of 3"))).to_be_visible()
    revealed = stage.audit("ticket.preview_revealed")
    assert [(e["subject"], e["after"]["step"]) for e in revealed] == [(f"ticket:{one}", 1), (f"ticket:{one}", 2)]  # type: ignore[index]

    page.goto(f"{stage.url}/console/tickets/{other}")
    page.get_by_role("button", name=re.compile("Show preview 1")).click()
    expect(page.get_by_role("alert")).to_contain_text("limit of previews")
    accessible(page)
    assert len(stage.audit("ticket.preview_revealed")) == 2
    page.goto(f"{stage.url}/console/me")
    expect(page.locator("main")).to_contain_text("You have revealed 1 preview today; 0 left of 1")
    accessible(page)


def test_an_auditor_sees_the_charts_and_cannot_act(page: Page, stage: Stage) -> None:
    sign_in(page, stage, AUDITOR)  # auditors read the queue too (GET /v1/tickets)
    page.goto(f"{stage.url}/console/figures")
    expect(page.locator("svg.chart")).not_to_have_count(0)
    assert page.locator("svg.chart").count() >= 4
    expect(page.locator("#fig-reports-filed")).to_contain_text("NCMEC")
    accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download Reports filed as CSV").click()
    assert "figure,item,value" in Path(download.value.path()).read_text()

    page.goto(f"{stage.url}/console/tickets/{stage.near}")
    expect(page.locator("main")).to_contain_text("Detection evidence")
    expect(page.locator(".actions button")).to_have_count(0)
    page.keyboard.press("a")
    expect(page.locator("dialog[open]")).to_have_count(0)
    accessible(page)
    token = page.locator("input[name=csrf]").first.input_value()
    refused = page.request.post(
        f"{stage.url}/console/tickets/{stage.near}/decide",
        form={"csrf": token, "decision": "dismissed", "explanation": "an auditor trying"},
        max_redirects=0,
    )
    assert refused.status == 403 and "forbidden" in refused.text()
    for path in ("/console/admin/tools", "/console/admin/lists"):
        page.goto(stage.url + path)
        expect(page.locator("h1")).to_be_visible()
        accessible(page)


def test_a_form_without_its_csrf_token_and_a_wrong_password_are_refused(page: Page, stage: Stage) -> None:
    before = len(stage.audit("user.sign_in_failed"))
    sign_in(page, stage, LEAD, "not the right password", lands=None)
    expect(page.get_by_role("alert")).to_contain_text("wrong")
    accessible(page)
    failed = stage.audit("user.sign_in_failed")
    assert len(failed) == before + 1 and failed[-1]["subject"] == f"user:{LEAD}"
    assert failed[-1]["after"]["why"] == "wrong_password"  # type: ignore[index]

    sign_in(page, stage, LEAD)
    expect(page).to_have_url(re.compile(r"/console/queue$"))
    page.locator("#claim-next input[name=csrf]").evaluate("input => input.remove()")
    page.get_by_role("button", name=re.compile("Claim next")).click()
    expect(page.get_by_role("alert")).to_contain_text("CSRF token is missing or wrong")
    assert page.locator("[data-code]").get_attribute("data-code") == "csrf_refused"
    page.goto(f"{stage.url}/console/queue?mine=1")
    expect(page.locator("tr[data-ticket]")).to_have_count(0)  # nothing was claimed
    page.goto(f"{stage.url}/console/me")
    accessible(page)


def test_the_admin_pages_are_accessible_and_a_reviewer_is_kept_out(page: Page, stage: Stage) -> None:
    sign_in(page, stage, ADMIN, lands="/console/admin")  # admins have no queue (no ticket reading in the API)
    for path, heading in (
        ("/console/admin", "Users and keys"),
        ("/console/admin/lists", "Hash lists"),
        ("/console/admin/tools", "Tool approvals"),
    ):
        page.goto(stage.url + path)
        expect(page.locator("h1")).to_have_text(heading)
        accessible(page)
    expect(page.locator("main")).to_contain_text("test fixture")  # the tools' local allowances, with their reason
