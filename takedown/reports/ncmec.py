"""The NCMEC CyberTipline documents hashguard sends, the answers it reads, and what each answer means.
Pure: builds and parses bytes; the calls are ``takedown.reports.job``'s.

Field names, order and limits come from docs/reports.md (NCMEC's published schema and API
documentation, read, not copied). The builders emit every element in ``xs:sequence`` order
(NCMEC answers ``4100`` to children out of order) and never emit what is not known: all fields but the
incident type and time are voluntary, and a missing fact is better than an invented one.

Confidentiality: the documents carry the uploaded file's own hashes (what NCMEC needs to find the
file again) and name the tool, list and list version that matched, never any other value of the list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources
from typing import Any

from lxml import etree

from takedown.reports.case import ReportCase, Reporter, Uploader

XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"

# The one incident type a hash match of known material is (docs/reports.md, §incidentType).
CSAM_INCIDENT = "Child Pornography (possession, manufacture, and distribution)"

# Where each tool's hash goes in <fileDetails>: cryptographic digests of the bytes as
# originalFileHash (hashType is a free string of at most 64 characters), perceptual hashes as
# details type="HASH" name/value pairs. Tools not named here are left out of the documents.
ORIGINAL_HASH_TYPES: Mapping[str, str] = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}
PERCEPTUAL_HASH_NAMES: Mapping[str, str] = {"pdq": "PDQ", "phash": "pHash", "dhash": "dHash", "photodna": "PhotoDNA"}

INDUSTRY_CLASSES = frozenset({"A1", "A2", "B1", "B2"})


class DocumentInvalid(ValueError):
    """A document does not validate against a CyberTipline schema."""


class Schema:
    """An XSD (ours, or the hotline's own from ``GET /xsd``) that documents are checked against before sending."""

    def __init__(self, xsd: bytes) -> None:
        try:
            self._schema = etree.XMLSchema(etree.fromstring(xsd, _SAFE_PARSER))
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise DocumentInvalid(f"the schema does not parse: {exc}") from None

    def check(self, document: bytes) -> None:
        try:
            tree = etree.fromstring(document, _SAFE_PARSER)
        except etree.XMLSyntaxError as exc:
            raise DocumentInvalid(f"not well-formed XML: {exc}") from None
        if not self._schema.validate(tree):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in _first(self._schema.error_log, 5))
            raise DocumentInvalid(errors)


def _first(log: Any, n: int) -> list[Any]:
    """The first ``n`` entries of an lxml error log (the stubs do not declare it iterable)."""
    return [entry for _, entry in zip(range(n), log, strict=False)]


# No entities, no DTDs, no network: answers and schemas come from elsewhere.
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def own_schema_bytes() -> bytes:
    return resources.files("takedown.reports").joinpath("cybertipline-subset.xsd").read_bytes()


def own_schema() -> Schema:
    """hashguard's schema of the subset it sends (``takedown/reports/cybertipline-subset.xsd``)."""
    return Schema(own_schema_bytes())


# ---------------------------------------------------------------- times


def wire_time(moment: datetime) -> str:
    """ISO 8601 with an explicit offset, whole seconds (NCMEC reads ``Z`` or ``±hh:mm``)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def past(moment: datetime, now: datetime) -> datetime:
    """NCMEC refuses times in the future: clamp to one second before ``now``."""
    latest = now - timedelta(seconds=1)
    return min(moment, latest)


# ---------------------------------------------------------------- building


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, tag, {k: v for k, v in attrs.items()})
    if text is not None:
        child.text = text
    return child


def _root(tag: str) -> etree._Element:
    root = etree.Element(tag, nsmap={"xsi": XSI})
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    return root


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _ip_event(parent: etree._Element, tag: str, uploader: Uploader, now: datetime) -> None:
    assert uploader.ip is not None
    event = _sub(parent, tag)
    _sub(event, "ipAddress", str(ipaddress.ip_address(uploader.ip)))
    _sub(event, "eventName", "Upload")
    if uploader.upload_time is not None:
        _sub(event, "dateTime", wire_time(past(uploader.upload_time, now)))
    if uploader.port is not None:
        _sub(event, "port", str(uploader.port))


def _hex(value: bytes) -> str:
    return value.hex()


def detection_note(case: ReportCase) -> str:
    """How it was detected: tool, list and version for every match; never a list's hash value."""
    parts = [
        f"{d.tool} {d.tool_version} matched list {d.hashset!r} version {d.hashset_version}"
        + (f" (issuer {d.issuer})" if d.issuer else "")
        + (" exactly" if d.distance == 0 else f" at distance {d.distance}")
        for d in case.detections
    ]
    return "Detected by hashguard hash matching: " + "; ".join(parts) + "."


def hash_note(hashes: Mapping[str, bytes]) -> str | None:
    """The uploaded file's own hashes, for a report without a file (no documented hash-only file route)."""
    named = [(ORIGINAL_HASH_TYPES.get(t) or PERCEPTUAL_HASH_NAMES.get(t), v) for t, v in sorted(hashes.items())]
    shown = [f"{name} {_hex(v)}" for name, v in named if name is not None]
    return ("Hashes of the reported file: " + ", ".join(shown) + ".") if shown else None


