"""Who may claim, release, assign, decide, appeal and close a ticket, and what a decision sets in motion. Pure.

The storage modules fetch the locked ticket and the clock, ask a rule here, and store what it
answers; a rule that refuses raises the takedown error the API reports, before anything is
written. ``workflow.transition`` stays the one gate every state change passes; these rules add
what the state machine alone cannot say (leases, the four-eyes rule on appeals, windows, policies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from detector.match import Match
from kernel.keys import Role
from takedown.errors import AppealWindowClosed, InvalidTransition, NotLeaseHolder, SameReviewer
from takedown.reasons import appeal_deadline
from takedown.tickets import Actor, DecisionInput, Ticket
from takedown.workflow import APPEALABLE, HUMAN_DECISIONS, NEEDS_REVIEW, RESTRICTIONS, Action, State, transition

# Which restriction wins when several auto_action policies match one upload.
SEVERITY = (Action.REMOVE, Action.BLOCK, Action.RESTRICT)

# Roles a lead may hand a ticket to.
ASSIGNABLE_ROLES = frozenset({Role.REVIEWER, Role.LEAD})

# Decided states that still take a person's action (a hotline report, a close): a person's decision
# into one of these leaves the ticket leased to that person, so they can report or close it next.
FOLLOW_UP = frozenset({State.ACTIONED, State.REPORTED, State.UPHELD, State.DISMISSED, State.REINSTATED})

# The decision taken, without a reviewer, when a match falls under an auto_action policy.
AUTOMATED_RESTRICTION_EXPLANATION = "Matched a vetted list of known material whose policy allows automated action."


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """A list's (and tool's, or '*' for any) takedown policy: automated action, or human review."""

    hashset: str
    tool: str
    auto_action: bool
    action: Action


@dataclass(frozen=True, kw_only=True, slots=True)
class Effects:
    """What a permitted decision writes besides the new state."""

    to: State
    in_force: Action | None  # the restriction in force afterwards
    primary: bool  # the actioned/dismissed decision: the one an appeal is checked against
    preserve_days: int | None  # restart the evidence preservation clock by this many days (None: leave it)
    platform_action: Action | None  # what the platform's webhook is asked to do, if anything


# ---------------------------------------------------------------- leases


def holds_lease(ticket: Ticket, actor: Actor, now: datetime) -> bool:
    return actor.key_id is not None and ticket.leased_to(actor.key_id, now)


def claimed_state(state: State) -> State:
    """The state a claimed (or assigned) ticket is in: an open ticket moves to review, the rest stay."""
    return transition(state, State.IN_REVIEW) if state is State.OPEN else state


def released_state(state: State) -> State:
    """The state a released (or lease-expired) ticket returns to: review goes back to open, an appeal stays."""
    return transition(state, State.OPEN) if state is State.IN_REVIEW else state


def release(ticket: Ticket, actor: Actor, now: datetime, *, override: bool) -> State:
    """The state after ``actor`` gives the ticket back; raises if it is not claimed or not theirs to give."""
    if ticket.lease_key_id is None or ticket.state not in (State.IN_REVIEW, State.APPEALED):
        raise InvalidTransition(ticket.state.value, State.OPEN.value, "the ticket is not claimed")
    if not override and not holds_lease(ticket, actor, now):
        raise NotLeaseHolder("only the reviewer holding this ticket's lease (or a lead) may release it")
    return released_state(ticket.state)


def may_be_assigned(role: Role) -> bool:
    return role in ASSIGNABLE_ROLES


def assign(ticket: Ticket, target_key_id: int) -> State:
    """The state after a lead hands the ticket to the key ``target_key_id``; raises if it cannot go there.

    A ticket awaiting a decision is handed over for the decision; a decided one that still takes a
    report or a close (``FOLLOW_UP``) for that, its state unchanged."""
    if ticket.state not in NEEDS_REVIEW and ticket.state not in FOLLOW_UP:
        raise InvalidTransition(
            ticket.state.value, State.IN_REVIEW.value, "only a ticket that awaits a decision, a report or a close can be assigned"
        )
    if ticket.state is State.APPEALED and ticket.decided_key_id == target_key_id:
        raise SameReviewer("this appeal cannot go to the reviewer who made the decision under appeal")
    return claimed_state(ticket.state)


# ---------------------------------------------------------------- decisions and windows


def check_decision(ticket: Ticket, to: State, actor: Actor, now: datetime, *, override: bool) -> None:
    """A person's decision: one the ticket's state takes, not the appealed decision's own author, by the lease holder."""
    allowed = HUMAN_DECISIONS.get(ticket.state, frozenset())
    if to not in allowed:
        why = (
            f"a ticket in state {ticket.state.value!r} takes one of: {', '.join(sorted(allowed))}"
            if allowed
            else f"a ticket in state {ticket.state.value!r} awaits no decision"
            + (": claim it first (POST /v1/queue/claim)" if ticket.state is State.OPEN else "")
        )
        raise InvalidTransition(ticket.state.value, to.value, why)
    if ticket.state is State.APPEALED and actor.key_id == ticket.decided_key_id:
        raise SameReviewer()
    if not override and not holds_lease(ticket, actor, now):
        raise NotLeaseHolder()


