"""The hotline documents: CyberTipline XML in schema order that validates against our XSD, the
rules of what may and may not be said, the answers' meaning, and the other recipients' JSON."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from lxml import etree

from takedown.reports import evidence, ncmec, recipients
from takedown.reports.case import Detection, ReportCase, Reporter, Review, Uploader
from takedown.reports.ncmec import Outcome, classify

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FILE = b"synthetic bytes drawn by the test"
LIST_VALUE = bytes.fromhex("ab" * 32)  # a list entry's (confidential) value: must never appear
REPORTER = Reporter(email="safety@example.test", first_name="Pat", phone="+1 555 0100", legal_url="https://example.test/legal")


def case(**overrides: object) -> ReportCase:
    values: dict[str, object] = {
        "ticket_id": uuid.uuid4(),
        "tenant": "default",
        "content_id": "c-1",
        "content_url": "https://cdn.example.test/p/1.jpg",
        "content_type": "image",
        "detected_at": NOW - timedelta(hours=2),
        "confirmed_at": NOW - timedelta(hours=1),
        "detections": (
            Detection(
                tool="pdq", tool_version="1.0", hashset="industry", hashset_version=7, distance=5, category="B2", scheme="ncmec"
            ),
        ),
        "file_hashes": {"md5": hashlib.md5(FILE).digest(), "sha256": hashlib.sha256(FILE).digest(), "pdq": bytes(32)},
        "uploader": Uploader(
            account_id="acct-1", screen_name="sam", ip="::ffff:192.0.2.1", port=443, upload_time=NOW - timedelta(days=1)
        ),
        "platform": "Example",
    }
    values.update(overrides)
    return ReportCase(**values)  # type: ignore[arg-type]


def children(document: bytes) -> list[str]:
    return [str(c.tag) for c in etree.fromstring(document)]


SCHEMA = ncmec.own_schema()


def test_a_report_and_its_file_details_validate_and_keep_schema_order() -> None:
    report = ncmec.build_report(case(review=Review(escalate="urgent")), REPORTER, now=NOW, with_file=True)
    SCHEMA.check(report)
    assert children(report) == ["incidentSummary", "internetDetails", "reporter", "personOrUserReported", "additionalInfo"]
    summary = etree.fromstring(report).find("incidentSummary")
    assert summary is not None
    assert [str(c.tag) for c in summary] == ["incidentType", "platform", "escalateToHighPriority", "incidentDateTime"]
    details = ncmec.build_file_details(case(), report_id="99", file_id="f1", now=NOW, mou_signed=True)
    SCHEMA.check(details)
    order = children(details)
    expected = [
        "reportId", "fileId", "uploadedToEspTimestamp", "locationOfFile", "fileViewedByEsp", "exifViewedByEsp",
        "fileRelevance", "industryClassification", "originalFileHash", "originalFileHash", "ipCaptureEvent", "details",
        "additionalInfo",
    ]  # fmt: skip
    assert order == expected


def test_our_schema_refuses_children_out_of_order_and_unknown_values() -> None:
    good = etree.fromstring(ncmec.build_report(case(), REPORTER, now=NOW, with_file=True))
    reporter = good.find("reporter")
    assert reporter is not None
    good.remove(reporter)
    good.insert(0, reporter)
    with pytest.raises(ncmec.DocumentInvalid):
        SCHEMA.check(etree.tostring(good))
    details = etree.fromstring(ncmec.build_file_details(case(), report_id="1", file_id="f", now=NOW, mou_signed=True))
    found = details.find("industryClassification")
    assert found is not None
    found.text = "C9"
    with pytest.raises(ncmec.DocumentInvalid):
        SCHEMA.check(etree.tostring(details))


def test_incident_time_is_never_in_the_future() -> None:
    future = case(detected_at=NOW + timedelta(days=3), uploader=None)
    report = etree.fromstring(ncmec.build_report(future, REPORTER, now=NOW, with_file=False))
    assert report.findtext("incidentSummary/incidentDateTime") == "2026-12-01T11:59:59Z"


def test_what_a_person_viewed_is_said_only_when_recorded_and_exif_never_without_the_file() -> None:
    unreviewed = etree.fromstring(ncmec.build_file_details(case(), report_id="1", file_id="f", now=NOW, mou_signed=False))
    assert (unreviewed.findtext("fileViewedByEsp"), unreviewed.findtext("exifViewedByEsp")) == ("false", "false")
    viewed = case(review=Review(file_viewed=True, exif_viewed=True))
    doc = etree.fromstring(ncmec.build_file_details(viewed, report_id="1", file_id="f", now=NOW, mou_signed=False))
    assert (doc.findtext("fileViewedByEsp"), doc.findtext("exifViewedByEsp")) == ("true", "true")
    with pytest.raises(ValueError, match="exif_viewed requires file_viewed"):
        Review(exif_viewed=True)


def test_industry_classification_only_with_the_mou() -> None:
    without = etree.fromstring(ncmec.build_file_details(case(), report_id="1", file_id="f", now=NOW, mou_signed=False))
    assert without.find("industryClassification") is None
    with_mou = etree.fromstring(ncmec.build_file_details(case(), report_id="1", file_id="f", now=NOW, mou_signed=True))
    assert with_mou.findtext("industryClassification") == "B2"


def test_documents_name_tool_list_and_version_but_never_a_list_value() -> None:
    c = case()
    for document in (
        ncmec.build_report(c, REPORTER, now=NOW, with_file=False),
        ncmec.build_report(c, REPORTER, now=NOW, with_file=True),
        ncmec.build_file_details(c, report_id="1", file_id="f", now=NOW, mou_signed=True),
    ):
        assert LIST_VALUE.hex() not in document.decode()
    info = etree.fromstring(ncmec.build_report(c, REPORTER, now=NOW, with_file=False)).findtext("additionalInfo") or ""
    assert "pdq 1.0 matched list 'industry' version 7" in info
    assert hashlib.sha256(FILE).hexdigest() in info  # a hash-only report carries the file's own hashes


def test_the_batched_viral_form_keeps_its_restrictions() -> None:
    viral = case(review=Review(viral=True, escalate="ignored in the batched form"))
    report = ncmec.build_batched_report(viral, REPORTER, now=NOW, accounts=["a1", "a2", "a1"])
    SCHEMA.check(report)
    assert children(report) == ["batchedReport", "incidentSummary", "reporter", "personOrUserReported", "personOrUserReported"]
    root = etree.fromstring(report)
    assert root.find("incidentSummary/escalateToHighPriority") is None
    assert [[str(c.tag) for c in p] for p in root.findall("personOrUserReported")] == [["espIdentifier"], ["espIdentifier"]]
    details = etree.fromstring(ncmec.build_file_details(viral, report_id="1", file_id="f", now=NOW, mou_signed=False))
    SCHEMA.check(etree.tostring(details))
    forbidden = {"originalFileName", "locationOfFile", "originalFileHash", "ipCaptureEvent", "details", "additionalInfo"}
    assert not forbidden & {str(c.tag) for c in details}
    assert [str(c.tag) for c in details.find("fileAnnotations")] == ["viral"]  # type: ignore[union-attr]
    # Without a file to upload the batched form cannot be used: an ordinary hash-only report says why.
    plain = ncmec.build_report(viral, REPORTER, now=NOW, with_file=False)
    assert "batchedReport" not in children(plain) and b"viral or a potential meme" in plain


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (None, None, Outcome.RETRY),
        (500, None, Outcome.RETRY),
        (503, 0, Outcome.RETRY),
        (200, 1000, Outcome.RETRY),
        (200, 0, Outcome.OK),
        (401, None, Outcome.AUTH),
        (401, 2000, Outcome.AUTH),
        (200, 3000, Outcome.AUTH),
        (200, 3100, Outcome.AUTH),
        (200, 3300, Outcome.AUTH),
        (400, 4100, Outcome.INVALID),
        (200, 4110, Outcome.INVALID),
        (200, 5001, Outcome.EXPIRED),
        (200, 5101, Outcome.RETRACTED),
        (200, 5102, Outcome.FINISHED),
        (200, 9999, Outcome.INVALID),
    ],
)
def test_what_each_answer_means(status: int | None, code: int | None, outcome: Outcome) -> None:
    assert classify(status, code) is outcome


def test_answers_are_read_safely() -> None:
    answer = ncmec.parse_answer(
        b"<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription>"
        b"<reportId>4711</reportId><fileId>abc</fileId><hash>D41D8CD98F00B204E9800998ECF8427E</hash></reportResponse>"
    )
    assert (answer.code, answer.report_id, answer.file_id, answer.md5) == (0, "4711", "abc", "d41d8cd98f00b204e9800998ecf8427e")
    done = ncmec.parse_answer(
        b"<reportDoneResponse><responseCode>0</responseCode><reportId>1</reportId><files><fileId>a</fileId></files></reportDoneResponse>"
    )
    assert done.files == ("a",)
    entity = (
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><reportResponse><responseCode>&x;</responseCode></reportResponse>'
    )
    assert ncmec.parse_answer(entity).code is None
    assert ncmec.parse_answer(b"<html>Bad gateway</html").code is None


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://media.example.test/x.jpg", True),
        ("https://media.example.test:8443/x.jpg", True),
        ("http://media.example.test/x.jpg", False),
        ("http://127.0.0.1:8080/x.jpg", True),
        ("http://localhost/x.jpg", True),
        ("https://other.example.test/x.jpg", False),
        ("ftp://media.example.test/x.jpg", False),
        (None, False),
    ],
)
def test_evidence_is_fetched_only_from_listed_hosts_over_https_or_loopback(url: str | None, allowed: bool) -> None:
    hosts = ("media.example.test", "127.0.0.1", "localhost")
    assert (evidence.fetch_refusal(url, hosts) is None) is allowed


def test_a_fetched_file_must_match_a_recorded_digest() -> None:
    digests = evidence.Digests()
    digests.update(FILE[:5])
    digests.update(FILE[5:])
    fetched = digests.values()
    assert evidence.mismatch({"md5": hashlib.md5(FILE).digest()}, fetched) is None
    assert evidence.mismatch({"sha256": hashlib.sha256(b"other").digest()}, fetched) is not None
    assert evidence.mismatch({"pdq": bytes(32)}, fetched) is not None  # perceptual alone proves nothing
    headers = evidence.signed_headers("s" * 32, 1700000000, "https://m.test/x")
    assert evidence.verify_fetch("s" * 32, headers["X-Hashguard-Timestamp"], "https://m.test/x", headers["X-Hashguard-Signature"])
    assert not evidence.verify_fetch(
        "s" * 32, headers["X-Hashguard-Timestamp"], "https://m.test/y", headers["X-Hashguard-Signature"]
    )


def test_nca_record_validates_and_follows_the_uk_rules() -> None:
    record = recipients.nca_report(case(review=Review(uk_priority=1)), REPORTER, now=NOW, uk_provider=True, uk_linked=False)
    jsonschema.validate(record, recipients.schema("nca"))
    assert record["priority"] == "P1" and record["detected_content"]["upload_port"] == 443
    assert LIST_VALUE.hex() not in str(record)
    with pytest.raises(recipients.RecipientRefused, match="UK-linked"):
        recipients.nca_report(case(), REPORTER, now=NOW, uk_provider=False, uk_linked=False)
    with pytest.raises(recipients.RecipientRefused, match="NCMEC"):
        recipients.nca_report(case(), REPORTER, now=NOW, uk_provider=True, uk_linked=True, prior=[("ncmec", "4711")])
    again = recipients.nca_report(
        case(), REPORTER, now=NOW, uk_provider=True, uk_linked=True, prior=[("ncmec", "4711")], duplicate_of_ncmec_allowed=True
    )
    jsonschema.validate(again, recipients.schema("nca"))
    assert again["previous_reports"] == [{"recipient": "ncmec", "reference": "4711"}]


def test_iccam_and_iwf_records_validate_with_their_scheme() -> None:
    iwf_case = case(
        detections=(
            Detection(tool="pdq", tool_version="1", hashset="iwf", hashset_version=1, distance=0, category="B", scheme="iwf"),
        ),
        review=Review(iccam_verdict="baseline"),
    )
    iccam = recipients.iccam_record(iwf_case, now=NOW)
    jsonschema.validate(iccam, recipients.schema("iccam"))
    assert iccam["classification"] == {"scheme": "interpol", "verdict": "baseline"} and iccam["previously_assessed"]
    iwf = recipients.iwf_record(iwf_case, now=NOW)
    jsonschema.validate(iwf, recipients.schema("iwf"))
    assert iwf["classification"] == {"scheme": "iwf", "category": "B"}
    reviewed = recipients.iwf_record(case(review=Review(iwf_category="A")), now=NOW)
    assert reviewed["classification"]["category"] == "A"
    bad = {**iwf, "classification": {"scheme": "iwf", "category": "D"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, recipients.schema("iwf"))


def test_the_documented_example_validates() -> None:
    """docs/reports.md shows a generated <report> and <fileDetails>: they must stay valid."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "reports.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```xml\n")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        SCHEMA.check(block.encode())


def test_the_hotline_is_reached_over_https_or_a_loopback_stand_in_only() -> None:
    from takedown.reports.job import NcmecConfig

    def problem(url: str) -> str | None:
        return NcmecConfig(url=url, username="u", password="p", reporter=REPORTER).problem()

    assert problem("https://exttest.cybertip.org/ispws") is None
    assert problem("http://127.0.0.1:8080/ispws") is None
    assert "https" in (problem("http://exttest.cybertip.org/ispws") or "")
    assert "REPORTER_EMAIL" in (NcmecConfig(url="https://x.test", username="u", password="p", reporter=None).problem() or "")
