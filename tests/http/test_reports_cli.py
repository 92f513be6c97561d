"""``hashguard reports``: file from the command line, follow, retry, and export every recipient's document."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from detector.synthetic import draw, encode
from takedown.reports import ncmec, recipients
from tests.harness import make_list
from tests.harness import ok as _ok
from tests.http.inprocess import Cli, Service
from tests.standins.ncmec import PASSWORD, USERNAME, NcmecStandIn


@pytest.fixture
def hotline() -> Iterator[NcmecStandIn]:
    standin = NcmecStandIn()
    yield standin
    standin.close()


def test_file_follow_retry_and_export_from_the_command_line(
    cli: Cli, start_service: Callable[..., Service], hotline: NcmecStandIn, tmp_path: Path
) -> None:
    make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "test-list", "--tool", "pdq", "--allow-unsigned")
    service = start_service()  # files nothing itself: no NCMEC settings
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    url = "https%3A%2F%2Fmedia.example.test%2Fp%2F13.png"
    ticket = _ok(
        service.request("POST", f"/v1/scan?content_id=u-13&content_url={url}", encode(draw(13)), key, Content_Type="image/png")
    )["ticket_id"]
    _ok(service.post_json("/v1/queue/claim", {}, reviewer))
    decision = {"decision": "actioned", "explanation": "x", "uk_priority": 2, "iwf_category": "A", "iccam_verdict": "baseline"}
    _ok(service.post_json(f"/v1/tickets/{ticket}/decision", decision, reviewer))

    unset = cli("reports", "file", "--ticket", ticket, check=False)
    assert unset.returncode == 1 and "HASHGUARD_NCMEC_URL" in unset.stderr

    reporting = Cli(
        {
            **cli.env,
            "HASHGUARD_NCMEC_URL": hotline.url,
            "HASHGUARD_NCMEC_USERNAME": USERNAME,
            "HASHGUARD_NCMEC_PASSWORD": "wrong",
            "HASHGUARD_REPORTER_EMAIL": "safety@example.test",
            "HASHGUARD_NCMEC_BACKOFF_S": "0",
            "HASHGUARD_EVIDENCE_HOSTS": "media.example.test",
        }
    )
    failed = reporting("reports", "file", "--ticket", ticket, "--now", check=False)
    assert failed.returncode == 1 and '"status": "failed"' in failed.stdout and '"last_code": 2000' in failed.stdout
    [line] = reporting("reports", "list", "--status", "failed").stdout.splitlines()[1:]
    report_id = line.split("\t")[0]
    shown = json.loads(reporting("reports", "show", report_id).stdout)
    assert shown["calls"][0]["call"] == "xsd" and shown["calls"][0]["code"] == 2000 and shown["calls"][0]["request_id"]

    fixed = Cli({**reporting.env, "HASHGUARD_NCMEC_PASSWORD": PASSWORD})
    assert "queued again" in fixed("reports", "retry", report_id).stdout
    again = fixed("reports", "file", "--ticket", ticket, "--now")
    assert "already filed or queued" in again.stdout and '"status": "finished"' in again.stdout
    assert len(hotline.finished()) == 1

    # The export writes what would be sent: our schema validates it; the evidence host makes it a one-file report.
    out = tmp_path / "export"
    fixed("reports", "export", "--hotline", "ncmec", "--ticket", ticket, "--out", str(out))
    schema = ncmec.own_schema()
    for name in ("report.xml", "fileinfo-1.xml"):
        schema.check((out / name).read_bytes())
    details = etree.fromstring((out / "fileinfo-1.xml").read_bytes())
    assert details.findtext("reportId") == "0" and details.findtext("fileId") == "placeholder-file-1"
    assert {h.get("hashType") for h in details.findall("originalFileHash")} == {"MD5", "SHA256"}

    # The NCA: not a duplicate of the NCMEC report unless asked; a non-UK provider only for UK-linked content.
    refused = fixed("reports", "export", "--hotline", "nca", "--ticket", ticket, "--out", str(out), "--uk-linked", check=False)
    assert refused.returncode == 1 and "NCMEC" in refused.stderr
    not_linked = fixed(
        "reports", "export", "--hotline", "nca", "--ticket", ticket, "--out", str(out), "--even-if-reported-to-ncmec", check=False
    )
    assert not_linked.returncode == 1 and "UK-linked" in not_linked.stderr
    fixed(
        "reports",
        "export",
        "--hotline",
        "nca",
        "--ticket",
        ticket,
        "--out",
        str(out),
        "--uk-linked",
        "--even-if-reported-to-ncmec",
    )
    nca = json.loads((out / "nca.json").read_text())
    jsonschema.validate(nca, recipients.schema("nca"))
    assert nca["priority"] == "P2" and nca["previous_reports"][0]["recipient"] == "ncmec"
    for name, expected in (("iccam", {"scheme": "interpol", "verdict": "baseline"}), ("iwf", {"scheme": "iwf", "category": "A"})):
        fixed("reports", "export", "--hotline", name, "--ticket", ticket, "--out", str(out))
        record = json.loads((out / f"{name}.json").read_text())
        jsonschema.validate(record, recipients.schema(name))
        assert record["classification"] == expected
        assert record["url"] == "https://media.example.test/p/13.png"