def lease_after(to: State, actor: Actor) -> bool:
    """Whether a decision into ``to`` leaves the ticket leased to ``actor`` (a person, into a
    follow-up state): the reviewer who actioned a ticket can report it, the one who dismissed it
    close it, without another claim. Appeals go back to the queue unleased, for another reviewer."""
    return not actor.automated and to in FOLLOW_UP


def check_report(ticket: Ticket, actor: Actor, now: datetime, *, override: bool) -> None:
    """A hotline report: from a state that takes one, by the lease holder (or a lead)."""
    transition(ticket.state, State.REPORTED)
    if not override and not holds_lease(ticket, actor, now):
        raise NotLeaseHolder("only the reviewer holding this ticket's lease (or a lead) may report it")


def check_close(ticket: Ticket, actor: Actor, now: datetime, appeal_window_days: int, *, override: bool) -> None:
    """A close: from a decided state, once the appeal window has passed, by the lease holder (or a lead).

    A restriction the uploader may still appeal stays open until the window has passed."""
    transition(ticket.state, State.CLOSED)
    if ticket.state in APPEALABLE and ticket.decided_at is not None:
        until = appeal_deadline(ticket.decided_at, appeal_window_days)
        if now <= until:
            raise InvalidTransition(
                ticket.state.value,
                State.CLOSED.value,
                f"the uploader may appeal until {until.isoformat()}; close it after that",
            )
    if not override and not holds_lease(ticket, actor, now):
        raise NotLeaseHolder("only the reviewer holding this ticket's lease (or a lead) may close it")


def check_appeal(ticket: Ticket, now: datetime, appeal_window_days: int) -> None:
    """The uploader may appeal a restriction within the window after its decision (DSA Art 20)."""
    if ticket.state not in APPEALABLE:
        transition(ticket.state, State.APPEALED)  # raises: the state machine says why
    assert ticket.decided_at is not None
    until = appeal_deadline(ticket.decided_at, appeal_window_days)
    if now > until:
        raise AppealWindowClosed(f"the window for appealing this decision closed at {until.isoformat()}")


def effects(ticket: Ticket, decision: DecisionInput, retention_days: int) -> Effects:
    """What moving ``ticket`` by ``decision`` sets: raises ``InvalidTransition`` if the state machine refuses."""
    to = transition(ticket.state, decision.to)
    if to is State.ACTIONED:
        in_force: Action | None = decision.action
    elif to is State.REINSTATED:
        in_force = None
    else:
        in_force = ticket.action
    platform_action: Action | None = None
    if to is State.ACTIONED:
        platform_action = decision.action
    elif to is State.REINSTATED and ticket.action in RESTRICTIONS:
        platform_action = Action.REINSTATE
    return Effects(
        to=to,
        in_force=in_force,
        primary=to in (State.ACTIONED, State.DISMISSED),
        # Each decision restarts the preservation clock (365 days after a report, by default).
        preserve_days=None if to is State.APPEALED else retention_days,
        platform_action=platform_action,
    )


# ---------------------------------------------------------------- automated action


def policy_hashsets_and_tools(matches: Iterable[Match]) -> tuple[list[str], list[str]]:
    """Which policies can apply to these matches: their lists and tools, to fetch the policies by."""
    matches = list(matches)
    return sorted({m.hashset for m in matches}), sorted({m.tool for m in matches})


def may_act_automatically(ticket_state: State, matches: Iterable[Match]) -> bool:
    """Whether a policy may action these matches at all: only an open ticket, and no quarantined entry.

    An entry matching far more often than usual (flood quarantine) may be a false positive: a person decides.
    """
    return ticket_state is State.OPEN and not any(m.quarantined for m in matches)


def auto_action(ticket_state: State, matches: Sequence[Match], policies: Iterable[Policy]) -> Action | None:
    """The restriction to take automatically for these matches, or None: a person decides.

    Only under an auto_action policy for the list and tool (or '*'), and only when
    ``may_act_automatically``; the most severe such action wins.
    """
    if not may_act_automatically(ticket_state, matches):
        return None
    actions = {
        p.action for p in policies if p.auto_action and any(m.hashset == p.hashset and p.tool in ("*", m.tool) for m in matches)
    }
    return next((a for a in SEVERITY if a in actions), None)


def automated_restriction(action: Action) -> DecisionInput:
    return DecisionInput(
        to=State.ACTIONED, action=action, ground="illegal_content", explanation=AUTOMATED_RESTRICTION_EXPLANATION
    )