def incident_time(case: ReportCase, now: datetime) -> datetime:
    """From the upload time the platform gave, else the first detection; never in the future."""
    when = case.uploader.upload_time if case.uploader and case.uploader.upload_time else case.detected_at
    return past(when, now)


def _reporter(root: etree._Element, reporter: Reporter) -> None:
    rep = _sub(root, "reporter")
    person = _sub(rep, "reportingPerson")
    if reporter.first_name:
        _sub(person, "firstName", reporter.first_name)
    if reporter.last_name:
        _sub(person, "lastName", reporter.last_name)
    if reporter.phone:
        _sub(person, "phone", reporter.phone, type="Business")
    _sub(person, "email", reporter.email, type="Business")
    if reporter.company_template:
        _sub(rep, "companyTemplate", reporter.company_template)
    if reporter.terms_of_service:
        _sub(rep, "termsOfService", reporter.terms_of_service)
    if reporter.legal_url:
        _sub(rep, "legalURL", reporter.legal_url)


def build_report(case: ReportCase, reporter: Reporter, *, now: datetime, with_file: bool) -> bytes:
    """The ``<report>`` of ``POST /submit`` for one confirmed item.

    ``with_file``: a file will be uploaded (its hashes go in its ``<fileDetails>``); without one the
    file's hashes go in the report's ``additionalInfo`` (a hash-only report)."""
    if case.review.batched_viral and with_file:
        return build_batched_report(case, reporter, now=now)
    root = _root("report")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", CSAM_INCIDENT)
    if case.platform:
        _sub(summary, "platform", case.platform[:256])
    if case.review.escalate:
        _sub(summary, "escalateToHighPriority", case.review.escalate.strip()[:3000])
    if case.review.annotations:
        notes = _sub(summary, "reportAnnotations")
        for flag in REPORT_ANNOTATIONS:
            if flag in case.review.annotations:
                _sub(notes, flag)
    _sub(summary, "incidentDateTime", wire_time(incident_time(case, now)))
    if case.content_url:
        page = _sub(_sub(root, "internetDetails"), "webPageIncident")
        _sub(page, "url", case.content_url)
    _reporter(root, reporter)
    if case.uploader is not None and case.uploader.any():
        _person(root, case.uploader, now)
    info = [detection_note(case)]
    if not with_file and (note := hash_note(case.file_hashes)):
        info.append(note)
    if case.review.batched_viral and not with_file:
        info.append("A reviewer marked this item viral or a potential meme; no file could be uploaded for the batched form.")
    _sub(root, "additionalInfo", " ".join(info))
    return _bytes(root)


def _person(root: etree._Element, uploader: Uploader, now: datetime) -> None:
    person = _sub(root, "personOrUserReported")
    if uploader.account_id:
        _sub(person, "espIdentifier", uploader.account_id)
    if uploader.screen_name:
        _sub(person, "screenName", uploader.screen_name)
    if uploader.ip:
        _ip_event(person, "ipCaptureEvent", uploader, now)


def build_batched_report(case: ReportCase, reporter: Reporter, *, now: datetime, accounts: Sequence[str] = ()) -> bytes:
    """The batched viral / potential-meme form (``<batchedReport reason="VIRAL_POTENTIAL_MEME"/>``).

    Its restrictions: reported users carry only ``espIdentifier``; no escalation, internet details or
    top-level ``additionalInfo``; exactly one uploaded file (see ``build_file_details``)."""
    root = _root("report")
    _sub(root, "batchedReport", reason="VIRAL_POTENTIAL_MEME")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", CSAM_INCIDENT)
    if case.platform:
        _sub(summary, "platform", case.platform[:256])
    _sub(summary, "incidentDateTime", wire_time(incident_time(case, now)))
    _reporter(root, reporter)
    ids = list(accounts) or ([case.uploader.account_id] if case.uploader and case.uploader.account_id else [])
    for account in dict.fromkeys(ids):
        _sub(_sub(root, "personOrUserReported"), "espIdentifier", account)
    return _bytes(root)


REPORT_ANNOTATIONS = ("sextortion", "csamSolicitation", "minorToMinorInteraction", "spam", "sadisticOnlineExploitation")
FILE_ANNOTATIONS = (
    "animeDrawingVirtualHentai",
    "potentialMeme",
    "viral",
    "possibleSelfProduction",
    "physicalHarm",
    "violenceGore",
    "bestiality",
    "liveStreaming",
    "infant",
    "generativeAi",
)


