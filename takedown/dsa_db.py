"""Statements of reasons for the DSA Transparency Database (Art 24(5)). Pure: the mapping from our
statement to the database's JSON, its validation against the schema we ship, the rate limit, and
what each answer of the database means. The sending is ``takedown.dsa_jobs``'; the outbox rows
``takedown.dsa_store``'.

Facts (domain notes §3.3, read from the database's published API documentation and validation
rules): ``POST /api/v1/statements`` takes ``{"statements": [...]}``, 1 to 100 at a time, and
answers 201 with the created statements (each with its ``uuid`` and our ``puid``), or 422 with
``errors``: per statement (``statement_<index>``: field -> messages) when one is invalid, or
``puid`` and ``existing_puids`` when some puids are already held — then nothing in the call was
stored. ``GET /api/v1/statement/existing-puid/{puid}`` answers 302 with the statement it holds,
404 when none. Calls are limited per user to 200 a second and 12,000 a minute.

Idempotency is by ``puid``: ours is the ticket id (one statement per restriction, one restriction
per ticket), so a statement whose answer was lost is found, not filed twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from takedown.webhooks import is_loopback_url

MAX_BATCH = 100
STATEMENTS_PATH = "/api/v1/statements"
EXISTING_PUID_PATH = "/api/v1/statement/existing-puid/{puid}"
SCHEMA_FILE = "dsa_statement.schema.json"

# The database's floors for its two dates (its validation rules).
_EARLIEST_CONTENT = date(2000, 1, 1)
_EARLIEST_APPLICATION = date(2020, 1, 1)


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema hashguard ships for one statement (takedown/schemas/dsa_statement.schema.json)."""
    loaded: dict[str, Any] = json.loads(resources.files("takedown").joinpath("schemas", SCHEMA_FILE).read_text("utf-8"))
    return loaded


@cache
def _validator() -> Any:
    return jsonschema_rs.validator_for(schema())


def to_wire(statement: Mapping[str, Any], *, territorial_scope: Sequence[str]) -> dict[str, Any]:
    """The database's JSON for one of our statements (``takedown.reasons.statement``'s output).

    ``reasons`` already holds the database's names for the decision (its ``transparency_database``
    part); this adds where the restriction applies and drops nothing. Never personal data: the
    statement's wire part names neither the uploader nor the notifier, nor the list that matched.
    """
    wire = dict(statement["transparency_database"])
    if territorial_scope:
        wire["territorial_scope"] = sorted({c.upper() for c in territorial_scope})
    if wire.get("source_type") == "SOURCE_VOLUNTARY":
        wire.pop("source_identity", None)  # the database ignores it for own-initiative statements
    return wire


def problems(wire: Mapping[str, Any]) -> dict[str, list[str]]:
    """What is wrong with a statement before it is sent, by field ('' for the statement as a whole),
    in the shape the database uses for its own ``errors``; empty when it may be sent."""
    found: dict[str, list[str]] = {}
    for error in _validator().iter_errors(dict(wire)):
        path = "/".join(str(p) for p in error.instance_path)
        found.setdefault(path, []).append(error.message)
    for name, floor in (("content_date", _EARLIEST_CONTENT), ("application_date", _EARLIEST_APPLICATION)):
        raw = wire.get(name)
        if isinstance(raw, str) and name not in found:
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                found.setdefault(name, []).append(f"{raw!r} is not a date")
                continue
            if day < floor:
                found.setdefault(name, []).append(f"must be on or after {floor.isoformat()}")
    return found


