"""The audit chain, pure: canonical text, links, and verification finding the first broken link."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kernel.audit import GENESIS, AuditEntry, StoredEntry, canonical, link, verify


def chain(n: int) -> list[StoredEntry]:
    rows, prev = [], GENESIS
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for seq in range(1, n + 1):
        entry = AuditEntry(
            seq=seq,
            at=start + timedelta(seconds=seq, microseconds=seq),
            actor="hg_abcdefgh",
            action="ticket.claimed",
            subject=f"ticket:{uuid.UUID(int=seq)}",
            before={"state": "open"},
            after={"state": "in_review", "due_at": start, "n": seq},
        )
        text = canonical(entry)
        rows.append(
            StoredEntry(
                seq=seq,
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                entry=text,
                prev_hash=prev,
                hash=link(prev, text),
            )
        )
        prev = rows[-1].hash
    return rows


def test_canonical_text_is_stable_and_independent_of_key_order_and_timezone() -> None:
    at = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    a = AuditEntry(seq=1, at=at, actor="x", action="y", subject="z", after={"b": 1, "a": "ü"})
    b = AuditEntry(seq=1, at=at.astimezone(UTC), actor="x", action="y", subject="z", after={"a": "ü", "b": 1})
    assert canonical(a) == canonical(b)
    assert canonical(a) == (
        '{"action":"y","actor":"x","after":{"a":"ü","b":1},"at":"2026-03-01T12:00:00.000000+00:00",'
        '"before":null,"seq":1,"subject":"z"}'
    )
    with pytest.raises(ValueError, match="timezone"):
        canonical(dataclasses.replace(a, at=datetime(2026, 1, 1)))
    with pytest.raises(TypeError):
        canonical(dataclasses.replace(a, after={"x": object()}))


def test_an_intact_chain_verifies() -> None:
    result = verify(chain(20))
    assert result.ok and result.checked == 20
    assert result.head == chain(20)[-1].hash
    assert verify([]).ok and verify([]).head == GENESIS


@pytest.mark.parametrize(
    ("seq", "edit", "reason"),
    [
        (7, lambda r: dataclasses.replace(r, entry=r.entry.replace("in_review", "dismissed")), "does not hash"),
        (7, lambda r: dataclasses.replace(r, actor="someone-else"), "actor column"),
        (7, lambda r: dataclasses.replace(r, at=r.at + timedelta(microseconds=1)), "at column"),
        (7, lambda r: dataclasses.replace(r, hash=bytes(32)), "does not hash"),
        (7, lambda r: dataclasses.replace(r, prev_hash=bytes(32)), "prev_hash"),
        (1, lambda r: dataclasses.replace(r, prev_hash=b"\x01" * 32), "prev_hash"),
    ],
)
def test_an_edit_is_found_at_the_first_broken_link(seq: int, edit, reason: str) -> None:  # type: ignore[no-untyped-def]
    rows = chain(12)
    rows[seq - 1] = edit(rows[seq - 1])
    result = verify(rows)
    assert not result.ok and result.broken is not None
    assert result.broken.seq == seq
    assert reason in result.broken.reason
    assert result.checked == seq - 1


def test_a_deleted_entry_is_found() -> None:
    rows = chain(10)
    del rows[4]
    result = verify(rows)
    assert result.broken is not None and result.broken.seq == 5 and "missing" in result.broken.reason
