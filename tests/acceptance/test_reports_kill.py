"""A real ``hashguard serve`` SIGKILLed while filing a CyberTipline report (its ``/finish`` unanswered),
started again: the report is filed exactly once, the dead process's half-filed one retracted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from detector.synthetic import draw, encode
from tests.conftest import Cli, Service
from tests.harness import import_test_list
from tests.harness import ok as _ok
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


@pytest.mark.slow
def test_a_sigkill_mid_report_files_it_exactly_once_after_the_restart(
    cli: Cli, start_service: Callable[..., Service], hotline: NcmecStandIn, platform: PlatformStandIn, tmp_path: Path
) -> None:
    import_test_list(cli, tmp_path / "pictures")
    env = {
        "HASHGUARD_NCMEC_URL": hotline.url,
        "HASHGUARD_NCMEC_USERNAME": USERNAME,
        "HASHGUARD_NCMEC_PASSWORD": PASSWORD,
        "HASHGUARD_REPORTER_EMAIL": "safety@example.test",
        "HASHGUARD_EVIDENCE_HOSTS": "127.0.0.1",
        "HASHGUARD_WEBHOOK_URL": "http://127.0.0.1:9/unused",
        "HASHGUARD_WEBHOOK_SECRET": SECRET,
        "HASHGUARD_NCMEC_BACKOFF_S": "0",
        "HASHGUARD_REPORT_LEASE_S": "3",
    }
    service = start_service(**env)
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    body = encode(draw(13))
    platform.files["p.png"] = body
    url = quote(platform.url("p.png"), safe="")
    ticket = _ok(service.request("POST", f"/v1/scan?content_id=k-1&content_url={url}", body, key, Content_Type="image/png"))[
        "ticket_id"
    ]
    _ok(service.post_json("/v1/queue/claim", {}, reviewer))
    _ok(service.post_json(f"/v1/tickets/{ticket}/decision", {"decision": "actioned", "explanation": "x"}, reviewer))
    hotline.fail("finish", "hang")
    filed = service.post_json(f"/v1/tickets/{ticket}/report", {"hotline": "ncmec"}, reviewer)
    assert filed.status == 202, filed.body
    wait_until(lambda: "finish" in hotline.arrived, 60, what="the job reaching /finish")
    assert service.process is not None
    service.process.kill()  # SIGKILL between /fileinfo and the answer of /finish
    service.process.wait(timeout=30)
    hotline.release()

    again = start_service(**env)

    def report() -> dict[str, Any]:
        [only] = _ok(again.request("GET", f"/v1/tickets/{ticket}", key=reviewer))["reports"]
        return dict(only)

    wait_until(lambda: report()["status"] == "finished", 90, what="the restarted service finishing the report")
    [done] = hotline.finished()
    assert report()["hotline_reference"] == str(done.id) and len(done.files) == 1
    assert hotline.by_status() == {"finished": 1, "retracted": 1}, json.dumps(hotline.by_status())
    assert platform.fetches == [("p.png", True), ("p.png", True)]
