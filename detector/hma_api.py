"""Request and answer types of the HMA-compatible matching endpoints (``detector.hma_http``), in HMA's shapes.

HMA (facebook/ThreatExchange's hasher-matcher-actioner) names hash types ``pdq``, ``video_md5``, ...;
its ``bank_content_id`` is an integer; a ``distance`` is a string. hashguard's lists are HMA's banks.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from kernel.api import OptionalText, Text


class RawLookupQuery(Struct):
    signal_type: Annotated[Text, Meta(description="HMA's signal type: pdq, video_md5, or a hashguard tool name.")]
    signal: Annotated[Text, Meta(description="The hash, as HMA takes it (hex).")]
    include_distance: Annotated[bool, Meta(description="Distances: only for a key granted them.")] = False
    banks: Annotated[OptionalText | None, Meta(description="Only these lists (HMA's banks), comma-separated.")] = None
    content_id: Annotated[OptionalText | None, Meta(description="hashguard's id of the item; default: from the hash.")] = None


class LookupQuery(Struct):
    signal_type: OptionalText | None = None
    signal: OptionalText | None = None
    banks: OptionalText | None = None
    content_id: OptionalText | None = None
    url: Annotated[OptionalText | None, Meta(description="Refused: hashguard never fetches a URL.")] = None
    seed: OptionalText | None = None
    bypass_coinflip: OptionalText | None = None


class MatchWithDistance(Struct, forbid_unknown_fields=True):
    bank_content_id: int
    distance: Annotated[str, Meta(description="Present only for a key granted distances.")] | None = None


class RawLookupAnswer(Struct, forbid_unknown_fields=True):
    matches: list[int | MatchWithDistance]


class Distance(Struct, forbid_unknown_fields=True):
    distance: int


class IndexStatus(Struct, forbid_unknown_fields=True):
    present: bool
    built_to: Annotated[int, Meta(description="When the index was loaded (Unix time); -1 when not loaded.")]
    size: int
