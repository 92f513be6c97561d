"""The audit trail's chain: canonical JSON of an entry and SHA-256 links. Pure: storage is in ``pg``.

Each entry is serialised to one canonical JSON text (sorted keys, no whitespace, UTF-8) and
``hash = SHA-256(prev_hash || text)``; the first entry links to 32 zero bytes. The text itself is
stored, not re-derived from columns, so verification never depends on how PostgreSQL round-trips
JSON numbers or timestamps. Editing any stored entry, its columns, or removing one breaks the
chain at that entry; rewriting the whole tail consistently is possible only for someone who can
also disable the table's append-only trigger — publish ``head`` (e.g. in a daily report) to
anchor the chain outside the database.

Entries never hold a list entry's hash or a notifier's contact details: the log cannot be purged.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

GENESIS = bytes(32)

JsonObject = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One change: who (``actor``) did what (``action``) to what (``subject``), before and after."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: JsonObject | None = None
    after: JsonObject | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredEntry:
    """An audit_log row as read back."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    entry: str
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokenLink:
    seq: int
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Verification:
    checked: int
    head: bytes
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into an audit entry")


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: AuditEntry) -> str:
    """The one text that is hashed and stored for ``entry``."""
    document = {
        "seq": entry.seq,
        "at": _timestamp(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "before": entry.before,
        "after": entry.after,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)


def link(prev_hash: bytes, text: str) -> bytes:
    return hashlib.sha256(prev_hash + text.encode()).digest()


class ChainWalker:
    """Checks rows one at a time, in ``seq`` order, so a long log is verified without loading it whole."""

    def __init__(self) -> None:
        self._prev = GENESIS
        self._checked = 0
        self._broken: BrokenLink | None = None

    def feed(self, row: StoredEntry) -> bool:
        """Check the next row; False once the chain is broken (later rows need not be read)."""
        if self._broken is None:
            self._broken = _check(row, self._checked + 1, self._prev)
            if self._broken is None:
                self._prev = row.hash
                self._checked += 1
        return self._broken is None

    def result(self) -> Verification:
        return Verification(checked=self._checked, head=self._prev, broken=self._broken)


def verify(rows: Iterable[StoredEntry]) -> Verification:
    """Walk ``rows`` in ``seq`` order and report the first broken link, if any."""
    walker = ChainWalker()
    for row in rows:
        if not walker.feed(row):
            break
    return walker.result()


def _check(row: StoredEntry, expected: int, prev: bytes) -> BrokenLink | None:
    if row.seq != expected:
        return BrokenLink(seq=expected, reason=f"entry {expected} is missing (next stored entry is {row.seq})")
    if row.prev_hash != prev:
        return BrokenLink(seq=row.seq, reason="its prev_hash is not the hash of the entry before it")
    if link(row.prev_hash, row.entry) != row.hash:
        return BrokenLink(seq=row.seq, reason="its stored text does not hash to its stored hash (the entry was edited)")
    try:
        document = json.loads(row.entry)
    except ValueError:
        return BrokenLink(seq=row.seq, reason="its stored text is not JSON")
    columns = {"seq": row.seq, "at": _timestamp(row.at), "actor": row.actor, "action": row.action, "subject": row.subject}
    for name, value in columns.items():
        if document.get(name) != value:
            return BrokenLink(seq=row.seq, reason=f"its {name} column disagrees with the hashed entry (the row was edited)")
    return None
