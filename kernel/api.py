"""The declared field types every context's API types share: the text-field rule as a type, and the
error body. Pure (msgspec only): the contexts' request and response Structs are built from these, the
OpenAPI document states them, and ``kernel.routes`` decodes requests into them."""

from __future__ import annotations

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


class Error(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(description="Stable machine-readable code, e.g. unsupported_media_type.")]
    message: Annotated[str, msgspec.Meta(description="What went wrong, for people. Never contains a list entry's hash.")]


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: Error
