"""Reading the NCMEC hash-sharing API v2's XML (pure): entry pages, status, feedback reasons, feedback bodies.

Facts about the wire format (from NCMEC's v2 documentation as python-threatexchange reads it): a
``queryResult`` holds ``images`` and ``videos`` (each with a ``maxTimestamp``), whose children are
``image``/``video`` entries or ``deletedImage``/``deletedVideo`` tombstones with ``id``, ``member
id=…``, ``timestamp``, ``classification`` and ``fingerprints`` (``md5``, ``sha1``, ``pdna``, ``pdq``,
…; a large one is a link instead of text). ``paging/next`` is the path of the next page, relative to
the environment's base URL, carrying ``from``/``to`` and ``start``/``size``/``max``. Entries are not
in time order. Values are never put into an error message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from hashsets.exchanges.base import MAX_ENTRY_ID, EntryProblem, Update

NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
_KINDS = {"image": False, "video": False, "deletedimage": True, "deletedvideo": True}


class UnreadablePage(ValueError):
    """The page is not the XML the API documents."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EntriesPage:
    updates: list[Update]
    problems: list[EntryProblem]
    next: str
    max_timestamp: datetime | None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _root(body: bytes) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise UnreadablePage(f"not well-formed XML ({exc})") from None
    for element in root.iter():
        element.tag = _local(element.tag)
    return root


def parse_time(text: str) -> datetime:
    """NCMEC timestamps: ``2017-10-24T15:00:00Z``, with or without milliseconds."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a timestamp without a zone")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def hash_type(tag: str) -> str:
    """A fingerprint element's name as a hashguard tool name: ``tmk-pdqf`` -> ``tmk_pdqf``."""
    return tag.strip().lower().replace("-", "_")


def fingerprint_type(tool: str) -> str:
    """The feedback API's fingerprint type for a hashguard tool name: ``pdq`` -> ``PDQ``."""
    return tool.upper()


def entry_key(member: str, entry: str) -> str:
    """Entry ids are unique per member: hashguard's id for an entry is both."""
    return f"{member}-{entry}"


def parse_entries(body: bytes, position: str) -> EntriesPage:
    root = _root(body)
    if root.tag != "queryResult":
        raise UnreadablePage(f"the root element is <{root.tag[:40]}>, not <queryResult>")
    updates: list[Update] = []
    problems: list[EntryProblem] = []
    newest: datetime | None = None
    ordinal = 0
    for group in root:
        if group.tag not in ("images", "videos"):
            continue
        if (stamp := group.get("maxTimestamp")) is not None:
            try:
                at = parse_time(stamp)
                newest = at if newest is None or at > newest else newest
            except ValueError:
                pass
        for element in group:
            ordinal += 1
            where = f"{position} entry {ordinal}"
            deleted = _KINDS.get(element.tag.lower())
            if deleted is None:
                problems.append(EntryProblem(position=where, reason=f"unknown element <{element.tag[:40]}>"))
                continue
            try:
                updates.append(_entry(element, deleted))
            except ValueError as exc:
                entry_id = (element.findtext("id") or "").strip()[:MAX_ENTRY_ID] or None
                problems.append(EntryProblem(position=where, reason=str(exc), entry_id=entry_id))
    next_path = (root.findtext("paging/next") or "").strip()
    return EntriesPage(updates=updates, problems=problems, next=next_path, max_timestamp=newest)


def _entry(element: ET.Element, deleted: bool) -> Update:
    entry = (element.findtext("id") or "").strip()
    member = element.find("member")
    member_id = (member.get("id") or "").strip() if member is not None else ""
    if not entry:
        raise ValueError("the entry has no id")
    if not member_id:
        raise ValueError("the entry has no member id")
    key = entry_key(member_id, entry)
    if len(key) > MAX_ENTRY_ID:
        raise ValueError(f"the entry id is longer than {MAX_ENTRY_ID} characters")
    stamp = element.findtext("timestamp")
    try:
        updated_at = parse_time(stamp) if stamp else None
    except ValueError:
        raise ValueError("the timestamp is not an ISO 8601 time") from None
    fingerprints: dict[str, str] = {}
    if not deleted:
        for fingerprint in element.find("fingerprints") or ():
            text = (fingerprint.text or "").strip()
            if text:  # a large fingerprint comes as a link (rel/href), not inline: not fetched
                fingerprints[hash_type(fingerprint.tag)] = text
        if not fingerprints:
            raise ValueError("the entry has no fingerprint")
    classification = (element.findtext("classification") or "").strip() or None
    return Update(
        entry_id=key,
        fingerprints=fingerprints,
        member=member_id,
        classification=classification,
        updated_at=updated_at,
        deleted=deleted,
    )


def parse_status(body: bytes) -> tuple[str, str]:
    """(member id, member name) of the credential's own organisation."""
    root = _root(body)
    member = root.find("member")
    if root.tag != "status" or member is None or not member.get("id"):
        raise UnreadablePage("the status answer names no member")
    return str(member.get("id")), (member.text or "").strip()


def parse_reasons(body: bytes) -> dict[str, str]:
    """Negative-feedback reasons for a fingerprint type: name -> guid."""
    root = _root(body)
    return {str(r.get("name")): str(r.get("guid")) for r in root.iter("reason") if r.get("guid") and r.get("name")}


def feedback_body(affirmative: bool, reason_guid: str | None = None) -> bytes:
    root = ET.Element("feedbackSubmission", {"xmlns": NAMESPACE})
    if affirmative:
        ET.SubElement(root, "affirmative")
    else:
        reasons = ET.SubElement(ET.SubElement(root, "negative"), "reasonIds")
        if reason_guid:
            ET.SubElement(reasons, "guid").text = reason_guid
    return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root)


def page_after(path: str) -> str | None:
    """The page after ``path`` (one with ``start``/``size``/``max``), to step past a page that cannot be read.

    None: ``path`` was the window's last page. Raises ``ValueError`` if ``path`` has no paging parameters."""
    parts = urlsplit(path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    try:
        start, size, top = int(query["start"]), int(query["size"]), int(query["max"])
    except (KeyError, ValueError):
        raise ValueError("the page has no paging parameters") from None
    if start + size > top:
        return None
    query.update(start=str(start + size), max=str(top))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
