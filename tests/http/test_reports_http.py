"""Hotline reports through the HTTP API: a scan's match, a reviewer's decision with its report flags,
"hashguard, file it", and the report's progress on the ticket; the evidence streamed from the platform."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from lxml import etree

from detector.synthetic import draw, encode
from tests.harness import make_list
from tests.harness import ok as _ok
from tests.http.inprocess import Cli, Service
from tests.standins.ncmec import PASSWORD, USERNAME, NcmecStandIn, PlatformStandIn
from tests.waiting import wait_until

SECRET = "platform-secret-of-at-least-32-bytes!!"


@pytest.fixture
def hotline() -> Iterator[NcmecStandIn]:
    standin = NcmecStandIn()
    yield standin
    standin.close()


@pytest.fixture
def platform() -> Iterator[PlatformStandIn]:
    standin = PlatformStandIn(SECRET)
    yield standin
    standin.close()


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    hashes = make_list(cli, tmp_path / "pictures")
    cli(
        "hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "test-list", "--tool", "pdq",
        "--allow-unsigned", "--classification", "ncmec",
    )  # fmt: skip
    return hashes


def reporting_env(hotline: NcmecStandIn, **more: str) -> dict[str, str]:
    return {
        "HASHGUARD_NCMEC_URL": hotline.url,
        "HASHGUARD_NCMEC_USERNAME": USERNAME,
        "HASHGUARD_NCMEC_PASSWORD": PASSWORD,
        "HASHGUARD_REPORTER_EMAIL": "safety@example.test",
        "HASHGUARD_NCMEC_BACKOFF_S": "0",
        "HASHGUARD_WEBHOOK_URL": "http://127.0.0.1:9/unused",
        "HASHGUARD_WEBHOOK_SECRET": SECRET,
        **more,
    }


def confirmed(service: Service, cli: Cli, platform: PlatformStandIn, **flags: Any) -> tuple[str, str]:
    """Scan a listed picture served by the platform, claim it and action it; (ticket id, reviewer key)."""
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    body = encode(draw(13))
    platform.files["p13.png"] = body
    url = platform.url("p13.png")
    scanned = _ok(
        service.request(
            "POST",
            f"/v1/scan?content_id=upload-13&content_url={quote(url, safe='')}&uploader_screen_name=sam_u&uploader_port=443",
            body,
            key,
            Content_Type="image/png",
        )
    )
    assert scanned["verdict"] == "match"
    notice = {
        "source": "user_report",
        "content_id": "upload-13",
        "explanation": "seen by a user",
        "uploader": {"account_id": "acct-77", "ip": "203.0.113.9", "port": 50500, "upload_time": "2026-11-01T10:00:00Z"},
    }
    _ok(service.post_json("/v1/notices", notice, key))
    assert _ok(service.post_json("/v1/queue/claim", {}, reviewer))["ticket"]["id"] == scanned["ticket_id"]
    decision = {"decision": "actioned", "explanation": "known material", **flags}
    _ok(service.post_json(f"/v1/tickets/{scanned['ticket_id']}/decision", decision, reviewer))
    return scanned["ticket_id"], reviewer


def test_hashguard_files_the_confirmed_item_once_with_the_evidence_streamed(
    listed: dict[int, str],
    cli: Cli,
    start_service: Callable[..., Service],
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
) -> None:
    service = start_service(**reporting_env(hotline, HASHGUARD_EVIDENCE_HOSTS="127.0.0.1", HASHGUARD_NCMEC_MOU_SIGNED="true"))
    ticket_id, reviewer = confirmed(service, cli, platform, file_viewed=True, escalate="ongoing abuse suspected")
    first = service.post_json(f"/v1/tickets/{ticket_id}/report", {"hotline": "ncmec"}, reviewer)
    assert first.status == 202, first.body
    record = first.json()
    assert record["hotline"] == "ncmec" and record["status"] in ("queued", "submitting", "finished")
    again = service.post_json(f"/v1/tickets/{ticket_id}/report", {"hotline": "ncmec"}, reviewer)
    assert again.status == 202 and again.json()["id"] == record["id"]

    def report() -> dict[str, Any]:
        [only] = _ok(service.request("GET", f"/v1/tickets/{ticket_id}", key=reviewer))["reports"]
        return dict(only)

    wait_until(lambda: report()["status"] == "finished", 60, what="the report being filed")
    done = report()
    [filed] = hotline.finished()
    assert done["hotline_reference"] == str(filed.id) and done["files"] == 1 and done["evidence"] == "file"
    assert done["request_id"] and done["attempts"] == 1
    assert platform.fetches == [("p13.png", True)]
    doc = etree.fromstring(filed.document)
    assert doc.findtext("incidentSummary/escalateToHighPriority") == "ongoing abuse suspected"
    assert doc.findtext("personOrUserReported/espIdentifier") == "acct-77"  # from the notice
    assert doc.findtext("personOrUserReported/screenName") == "sam_u"  # from the scan
    details = etree.fromstring(filed.fileinfos[0])
    assert details.findtext("fileViewedByEsp") == "true"
    assert details.findtext("industryClassification") == "A1"
    assert details.findtext("uploadedToEspTimestamp") == "2026-11-01T10:00:00Z"
    # The ticket is reported; the report's reference is the CyberTipline's.
    assert _ok(service.request("GET", f"/v1/tickets/{ticket_id}", key=reviewer))["state"] == "reported"
    # The NCMEC password is in the settings the audit log records only as set.
    audit = service.request("GET", "/v1/audit?limit=500", key=cli.new_key("auditor")).body.decode()
    assert "HASHGUARD_NCMEC_PASSWORD" in audit and PASSWORD not in audit
    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_report_submissions_total{hotline="ncmec",outcome="finished"} 1.0' in metrics


def test_filing_needs_the_settings_and_the_flags_are_checked(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service], platform: PlatformStandIn
) -> None:
    service = start_service(HASHGUARD_WEBHOOK_URL="http://127.0.0.1:9/unused", HASHGUARD_WEBHOOK_SECRET=SECRET)
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    body = encode(draw(13))
    ticket_id = _ok(service.request("POST", "/v1/scan?content_id=u-1", body, key, Content_Type="image/png"))["ticket_id"]
    _ok(service.post_json("/v1/queue/claim", {}, reviewer))
    path = f"/v1/tickets/{ticket_id}/decision"
    bad = service.post_json(path, {"decision": "actioned", "explanation": "x", "exif_viewed": True}, reviewer)
    assert bad.status == 400 and "file_viewed" in bad.json()["error"]["message"]
    _ok(service.post_json(path, {"decision": "actioned", "explanation": "x"}, reviewer))
    unset = service.post_json(f"/v1/tickets/{ticket_id}/report", {"hotline": "ncmec"}, reviewer)
    assert unset.status == 409 and unset.json()["error"]["code"] == "reporting_not_configured"
    assert "HASHGUARD_NCMEC_URL" in unset.json()["error"]["message"]
    other = service.post_json(f"/v1/tickets/{ticket_id}/report", {"hotline": "iwf"}, reviewer)
    assert other.status == 400 and other.json()["error"]["code"] == "unknown_hotline"
    # With a reference it keeps today's meaning: recorded, filed elsewhere.
    recorded = _ok(service.post_json(f"/v1/tickets/{ticket_id}/report", {"hotline": "NCMEC", "reference": "123"}, reviewer))
    assert recorded["state"] == "reported"
    # The scan may carry the uploader too (query parameters or form fields), checked at the edge.
    scan_bad = service.request("POST", "/v1/scan?content_id=u-2&uploader_ip=999.1.1.1", body, key, Content_Type="image/png")
    assert scan_bad.status == 400 and "uploader_ip" in scan_bad.json()["error"]["message"]
    scan_port = service.request("POST", "/v1/scan?content_id=u-2&uploader_port=70000", body, key, Content_Type="image/png")
    assert scan_port.status == 400
    bad_ip = service.post_json(
        "/v1/notices",
        {"source": "user_report", "content_id": str(uuid.uuid4()), "explanation": "x", "uploader": {"ip": "not-an-ip"}},
        key,
    )
    assert bad_ip.status == 400 and "uploader.ip" in bad_ip.json()["error"]["message"]
