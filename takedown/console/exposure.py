"""No-view by default: the rules for showing a person a preview of material. Pure.

hashguard never needs anyone to look: a known-hash match is decided on its evidence. A preview is
offered only where the platform supplied one, only on request, one item at a time, and starts
blurred and greyscale; each further step is another request. Every step is recorded, and the
first step on an item counts against the person's daily limit (``HASHGUARD_EXPOSURE_LIMIT``,
plus what a lead granted that day, itself recorded). A person may turn previews off entirely.

Blur and greyscale alone have not been found to spare moderators harm; the no-view path and the
limit are the protection, the filters a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from takedown.errors import TakedownError

# The filter each step shows (CSS), from the most obscured to greyscale without blur.
STEP_FILTERS: dict[int, str] = {
    1: "blur(24px) grayscale(1)",
    2: "blur(8px) grayscale(1)",
    3: "grayscale(1)",
}
LAST_STEP = max(STEP_FILTERS)


class ExposureRefused(TakedownError):
    """This preview cannot be shown."""

    status = 403
    code = "exposure_refused"


class ExposureLimitReached(ExposureRefused):
    """Today's limit of previews for this person is reached; a lead can grant more (recorded)."""

    code = "exposure_limit_reached"


@dataclass(frozen=True, kw_only=True, slots=True)
class Allowance:
    """How many items a person may still reveal today."""

    limit: int
    granted: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit + self.granted - self.used)


def check_reveal(*, step: int, shown_before: int, allowance: Allowance, previews_off: bool) -> bool:
    """Whether this step may be shown; raises when it may not. Returns whether it counts against the limit.

    ``shown_before`` is the highest step this person already saw of this item (0: none). Steps go
    one at a time: a request for a step further than the next is refused.
    """
    if previews_off:
        raise ExposureRefused("previews are turned off in your settings")
    if step not in STEP_FILTERS:
        raise ExposureRefused(f"a reveal step is 1 to {LAST_STEP}")
    if step > shown_before + 1:
        raise ExposureRefused("previews are revealed one step at a time")
    counts = shown_before == 0
    if counts and allowance.remaining <= 0:
        raise ExposureLimitReached()
    return counts


def break_due(stretch_started_at: datetime, now: datetime, break_min: float) -> bool:
    """Whether the person has reviewed without a pause for at least ``break_min`` minutes."""
    return now - stretch_started_at >= timedelta(minutes=break_min)


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def preview_url_problem(url: str) -> str | None:
    """Why a platform's preview URL cannot be offered, or None: https (http only on loopback, for
    trials), a host, no credentials in it. The console shows it only on request and never fetches it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "the preview URL is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "the preview URL must be an https URL with a host"
    if parts.scheme == "http" and host not in _LOOPBACK:
        return "the preview URL must use https (http only on loopback)"
    if parts.username or parts.password:
        return "the preview URL must not carry credentials"
    return None
