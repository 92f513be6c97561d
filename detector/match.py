"""The match: the one value a scan's verdict, its stored evidence and a takedown ticket share.

With ``Hit`` (a raw index hit, in ``detector.matcher``) and ``ToolName`` these are the only detector
types another context may import (an import-linter contract holds takedown to them).
"""

from __future__ import annotations

from dataclasses import dataclass

# A detection tool's registered name ("pdq", "md5", ...): the key hash lists and approvals use.
ToolName = str


@dataclass(frozen=True, kw_only=True, slots=True)
class Match:
    """One list entry an upload matched: which entry (never its hash), by which tool, under which approval."""

    entry_row: int  # the stored list entry's row id: how feedback and evidence find the entry again
    hashset: str
    hashset_version: int  # the version the index held when it matched, not the one that added the entry
    entry_id: str  # the issuer's id for the entry
    tool: ToolName
    tool_version: str
    distance: int
    # A shadow list's match: recorded as evidence, never answered or actioned.
    shadow: bool = False
    # The entry is flood-quarantined: the platform still gets "match", but takedown must send it
    # to review rather than act automatically. Not part of the platform's JSON.
    quarantined: bool = False
    # Provenance: the approval the tool ran under, or the local allowance (approval_id None), and why.
    approval_id: int | None = None
    local_allowance_id: int | None = None
    approval_reason: str | None = None
    # The query variant of the upload that matched (detector.variants): "original", "mirror_h", "rot90", ...,
    # "trimmed", "compat_cmyk", ...: the reviewer and the hotline report see "matched when mirrored".
    transform: str = "original"
    # A video (vPDQ) match: the percentage of the upload's frames that matched the listed video, the
    # percentage of the listed video's frames that were matched, and how many upload frames matched.
    query_share: float | None = None
    index_share: float | None = None
    matched_frames: int | None = None
