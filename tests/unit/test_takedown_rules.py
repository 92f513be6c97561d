"""The takedown rules, without a database: leases, assignment, who decides, the windows, effects, auto-action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detector.match import Match
from kernel.keys import Role
from takedown import rules
from takedown.errors import AppealWindowClosed, InvalidTransition, NotLeaseHolder, SameReviewer
from takedown.rules import Policy
from takedown.tickets import Actor, DecisionInput, Ticket
from takedown.workflow import HUMAN_DECISIONS, Action, State
from tests.unit.ticket_values import a_ticket

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ALICE = Actor(key_id=1, name="alice")
BOB = Actor(key_id=2, name="bob")
WINDOW_DAYS = 183


def ticket(state: State, **kw: object) -> Ticket:
    return a_ticket(state, received_at=NOW - timedelta(hours=1), due_at=NOW + timedelta(hours=1), updated_at=NOW, **kw)


def leased(state: State, to: Actor, *, expires_in: timedelta = timedelta(minutes=10), **kw: object) -> Ticket:
    return ticket(state, lease_key_id=to.key_id, lease_key_prefix=to.name, lease_expires_at=NOW + expires_in, **kw)


def match(hashset: str = "verified", tool: str = "pdq", *, quarantined: bool = False) -> Match:
    return Match(
        entry_row=1,
        hashset=hashset,
        hashset_version=1,
        entry_id="e-1",
        tool=tool,
        tool_version="1",
        distance=0,
        quarantined=quarantined,
    )


# ---------------------------------------------------------------- leases and assignment


def test_a_lease_is_held_by_its_key_until_it_expires() -> None:
    assert rules.holds_lease(leased(State.IN_REVIEW, ALICE), ALICE, NOW)
    assert not rules.holds_lease(leased(State.IN_REVIEW, ALICE), BOB, NOW)
    assert not rules.holds_lease(leased(State.IN_REVIEW, ALICE, expires_in=timedelta(0)), ALICE, NOW)
    assert not rules.holds_lease(leased(State.IN_REVIEW, ALICE), Actor(key_id=None, name="system"), NOW)


def test_a_claim_moves_an_open_ticket_to_review_and_leaves_an_appeal_as_it_is() -> None:
    assert rules.claimed_state(State.OPEN) is State.IN_REVIEW
    assert rules.claimed_state(State.IN_REVIEW) is State.IN_REVIEW
    assert rules.claimed_state(State.APPEALED) is State.APPEALED
    assert rules.released_state(State.IN_REVIEW) is State.OPEN
    assert rules.released_state(State.APPEALED) is State.APPEALED


def test_only_the_holder_or_a_lead_releases_a_claimed_ticket() -> None:
    held = leased(State.IN_REVIEW, ALICE)
    assert rules.release(held, ALICE, NOW, override=False) is State.OPEN
    with pytest.raises(NotLeaseHolder, match="only the reviewer holding"):
        rules.release(held, BOB, NOW, override=False)
    assert rules.release(held, BOB, NOW, override=True) is State.OPEN
    assert rules.release(leased(State.APPEALED, ALICE), ALICE, NOW, override=False) is State.APPEALED
    with pytest.raises(InvalidTransition, match="not claimed"):
        rules.release(ticket(State.IN_REVIEW), ALICE, NOW, override=True)
    with pytest.raises(InvalidTransition, match="not claimed"):
        rules.release(leased(State.ACTIONED, ALICE), ALICE, NOW, override=True)


def test_tickets_go_only_to_reviewers_and_leads() -> None:
    assert {r for r in Role if rules.may_be_assigned(r)} == {Role.REVIEWER, Role.LEAD}


def test_assignment_needs_a_ticket_awaiting_a_decision_and_keeps_appeals_from_their_decider() -> None:
    assert rules.assign(ticket(State.OPEN), 2) is State.IN_REVIEW
    appeal = ticket(State.APPEALED, decided_key_id=ALICE.key_id)
    assert rules.assign(appeal, 2) is State.APPEALED
    with pytest.raises(SameReviewer, match="cannot go to the reviewer who made the decision"):
        rules.assign(appeal, 1)
    # A decided ticket that still takes a report or a close can be handed over for that, its state kept.
    assert rules.assign(ticket(State.ACTIONED), 2) is State.ACTIONED
    with pytest.raises(InvalidTransition, match="only a ticket that awaits a decision"):
        rules.assign(ticket(State.CLOSED), 2)


# ---------------------------------------------------------------- decisions and windows


def test_a_person_decides_only_what_the_state_takes_on_a_ticket_they_hold() -> None:
    for state, allowed in HUMAN_DECISIONS.items():
        for to in allowed:
            rules.check_decision(leased(state, ALICE), to, ALICE, NOW, override=False)
    with pytest.raises(InvalidTransition, match="takes one of: actioned, dismissed"):
        rules.check_decision(leased(State.IN_REVIEW, ALICE), State.CLOSED, ALICE, NOW, override=False)
    with pytest.raises(InvalidTransition, match=r"awaits no decision: claim it first \(POST /v1/queue/claim\)"):
        rules.check_decision(ticket(State.OPEN), State.ACTIONED, ALICE, NOW, override=True)
    with pytest.raises(InvalidTransition, match=r"awaits no decision$"):
        rules.check_decision(ticket(State.ACTIONED), State.DISMISSED, ALICE, NOW, override=True)
    with pytest.raises(NotLeaseHolder):
        rules.check_decision(leased(State.IN_REVIEW, ALICE), State.DISMISSED, BOB, NOW, override=False)
    rules.check_decision(leased(State.IN_REVIEW, ALICE), State.DISMISSED, BOB, NOW, override=True)


def test_an_appeal_is_never_decided_by_the_decider_even_with_an_override() -> None:
    appeal = leased(State.APPEALED, ALICE, decided_key_id=ALICE.key_id)
    with pytest.raises(SameReviewer):
        rules.check_decision(appeal, State.UPHELD, ALICE, NOW, override=True)
    rules.check_decision(leased(State.APPEALED, BOB, decided_key_id=ALICE.key_id), State.UPHELD, BOB, NOW, override=False)


def test_appeals_only_within_the_window_and_only_against_a_restriction() -> None:
    decided = NOW - timedelta(days=WINDOW_DAYS)
    rules.check_appeal(ticket(State.ACTIONED, decided_at=decided), NOW, WINDOW_DAYS)  # the last moment
    rules.check_appeal(ticket(State.REPORTED, decided_at=decided), NOW, WINDOW_DAYS)
    with pytest.raises(AppealWindowClosed, match="closed at"):
        rules.check_appeal(ticket(State.ACTIONED, decided_at=decided - timedelta(seconds=1)), NOW, WINDOW_DAYS)
    with pytest.raises(InvalidTransition):
        rules.check_appeal(ticket(State.DISMISSED, decided_at=NOW), NOW, WINDOW_DAYS)


def test_a_restriction_closes_only_after_its_appeal_window() -> None:
    decided = NOW - timedelta(days=WINDOW_DAYS)
    with pytest.raises(InvalidTransition, match="the uploader may appeal until"):
        rules.check_close(leased(State.ACTIONED, ALICE, decided_at=decided), ALICE, NOW, WINDOW_DAYS, override=False)
    rules.check_close(
        leased(State.ACTIONED, ALICE, decided_at=decided - timedelta(seconds=1)), ALICE, NOW, WINDOW_DAYS, override=False
    )
    rules.check_close(
        leased(State.DISMISSED, ALICE, decided_at=NOW), ALICE, NOW, WINDOW_DAYS, override=False
    )  # nothing to appeal
    rules.check_close(leased(State.UPHELD, ALICE, decided_at=NOW), ALICE, NOW, WINDOW_DAYS, override=False)


def test_close_and_report_need_the_lease_like_every_reviewer_action() -> None:
    # Finding 11: a second reviewer closed another's ticket and reported one it never held.
    for state in (State.DISMISSED, State.UPHELD):
        with pytest.raises(NotLeaseHolder):
            rules.check_close(leased(state, ALICE, decided_at=NOW), BOB, NOW, WINDOW_DAYS, override=False)
        with pytest.raises(NotLeaseHolder):  # nobody holds it
            rules.check_close(ticket(state, decided_at=NOW), BOB, NOW, WINDOW_DAYS, override=False)
        with pytest.raises(NotLeaseHolder):  # a lease that ran out is no lease
            rules.check_close(
                leased(state, ALICE, expires_in=-timedelta(seconds=1), decided_at=NOW), ALICE, NOW, WINDOW_DAYS, override=False
            )
        rules.check_close(ticket(state, decided_at=NOW), BOB, NOW, WINDOW_DAYS, override=True)  # a lead
    for state in (State.ACTIONED, State.UPHELD):
        rules.check_report(leased(state, ALICE), ALICE, NOW, override=False)
        with pytest.raises(NotLeaseHolder):
            rules.check_report(leased(state, ALICE), BOB, NOW, override=False)
        with pytest.raises(NotLeaseHolder):
            rules.check_report(ticket(state), BOB, NOW, override=False)
        rules.check_report(ticket(state), BOB, NOW, override=True)
    # A move the state machine refuses is refused as such, whoever asks.
    with pytest.raises(InvalidTransition):
        rules.check_report(leased(State.DISMISSED, ALICE), BOB, NOW, override=False)
    with pytest.raises(InvalidTransition):
        rules.check_close(leased(State.IN_REVIEW, ALICE), BOB, NOW, WINDOW_DAYS, override=False)
    # A person's decision into a follow-up state keeps the ticket leased to them; an appeal does not.
    assert rules.lease_after(State.ACTIONED, ALICE) and rules.lease_after(State.DISMISSED, ALICE)
    assert not rules.lease_after(State.APPEALED, ALICE) and not rules.lease_after(State.CLOSED, ALICE)
    assert not rules.lease_after(State.ACTIONED, Actor(key_id=None, name="system"))


def test_what_each_decision_sets_in_motion() -> None:
    actioned = rules.effects(ticket(State.IN_REVIEW), DecisionInput(to=State.ACTIONED, action=Action.BLOCK), 365)
    assert (actioned.to, actioned.in_force, actioned.primary, actioned.preserve_days, actioned.platform_action) == (
        State.ACTIONED,
        Action.BLOCK,
        True,
        365,
        Action.BLOCK,
    )
    dismissed = rules.effects(ticket(State.IN_REVIEW), DecisionInput(to=State.DISMISSED), 365)
    assert (dismissed.in_force, dismissed.primary, dismissed.platform_action) == (None, True, None)
    appealed = rules.effects(ticket(State.ACTIONED, action=Action.REMOVE), DecisionInput(to=State.APPEALED), 365)
    assert (appealed.in_force, appealed.primary, appealed.preserve_days, appealed.platform_action) == (
        Action.REMOVE,
        False,
        None,
        None,
    )
    reinstated = rules.effects(ticket(State.APPEALED, action=Action.REMOVE), DecisionInput(to=State.REINSTATED), 30)
    assert (reinstated.in_force, reinstated.preserve_days, reinstated.platform_action) == (None, 30, Action.REINSTATE)
    nothing_to_undo = rules.effects(ticket(State.APPEALED), DecisionInput(to=State.REINSTATED), 30)
    assert nothing_to_undo.platform_action is None
    with pytest.raises(InvalidTransition):
        rules.effects(ticket(State.CLOSED), DecisionInput(to=State.OPEN), 365)


# ---------------------------------------------------------------- automated action


def test_the_most_severe_matching_auto_action_policy_wins() -> None:
    policies = [
        Policy(hashset="verified", tool="*", auto_action=True, action=Action.RESTRICT),
        Policy(hashset="verified", tool="pdq", auto_action=True, action=Action.BLOCK),
        Policy(hashset="other", tool="*", auto_action=True, action=Action.REMOVE),
    ]
    assert rules.auto_action(State.OPEN, [match()], policies) is Action.BLOCK
    assert rules.auto_action(State.OPEN, [match(tool="md5")], policies) is Action.RESTRICT
    assert rules.auto_action(State.OPEN, [match(), match("other")], policies) is Action.REMOVE
    assert rules.auto_action(State.OPEN, [match("unlisted")], policies) is None


def test_no_auto_action_under_review_policies_for_a_decided_ticket_or_a_quarantined_entry() -> None:
    review = [Policy(hashset="verified", tool="*", auto_action=False, action=Action.REMOVE)]
    assert rules.auto_action(State.OPEN, [match()], review) is None
    auto = [Policy(hashset="verified", tool="*", auto_action=True, action=Action.REMOVE)]
    assert rules.auto_action(State.IN_REVIEW, [match()], auto) is None
    assert not rules.may_act_automatically(State.OPEN, [match(), match(quarantined=True)])
    assert rules.auto_action(State.OPEN, [match(), match(quarantined=True)], auto) is None


def test_policies_are_fetched_by_the_matches_lists_and_tools() -> None:
    assert rules.policy_hashsets_and_tools([match("b", "pdq"), match("a", "md5"), match("b", "md5")]) == (
        ["a", "b"],
        ["md5", "pdq"],
    )
    decision = rules.automated_restriction(Action.REMOVE)
    assert (decision.to, decision.action, decision.ground) == (State.ACTIONED, Action.REMOVE, "illegal_content")
