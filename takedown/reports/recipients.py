"""Reports for recipients other than NCMEC, as JSON records: the UK NCA (Online Safety Act s.66,
SI 2026/268), a hotline-to-hotline exchange in the INHOPE/ICCAM style, and an IWF-style record. Pure.

hashguard does not file these itself: ``hashguard reports export --hotline nca|iccam|iwf`` writes the
record for the operator to submit through the recipient's portal or API. Each shape is ours
(docs/reports.md says which facts are graded what) and ships as a JSON Schema beside this module
(``<name>.schema.json``); the tests validate every record against it. Field names are kept in
this one module so a recipient's published format can replace them in one place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any

from takedown.reports.case import ReportCase, Reporter
from takedown.reports.ncmec import ORIGINAL_HASH_TYPES, PERCEPTUAL_HASH_NAMES, past

NCA_PRIORITIES = {1: "P1", 2: "P2", 3: "P3"}
DECLARATION = "The reporting provider declares that the information in this report is accurate to the best of its knowledge."


class RecipientRefused(ValueError):
    """The record must not be made for this recipient (why is the message)."""


def schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema of ``name`` (nca, iccam, iwf)."""
    raw = resources.files("takedown.reports").joinpath(f"{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def _time(moment: datetime | None, now: datetime) -> str | None:
    return past(moment, now).isoformat() if moment is not None else None


def _hashes(case: ReportCase) -> list[dict[str, str]]:
    names = {**ORIGINAL_HASH_TYPES, **PERCEPTUAL_HASH_NAMES}
    return [{"type": names[t], "value": v.hex()} for t, v in sorted(case.file_hashes.items()) if t in names]


def detection_method(case: ReportCase) -> str:
    """How the item was found and confirmed, naming tools and lists (never a list's values)."""
    lists = ", ".join(f"{d.tool} on list {d.hashset!r} v{d.hashset_version}" for d in case.detections) or "no hash match"
    how = "automated hash matching" if case.automated_detection else "notice"
    confirmed = "confirmed by a person" if case.confirmed_at is not None else "not yet confirmed"
    return f"{how} ({lists}); {confirmed}"


def nca_report(
    case: ReportCase,
    reporter: Reporter,
    *,
    now: datetime,
    uk_provider: bool,
    uk_linked: bool,
    prior: Sequence[tuple[str, str | None]] = (),
    duplicate_of_ncmec_allowed: bool = False,
) -> dict[str, Any]:
    """The NCA report record, with the Schedule 1 content hashguard holds (no duty to collect more).

    A non-UK provider reports only UK-linked content (s.66); a report already made to NCMEC is not
    duplicated to the NCA unless the operator says so (``duplicate_of_ncmec_allowed``)."""
    if not uk_provider and not uk_linked:
        raise RecipientRefused(
            "a non-UK provider reports only UK-linked content to the NCA (OSA s.66); pass --uk-linked if it is"
        )
    if not duplicate_of_ncmec_allowed and any(h == "ncmec" and ref for h, ref in prior):
        raise RecipientRefused(
            "already reported to NCMEC: the NCA asks for no duplicate (pass --even-if-reported-to-ncmec to override)"
        )
    name = " ".join(p for p in (reporter.first_name, reporter.last_name) if p) or None
    uploader = case.uploader
    return {
        "schema": "hashguard.nca-report/1",
        "priority": NCA_PRIORITIES.get(case.review.uk_priority or 0),
        "reporting_person": {"name": name, "email": reporter.email, "phone": reporter.phone},
        "platform": case.platform or case.tenant,
        "uk_linked": uk_linked,
        "detected_content": {
            "content_url": case.content_url,
            "content_type": case.content_type,
            "detection_method": detection_method(case),
            "original_hash_values": _hashes(case),
            "upload_time": _time(uploader.upload_time if uploader else None, now),
            "upload_ip": uploader.ip if uploader else None,
            "upload_port": uploader.port if uploader else None,
            "exif": None,
        },
        "account": {
            "account_id": uploader.account_id if uploader else None,
            "username": uploader.screen_name if uploader else None,
        },
        "previous_reports": [{"recipient": h, "reference": ref} for h, ref in prior if ref],
        "detected_at": _time(case.detected_at, now),
        "confirmed_at": _time(case.confirmed_at, now),
        "declaration": DECLARATION,
    }


def iccam_record(case: ReportCase, *, now: datetime) -> dict[str, Any]:
    """A hotline-to-hotline record of one confirmed item, INHOPE/ICCAM style: URL, type, how found, hashes, verdict."""
    return {
        "schema": "hashguard.iccam-item/1",
        "url": case.content_url,
        "content_type": case.content_type,
        "detection_method": detection_method(case),
        "hashes": _hashes(case),
        # Known items carry the list's prior assessment and need no second human exposure.
        "previously_assessed": bool(case.detections),
        "classification": {"scheme": "interpol", "verdict": case.review.iccam_verdict},
        "detected_at": _time(case.detected_at, now),
    }


def iwf_record(case: ReportCase, *, now: datetime) -> dict[str, Any]:
    """An IWF-style record: the reviewer's (or the list's most severe) A/B/C category."""
    return {
        "schema": "hashguard.iwf-item/1",
        "url": case.content_url,
        "content_type": case.content_type,
        "detection_method": detection_method(case),
        "hashes": _hashes(case),
        "classification": {"scheme": "iwf", "category": case.iwf_category},
        "detected_at": _time(case.detected_at, now),
    }
