"""The ticket state machine: every allowed move, every refused one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from takedown.errors import InvalidTransition
from takedown.tickets import Ticket
from takedown.workflow import (
    APPEALABLE,
    FINISHED,
    HUMAN_DECISIONS,
    NEEDS_REVIEW,
    PRIORITY,
    TRANSITIONS,
    Source,
    State,
    due_at,
    transition,
)
from tests.unit.ticket_values import a_ticket

# The machine, written out independently of the code: a change to either must be deliberate.
EXPECTED = {
    ("open", "in_review"),
    ("open", "actioned"),  # automated policy only
    ("in_review", "open"),
    ("in_review", "actioned"),
    ("in_review", "dismissed"),
    ("actioned", "reported"),
    ("actioned", "appealed"),
    ("actioned", "closed"),
    ("reported", "appealed"),
    ("reported", "closed"),
    ("appealed", "reinstated"),
    ("appealed", "upheld"),
    ("upheld", "reported"),
    ("upheld", "closed"),
    ("dismissed", "closed"),
    ("reinstated", "closed"),
}
ALL_PAIRS = [(a, b) for a in State for b in State]


def test_the_machine_is_exactly_the_expected_one() -> None:
    assert {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets} == EXPECTED
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("current", "to"), [p for p in ALL_PAIRS if (p[0].value, p[1].value) in EXPECTED])
def test_allowed_transition(current: State, to: State) -> None:
    assert transition(current, to) is to


@pytest.mark.parametrize(("current", "to"), [p for p in ALL_PAIRS if (p[0].value, p[1].value) not in EXPECTED])
def test_refused_transition(current: State, to: State) -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(current, to)
    assert caught.value.status == 409
    assert caught.value.from_ == current.value and caught.value.to == to.value
    assert current.value in caught.value.message and to.value in caught.value.message


def test_closed_is_terminal_and_every_other_state_can_reach_it() -> None:
    assert TRANSITIONS[State.CLOSED] == frozenset()
    for start in State:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert State.CLOSED in seen, start


def test_state_groups_agree_with_the_machine() -> None:
    for state, decisions in HUMAN_DECISIONS.items():
        assert decisions <= TRANSITIONS[state]
    assert all(State.APPEALED in TRANSITIONS[s] for s in APPEALABLE)
    assert FINISHED.isdisjoint(NEEDS_REVIEW)
    assert set(PRIORITY) == set(Source)


def test_due_time_is_the_window_or_an_earlier_legal_deadline() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert due_at(now, 24) == now + timedelta(hours=24)
    assert due_at(now, 24, now + timedelta(hours=3)) == now + timedelta(hours=3)
    assert due_at(now, 1, now + timedelta(hours=3)) == now + timedelta(hours=1)


def ticket(state: State, due: datetime) -> Ticket:
    return a_ticket(state, received_at=due - timedelta(hours=24), due_at=due, updated_at=due)


def test_overdue_means_a_decision_is_owed_and_its_due_time_has_passed() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert ticket(State.OPEN, now - timedelta(seconds=1)).overdue(now)
    assert not ticket(State.ACTIONED, now - timedelta(days=1)).overdue(now)
    assert not ticket(State.OPEN, now + timedelta(seconds=1)).overdue(now)
