"""The console's pure parts: exposure rules, the figures' charts and CSV, staff passwords and cookies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from kernel import staff
from takedown.console import charts
from takedown.console.exposure import (
    STEP_FILTERS,
    Allowance,
    ExposureLimitReached,
    ExposureRefused,
    break_due,
    check_reveal,
    preview_url_problem,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_preview_is_revealed_one_step_at_a_time_and_the_first_step_counts() -> None:
    room = Allowance(limit=2, granted=0, used=1)
    assert check_reveal(step=1, shown_before=0, allowance=room, previews_off=False) is True
    assert check_reveal(step=2, shown_before=1, allowance=Allowance(limit=1, granted=0, used=1), previews_off=False) is False
    with pytest.raises(ExposureRefused, match="one step at a time"):
        check_reveal(step=3, shown_before=1, allowance=room, previews_off=False)
    with pytest.raises(ExposureRefused, match="1 to 3"):
        check_reveal(step=4, shown_before=3, allowance=room, previews_off=False)
    with pytest.raises(ExposureRefused, match="turned off"):
        check_reveal(step=1, shown_before=0, allowance=room, previews_off=True)


def test_the_daily_limit_stops_the_next_item_and_a_grant_lifts_it() -> None:
    spent = Allowance(limit=3, granted=0, used=3)
    assert spent.remaining == 0
    with pytest.raises(ExposureLimitReached):
        check_reveal(step=1, shown_before=0, allowance=spent, previews_off=False)
    assert check_reveal(step=1, shown_before=0, allowance=Allowance(limit=3, granted=1, used=3), previews_off=False)
    assert Allowance(limit=0, granted=0, used=5).remaining == 0


def test_break_reminder_after_the_configured_stretch() -> None:
    assert not break_due(NOW - timedelta(minutes=49), NOW, 50)
    assert break_due(NOW - timedelta(minutes=50), NOW, 50)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://cdn.example.org/p/1.jpg", None),
        ("http://127.0.0.1:9000/1.png", None),
        ("http://cdn.example.org/1.jpg", "https"),
        ("https://user:pw@cdn.example.org/1.jpg", "credentials"),
        ("javascript:alert(1)", "https URL with a host"),
        ("data:image/png;base64,AAAA", "https URL with a host"),
        ("https://[::1", "not a URL"),
    ],
)
def test_preview_urls(url: str, problem: str | None) -> None:
    found = preview_url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_stylesheet_draws_each_reveal_step_as_the_rules_say() -> None:
    css = (resources.files("takedown.console") / "static" / "console.css").read_text()
    for step, value in STEP_FILTERS.items():
        assert f".reveal-{step} {{ filter: {value}; }}" in css


REPORT = {
    "period": {"from": "2026-01-01T00:00:00+00:00", "to": "2026-02-01T00:00:00+00:00"},
    "notices_received": {"hash_match": 4, "user_report": 1},
    "actions_taken": {"by_action": {"remove": 3}, "by_source": {}},
    "median_seconds_to_action": {"hash_match": 90.0, "user_report": 7200.5},
    "complaints": {"received": 2, "decided": {"upheld": 1}, "median_seconds_to_decide": {"upheld": None}, "reversals": 0},
    "precision": {"by_tool": {"pdq": 0.995}},  # a figure the report may grow: drawn with no change here
    "tenant": None,
}


def test_every_mapping_of_numbers_becomes_a_section() -> None:
    found = {s.key: s for s in charts.sections(REPORT)}
    assert set(found) == {
        "notices_received",
        "actions_taken.by_action",
        "median_seconds_to_action",
        "complaints.decided",
        "complaints.median_seconds_to_decide",
        "complaints",
        "precision.by_tool",
    }
    assert found["complaints"].rows == (("received", 2), ("reversals", 0))
    assert found["median_seconds_to_action"].shown(7200.5) == "2.0 h"
    assert found["complaints.median_seconds_to_decide"].shown(None) == "—"
    assert found["precision.by_tool"].shown(0.995) == "0.995"


def test_charts_are_well_formed_svg_with_a_title_and_one_bar_per_row() -> None:
    section = next(s for s in charts.sections(REPORT) if s.key == "notices_received")
    svg = ET.fromstring(charts.bar_chart(section))
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.get("role") == "img" and svg.find(f"{ns}title") is not None
    widths = [float(r.get("width", "0")) for r in svg.iter(f"{ns}rect")]
    assert len(widths) == 2 and widths[0] > widths[1] > 0


def test_csv_cells_never_run_as_formulas() -> None:
    section = charts.Section(key="reports_filed", title="Reports filed", rows=(("=HYPERLINK(1)", 1), ("NCMEC", 2)))
    text = charts.csv_text(section, {"from": "a", "to": "b"})
    assert text.splitlines() == ["figure,item,value,from,to", "reports_filed,'=HYPERLINK(1),1,a,b", "reports_filed,NCMEC,2,a,b"]


def test_passwords_are_argon2id_and_checked_in_constant_shape() -> None:
    made = staff.hash_password("a long enough password")
    assert made.startswith("$argon2id$")
    assert staff.verify_password(made, "a long enough password")
    assert not staff.verify_password(made, "a long enough passworD")
    assert not staff.verify_password(None, "anything at all here")  # no account: never, after a real verification
    assert not staff.verify_password("not a hash", "a long enough password")
    with pytest.raises(staff.InvalidAccount, match="at least 12"):
        staff.hash_password("short")


def test_account_names_roles_cookies_and_hosts() -> None:
    assert staff.normalise_email("  Ada@Example.ORG ") == "ada@example.org"
    with pytest.raises(staff.InvalidAccount):
        staff.normalise_email("not an address")
    assert staff.staff_role("lead") is staff.Role.LEAD
    with pytest.raises(staff.InvalidAccount):
        staff.staff_role("platform")
    token = staff.new_token()
    assert staff.parse_cookie_token(token) == token
    assert staff.parse_cookie_token("x" * 101) is None and staff.parse_cookie_token("a b") is None
    assert staff.csrf_matches(token, token) and not staff.csrf_matches(token, None) and not staff.csrf_matches(token, token + "x")
    assert all(staff.is_loopback_host(h) for h in ("127.0.0.1:8080", "localhost", "[::1]:8080", "::1"))
    assert not any(staff.is_loopback_host(h) for h in ("console.example.org", "10.0.0.1:8080", None, ""))
