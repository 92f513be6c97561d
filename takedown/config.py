"""The takedown context's configuration, built from ``Settings`` by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from takedown.workflow import Source

# The EU and EEA countries the DSA Transparency Database accepts in ``territorial_scope``.
EEA_COUNTRIES: tuple[str, ...] = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI",
    "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip

# Default decision windows per source, in hours (domain notes §6). Known-hash matches: US law asks
# for a report "as soon as reasonably possible" and UK-style P1 work runs in minutes to an hour;
# authority orders: an Australian removal notice gives 24 h; hotlines re-send every 24 h until the
# content is gone; trusted flaggers come before users (DSA Art 22); user notices: "timely", no fixed
# hours in law, so an internal SLA (the INHOPE average to removal is 2.5 days).
DEFAULT_DUE_HOURS: Mapping[Source, float] = {
    Source.HASH_MATCH: 1.0,
    Source.AUTHORITY_ORDER: 24.0,
    Source.HOTLINE: 24.0,
    Source.TRUSTED_FLAGGER: 24.0,
    Source.USER_REPORT: 72.0,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class TakedownConfig:
    due_hours: Mapping[Source, float] = field(default_factory=lambda: dict(DEFAULT_DUE_HOURS))
    lease_s: float = 900.0
    appeal_window_days: int = 183
    retention_days: int = 365
    # Where restrictions apply, as told to the DSA Transparency Database (EU/EEA country codes).
    dsa_territorial_scope: tuple[str, ...] = EEA_COUNTRIES