def build_file_details(
    case: ReportCase, *, report_id: str, file_id: str, now: datetime, mou_signed: bool, original_file_name: str | None = None
) -> bytes:
    """The ``<fileDetails>`` of ``POST /fileinfo`` for the uploaded file.

    ``fileViewedByEsp`` / ``exifViewedByEsp`` say what a person at the company actually viewed, as
    the decision recorded it (false for an unreviewed hash match; exif never without the file).
    ``industryClassification`` only when the company signed NCMEC's industry hash-sharing MOU."""
    root = _root("fileDetails")
    _sub(root, "reportId", str(int(report_id)))
    _sub(root, "fileId", file_id)
    batched = case.review.batched_viral
    if not batched:
        if original_file_name:
            _sub(root, "originalFileName", original_file_name[:2056])
        if case.uploader is not None and case.uploader.upload_time is not None:
            _sub(root, "uploadedToEspTimestamp", wire_time(past(case.uploader.upload_time, now)))
        if case.content_url and len(case.content_url) <= 2083:
            _sub(root, "locationOfFile", case.content_url)
    viewed = case.review.file_viewed
    _sub(root, "fileViewedByEsp", "true" if viewed else "false")
    _sub(root, "exifViewedByEsp", "true" if viewed and case.review.exif_viewed else "false")
    _sub(root, "fileRelevance", "Reported")
    flags = set(case.review.file_annotations)
    if case.review.viral:
        flags.add("viral")
    if case.review.potential_meme:
        flags.add("potentialMeme")
    if batched:
        flags &= {"viral", "potentialMeme"}
    if flags:
        notes = _sub(root, "fileAnnotations")
        for flag in FILE_ANNOTATIONS:
            if flag in flags:
                _sub(notes, flag)
    if mou_signed and case.industry_classification in INDUSTRY_CLASSES:
        _sub(root, "industryClassification", case.industry_classification)
    if not batched:
        for tool, kind in ORIGINAL_HASH_TYPES.items():
            if tool in case.file_hashes:
                _sub(root, "originalFileHash", _hex(case.file_hashes[tool]), hashType=kind)
        if case.uploader is not None and case.uploader.ip:
            _ip_event(root, "ipCaptureEvent", case.uploader, now)
        perceptual = [(name, case.file_hashes[t]) for t, name in PERCEPTUAL_HASH_NAMES.items() if t in case.file_hashes]
        if perceptual:
            details = _sub(root, "details", type="HASH")
            for name, value in perceptual:
                pair = _sub(details, "nameValuePair")
                _sub(pair, "name", name)
                _sub(pair, "value", _hex(value))
        _sub(root, "additionalInfo", detection_note(case))
    return _bytes(root)


# ---------------------------------------------------------------- answers


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """What a CyberTipline call answered: ``<reportResponse>`` or ``<reportDoneResponse>``."""

    code: int | None
    description: str | None = None
    report_id: str | None = None
    file_id: str | None = None
    md5: str | None = None
    files: tuple[str, ...] = field(default_factory=tuple)


def parse_answer(body: bytes) -> Answer:
    """Read a response body; a body that is not the documented XML answers with ``code`` None."""
    try:
        root = etree.fromstring(body, _SAFE_PARSER)
    except etree.XMLSyntaxError:
        return Answer(code=None, description=body[:200].decode("utf-8", "replace"))

    def text(tag: str) -> str | None:
        found = root.find(tag)
        return found.text.strip() if found is not None and found.text else None

    raw = text("responseCode")
    try:
        code = int(raw) if raw is not None else None
    except ValueError:
        code = None
    files = root.find("files")
    return Answer(
        code=code,
        description=text("responseDescription"),
        report_id=text("reportId"),
        file_id=text("fileId"),
        md5=(text("hash") or "").lower() or None,
        files=tuple(f.text.strip() for f in files.findall("fileId") if f.text) if files is not None else (),
    )


class Outcome(StrEnum):
    """What a call's result means for the report (docs/reports.md, response codes)."""

    OK = "ok"
    RETRY = "retry"  # network, HTTP 5xx, 1xxx server-side failures: retried with backoff
    AUTH = "auth"  # 2000/3000/3100/3300, HTTP 401/403: terminal, alert (credentials or authorisation)
    INVALID = "invalid"  # 4xxx and unknown codes: terminal, the hotline's message kept
    EXPIRED = "expired"  # 5001: the report does not exist (expired or never opened)
    FINISHED = "finished"  # 5102: already finished (the "did it land?" answer of a retract)
    RETRACTED = "retracted"  # 5101: already retracted


AUTH_CODES = frozenset({2000, 3000, 3100, 3300})


def classify(http_status: int | None, code: int | None) -> Outcome:
    """``http_status`` None: no answer (connection refused or dropped, timeout)."""
    if http_status is None:
        return Outcome.RETRY
    if code is None:
        if http_status >= 500:
            return Outcome.RETRY
        if http_status in (401, 403):
            return Outcome.AUTH
        return Outcome.OK if 200 <= http_status < 300 else Outcome.INVALID
    if code == 0:
        return Outcome.OK if 200 <= http_status < 300 else Outcome.RETRY
    if code in AUTH_CODES:
        return Outcome.AUTH
    if code == 5001:
        return Outcome.EXPIRED
    if code == 5102:
        return Outcome.FINISHED
    if code == 5101:
        return Outcome.RETRACTED
    if 1000 <= code < 2000 or code == 5002:
        return Outcome.RETRY
    return Outcome.INVALID