class Outcome(StrEnum):
    """What became of one statement after an answer (the ``outcome`` label of the submissions metric)."""

    SUBMITTED = "submitted"  # the database created it now
    ALREADY_PRESENT = "already_present"  # it held the puid already (an earlier attempt whose answer was lost)
    REJECTED = "rejected"  # a validation error: terminal, kept with the errors, needs a person
    RETRY = "retry"  # not stored (the call failed, or another statement in the batch held it back)


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The fate of each statement of one batch call, by puid."""

    outcome: dict[str, Outcome] = field(default_factory=dict)
    db_uuid: dict[str, str] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Whether the statements to retry should wait (the call failed) or go at once (the batch was
    # only held back by others in it, which are now settled).
    backoff: bool = True
    retry_after_s: float | None = None
    error: str | None = None  # one line for the log and the row, for a failed call


def _body_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def batch_verdict(puids: Sequence[str], status: int | None, body: bytes, retry_after: str | None = None) -> Verdict:
    """Read the answer to ``POST /api/v1/statements`` for statements ``puids`` (in the order sent).

    ``status`` None: no answer (timeout, dropped connection). Anything but a 201 or a readable 422
    leaves every statement to retry: the database says a statement not answered 201 is not stored.
    """
    if status == 201:
        parsed = _body_json(body)
        created = parsed.get("statements") if isinstance(parsed, dict) else None
        uuids = {
            str(s.get("puid")): str(s.get("uuid"))
            for s in (created if isinstance(created, list) else [])
            if isinstance(s, dict) and s.get("uuid")
        }
        return Verdict(outcome=dict.fromkeys(puids, Outcome.SUBMITTED), db_uuid={p: uuids[p] for p in puids if p in uuids})
    if status == 422:
        parsed = _body_json(body)
        errors = parsed.get("errors") if isinstance(parsed, dict) else None
        if isinstance(errors, dict):
            return _rejection(puids, errors)
    wait: float | None = None
    if status == 429 and retry_after:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = None
    if status is None:
        error = "no answer from the Transparency Database"
    elif status in (401, 403):
        error = f"the Transparency Database refused the token (HTTP {status}): check HASHGUARD_DSA_DB_TOKEN"
    else:
        error = f"the Transparency Database answered HTTP {status}"
    return Verdict(outcome=dict.fromkeys(puids, Outcome.RETRY), retry_after_s=wait, error=error)


def _rejection(puids: Sequence[str], errors: Mapping[str, Any]) -> Verdict:
    """A 422: nothing in the call was stored. Statements it names as held are done; statements it
    names as invalid are rejected with their errors; the rest go again at once without them."""
    existing = errors.get("existing_puids")
    if isinstance(existing, list):
        held = {str(p) for p in existing}
        return Verdict(
            outcome={p: Outcome.ALREADY_PRESENT if p in held else Outcome.RETRY for p in puids},
            backoff=False,
            error="some statements were already in the database",
        )
    per_statement = {
        int(key.removeprefix("statement_")): value
        for key, value in errors.items()
        if key.startswith("statement_") and key.removeprefix("statement_").isdigit() and isinstance(value, dict)
    }
    if per_statement:
        outcome: dict[str, Outcome] = {}
        rejected: dict[str, dict[str, Any]] = {}
        for index, puid in enumerate(puids):
            if index in per_statement:
                outcome[puid] = Outcome.REJECTED
                rejected[puid] = per_statement[index]
            else:
                outcome[puid] = Outcome.RETRY
        return Verdict(outcome=outcome, errors=rejected, backoff=False, error="the Transparency Database rejected statements")
    # A rejection of the call as a whole (e.g. duplicate puids within it, which our unique puids
    # rule out): with one statement it is that statement's; with more none can be blamed, so all wait.
    if len(puids) == 1:
        return Verdict(outcome={puids[0]: Outcome.REJECTED}, errors={puids[0]: dict(errors)}, error="rejected")
    return Verdict(
        outcome=dict.fromkeys(puids, Outcome.RETRY), error=f"the batch was rejected as a whole: {json.dumps(errors)[:300]}"
    )


class TokenBucket:
    """At most ``limit`` calls in any window of ``per`` seconds, bursts up to ``burst``.

    A plain bucket refilling at limit/per with room for ``burst`` lets burst + limit through in
    one window; this one refills at (limit - burst)/per, so no window (sliding, not only the
    clock's seconds and minutes) ever holds more than ``limit``. The caller passes the clock
    (monotonic seconds), so tests drive it without sleeping.
    """

    def __init__(self, *, limit: float, per: float, burst: float | None = None, now: float = 0.0) -> None:
        if limit <= 0 or per <= 0:
            raise ValueError("limit and period must be positive")
        self._capacity = max(1.0, limit / 10 if burst is None else burst)
        if self._capacity >= limit:
            self._capacity = max(1.0, limit / 2)
        self._fill_per_s = (limit - self._capacity) / per if limit > self._capacity else limit / per
        self._tokens = self._capacity
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._fill_per_s)
            self._at = now

    def wait_s(self, now: float) -> float:
        """How long until one call may go (0: now)."""
        self._refill(now)
        # The epsilon keeps float rounding from leaving a bucket a hair short of a token for ever.
        return 0.0 if self._tokens >= 1 - 1e-9 else (1 - self._tokens) / self._fill_per_s

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1


class RateLimit:
    """The database's two limits at once: a call goes only when both buckets have room."""

    def __init__(self, *, per_second: float, per_minute: float, now: float = 0.0) -> None:
        self._buckets = (
            TokenBucket(limit=per_second, per=1.0, now=now),
            TokenBucket(limit=per_minute, per=60.0, now=now),
        )

    def wait_s(self, now: float) -> float:
        return max(b.wait_s(now) for b in self._buckets)

    def take(self, now: float) -> None:
        for b in self._buckets:
            b.take(now)


def dsa_settings_problem(url: str | None, token: str | None) -> str | None:
    """Why HASHGUARD_DSA_DB_URL / _TOKEN cannot be used, in one line; None when they can (or are unset)."""
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        return "HASHGUARD_DSA_DB_URL must be an http(s) URL"
    if url.startswith("http://") and not is_loopback_url(url):
        return "HASHGUARD_DSA_DB_URL must use https outside loopback (the token would travel in clear)"
    if not token:
        return "HASHGUARD_DSA_DB_URL is set but HASHGUARD_DSA_DB_TOKEN is not"
    return None
