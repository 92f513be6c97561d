"""What a hotline report is built from: one confirmed item's case record. Pure values.

``ReportCase`` is read from the ticket (``takedown.reports.store.load_case``) and handed to each
recipient's builder (NCMEC XML, NCA / ICCAM / IWF JSON), so every format reads the same facts.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Reporter:
    """The reporting company's contact (HASHGUARD_REPORTER_*): the email is required to file."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company_template: str | None = None
    terms_of_service: str | None = None
    legal_url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Uploader:
    """What the platform told us of the upload's account (with the scan or notice): case evidence,
    purged with the rest of the ticket's evidence."""

    account_id: str | None = None
    screen_name: str | None = None
    ip: str | None = None
    port: int | None = None
    upload_time: datetime | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.account_id, self.screen_name, self.ip))

    def __post_init__(self) -> None:
        if self.ip is not None:
            ipaddress.ip_address(self.ip)  # ValueError for anything that is not an IPv4/IPv6 address
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError("port must be 1-65535")


@dataclass(frozen=True, kw_only=True, slots=True)
class Detection:
    """One match behind the item: tool, list, version, distance. Never the list's hash value."""

    tool: str
    tool_version: str
    hashset: str
    hashset_version: int
    distance: int
    issuer: str | None = None
    category: str | None = None  # the entry's category in its list's scheme
    scheme: str | None = None  # iwf, ncmec, interpol


@dataclass(frozen=True, kw_only=True, slots=True)
class Review:
    """What the reviewer recorded with the decision: what a person viewed, and the report flags."""

    file_viewed: bool = False
    exif_viewed: bool = False
    escalate: str | None = None  # escalateToHighPriority: why (its presence escalates the report)
    viral: bool = False
    potential_meme: bool = False
    annotations: frozenset[str] = frozenset()  # reportAnnotations flags
    file_annotations: frozenset[str] = frozenset()
    uk_priority: int | None = None  # NCA P1/P2/P3
    iwf_category: str | None = None  # the reviewer's A/B/C, when assessed
    iccam_verdict: str | None = None  # baseline / national / not_illegal

    def __post_init__(self) -> None:
        if self.exif_viewed and not self.file_viewed:
            raise ValueError("exif_viewed requires file_viewed: EXIF is viewed with the file")

    @property
    def batched_viral(self) -> bool:
        return self.viral or self.potential_meme


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportCase:
    ticket_id: uuid.UUID
    tenant: str | None
    content_id: str
    content_url: str | None
    content_type: str | None
    detected_at: datetime  # the first match (or notice) on the ticket
    confirmed_at: datetime | None  # when a person (or policy) actioned it
    detections: tuple[Detection, ...]
    # The uploaded file's own hashes, tool name -> value, as the scan computed them (md5, sha256, pdq, ...).
    file_hashes: Mapping[str, bytes] = field(default_factory=dict)
    uploader: Uploader | None = None
    review: Review = field(default_factory=Review)
    platform: str | None = None
    automated_detection: bool = True

    @property
    def industry_classification(self) -> str | None:
        """A1/A2/B1/B2 from the list's own NCMEC-scheme category, when a list gives one."""
        for d in self.detections:
            if d.scheme == "ncmec" and d.category and d.category.upper() in {"A1", "A2", "B1", "B2"}:
                return d.category.upper()
        return None

    @property
    def iwf_category(self) -> str | None:
        """The reviewer's IWF category, else the most severe one a matching IWF-scheme list gives."""
        if self.review.iwf_category:
            return self.review.iwf_category
        found = sorted(
            d.category.upper()
            for d in self.detections
            if d.scheme == "iwf" and d.category and d.category.upper() in {"A", "B", "C"}
        )
        return found[0] if found else None
