"""The declared field types every context's API types share: the text-field rule as a type, and the
error body. Pure (msgspec only): the contexts' request and response Structs are built from these, the
OpenAPI document states them, and ``kernel.routes`` decodes requests into them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

# A free-text field (content ids, urls, notes) is at most this many characters.
MAX_TEXT = 1024

# Not blank, no NUL anywhere (PostgreSQL text refuses NUL). Lone surrogates never reach a Struct:
# the JSON decoder refuses them. Linear to match, in Python and ECMA-262 alike.
NOT_BLANK = r"^\s*[^\s\x00][^\x00]*$"
NO_NUL = r"^[^\x00]*$"


def text(max_length: int = MAX_TEXT, description: str | None = None) -> msgspec.Meta:
    """The constraint of a required free-text field: not blank, no NUL, at most ``max_length`` characters."""
    return msgspec.Meta(min_length=1, max_length=max_length, pattern=NOT_BLANK, description=description)


def optional_text(max_length: int = MAX_TEXT, description: str | None = None) -> msgspec.Meta:
    """An optional free-text field: no NUL, at most ``max_length`` characters; blank reads as absent."""
    return msgspec.Meta(max_length=max_length, pattern=NO_NUL, description=description)


Text = Annotated[str, text()]
OptionalText = Annotated[str, optional_text()]


# The same rule with the pattern stated in the schema but checked by ``checked_text`` in the Struct's
# ``__post_init__``: on the hot path (1,000-item lookup batches) a regex per string costs about three
# times the rest of the decoding.
def fast_text(max_length: int = MAX_TEXT, description: str | None = None) -> msgspec.Meta:
    return msgspec.Meta(max_length=max_length, description=description, extra_json_schema={"minLength": 1, "pattern": NOT_BLANK})


def fast_optional_text(max_length: int = MAX_TEXT, description: str | None = None) -> msgspec.Meta:
    return msgspec.Meta(max_length=max_length, description=description, extra_json_schema={"pattern": NO_NUL})


def checked_text(name: str, value: str | None, *, required: bool) -> str | None:
    """``fast_text``'s check, for ``__post_init__``: trimmed, None when blank; ValueError (a 400 naming the
    place) for a NUL, or a blank required field."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError(f"the field {name!r} holds a NUL character")
    value = value.strip()
    if not value:
        if required:
            raise ValueError(f"the field {name!r} is required")  # read as a missing field by kernel.routes
        return None
    return value


def trimmed(value: str | None) -> str | None:
    """A text field as the server keeps it: trimmed, and None when blank."""
    if value is None:
        return None
    value = value.strip()
    return value or None


# The one rule for timestamps, in and out: zone-aware, and inside [EARLIEST, LATEST). The ends keep
# clear of what overflows: the driver stores 0001-01-01T00:00Z and 9999-12-31T23:59:59.999999Z as
# PostgreSQL's -infinity and infinity and reads them back as *naive* datetime.min/max, and adding a
# window (a due time, an appeal period) to a moment near year 9999 overflows Python's datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
MOMENT_RULE = "an ISO 8601 date-time with a UTC offset (e.g. 2026-01-31T12:00:00Z), from 1970-01-01 to before 9999-01-01"


def moment(description: str | None = None) -> msgspec.Meta:
    """The constraint of a timestamp field: zone-aware (msgspec refuses a naive one); the range is
    checked by ``checked_moment`` in the Struct's ``__post_init__`` (msgspec has no bounds for datetimes)."""
    return msgspec.Meta(tz=True, description=description or MOMENT_RULE)


Moment = Annotated[datetime, moment()]


def moment_problem(value: datetime) -> str | None:
    """Why ``value`` breaks the timestamp rule, or None when it keeps it."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "carries no time zone"
    try:
        inside = EARLIEST <= value < LATEST
    except OverflowError:  # an offset that pushes it past datetime's own range
        inside = False
    if not inside:
        return "lies outside 1970-01-01T00:00:00Z to 9999-01-01T00:00:00Z"
    return None


def checked_moment(name: str, value: datetime | None) -> datetime | None:
    """The timestamp rule, for ``__post_init__`` and the command line: the moment in UTC, or ValueError
    (a 400 naming the field) when it is naive or out of range."""
    if value is None:
        return None
    problem = moment_problem(value)
    if problem is not None:
        raise ValueError(f"the field {name!r} {problem}: give {MOMENT_RULE}")
    return value.astimezone(UTC)


def parse_moment(name: str, text: str, *, naive_is_utc: bool = False) -> datetime:
    """A timestamp written as text (command-line options, query parameters) under the same rule.
    ``naive_is_utc`` reads a bare date or a time without offset as UTC (the command line's habit);
    otherwise it is refused. ValueError names ``name``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 date or date-time: {text[:64]!r}") from None
    if value.tzinfo is None and naive_is_utc:
        value = value.replace(tzinfo=UTC)
    problem = moment_problem(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}: give {MOMENT_RULE}")
    return value.astimezone(UTC)


class Error(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(description="Stable machine-readable code, e.g. unsupported_media_type.")]
    message: Annotated[str, msgspec.Meta(description="What went wrong, for people. Never contains a list entry's hash.")]


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: Error
