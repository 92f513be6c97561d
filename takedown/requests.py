"""Validation of the JSON bodies staff and platforms send. Pure: bad input raises ``InvalidInput``
with a message that names the field, before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from takedown.errors import InvalidInput
from takedown.tickets import DecisionInput, Notice
from takedown.workflow import RESTRICTIONS, Action, Source, State

MAX_TEXT = 5000
MAX_SHORT = 1024
CONTENT_TYPES = frozenset({"image", "video", "audio", "text", "other"})
GROUNDS = frozenset({"illegal_content", "incompatible_content"})


def _object(body: object, what: str = "the body") -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str, *, required: bool = False, limit: int = MAX_SHORT) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"the field {name!r} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"the field {name!r} must be a string")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it here, not with a 500 later
        raise InvalidInput(f"the field {name!r} contains a NUL character")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"the field {name!r} is longer than {limit} characters")
    return value


def _choice(body: Mapping[str, Any], name: str, choices: type[Source] | type[State] | type[Action], *, required: bool) -> Any:
    raw = _text(body, name, required=required)
    if raw is None:
        return None
    try:
        return choices(raw)
    except ValueError:
        raise InvalidInput(f"{name!r} must be one of: {', '.join(c.value for c in choices)}") from None


def _timestamp(body: Mapping[str, Any], name: str) -> datetime | None:
    raw = _text(body, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name!r} must be an ISO 8601 timestamp with a UTC offset") from None
    if value.tzinfo is None:
        raise InvalidInput(f"{name!r} must carry a UTC offset, e.g. 2026-01-31T12:00:00+00:00")
    return value


def parse_notice(body: object) -> Notice:
    """A notice that is not a hash match. Notifier contact is optional (CSAM notices may be anonymous)."""
    data = _object(body)
    source = _choice(data, "source", Source, required=True)
    if source is Source.HASH_MATCH:
        raise InvalidInput("hash matches open tickets through /v1/scan and /v1/lookup, not as notices")
    notifier = data.get("notifier")
    if notifier is not None:
        notifier = _object(notifier, "'notifier'")
    authority = data.get("authority")
    if source is Source.AUTHORITY_ORDER:
        authority = _object(authority, "'authority' (name, reference and deadline of the order)")
    elif authority is not None:
        raise InvalidInput("'authority' is only for notices with source 'authority_order'")
    content_type = _text(data, "content_type")
    if content_type is not None and content_type not in CONTENT_TYPES:
        raise InvalidInput(f"'content_type' must be one of: {', '.join(sorted(CONTENT_TYPES))}")
    bona_fide = data.get("bona_fide", False)
    if not isinstance(bona_fide, bool):
        raise InvalidInput("'bona_fide' must be true or false")
    return Notice(
        source=source,
        content_id=_text(data, "content_id", required=True) or "",
        content_url=_text(data, "content_url"),
        explanation=_text(data, "explanation", required=source is not Source.AUTHORITY_ORDER, limit=MAX_TEXT),
        content_type=content_type,
        notifier_name=_text(notifier, "name") if notifier else None,
        notifier_email=_text(notifier, "email") if notifier else None,
        authority=_text(authority, "name", required=True) if authority else None,
        authority_reference=_text(authority, "reference", required=True) if authority else None,
        legal_deadline=_timestamp(authority, "deadline") if authority else None,
        bona_fide=bona_fide,
    )


def parse_decision(body: object) -> DecisionInput:
    """``{"decision": "actioned"|"dismissed"|"reinstated"|"upheld", "action", "ground", "legal_ground", "explanation"}``."""
    data = _object(body)
    to = _choice(data, "decision", State, required=True)
    action = _choice(data, "action", Action, required=False)
    ground = _text(data, "ground")
    if ground is not None and ground not in GROUNDS:
        raise InvalidInput(f"'ground' must be one of: {', '.join(sorted(GROUNDS))}")
    if to is State.ACTIONED:
        action = action or Action.REMOVE
        if action not in RESTRICTIONS:
            raise InvalidInput(f"'action' must be one of: {', '.join(sorted(a.value for a in RESTRICTIONS))}")
    elif action is not None:
        raise InvalidInput("'action' is given only with the decision 'actioned'")
    explanation = _text(data, "explanation", required=True, limit=MAX_TEXT)
    return DecisionInput(
        to=to, action=action, ground=ground, legal_ground=_text(data, "legal_ground", limit=500), explanation=explanation
    )


def parse_reason(body: object, name: str = "explanation", *, required: bool = True) -> str | None:
    """The free-text reason of an appeal, a release or a close."""
    return _text(_object(body), name, required=required, limit=MAX_TEXT)


def parse_report(body: object) -> tuple[str, str | None]:
    """``{"hotline": "NCMEC", "reference": "<report id>"}``: where the ticket was reported."""
    data = _object(body)
    return _text(data, "hotline", required=True) or "", _text(data, "reference")
