"""The takedown context's errors.

Like every context's (``kernel.errors.ServiceError``), each class carries an HTTP status and a stable ``code``, and its docstring
is the default message; data sits on attributes. Only the HTTP edge turns them into JSON.
"""

from __future__ import annotations

from kernel.errors import ServiceError


class TakedownError(ServiceError):
    """The takedown request could not be handled."""


class InvalidInput(TakedownError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class TicketNotFound(TakedownError):
    """No ticket has that id."""

    status = 404
    code = "ticket_not_found"


class TenantNotFound(TakedownError):
    """No tenant has that name."""

    status = 404
    code = "tenant_not_found"


class StatementNotFound(TakedownError):
    """This ticket has no statement of reasons: no restriction was imposed."""

    status = 404
    code = "statement_not_found"


class InvalidTransition(TakedownError):
    """The ticket cannot move to that state from its current state."""

    status = 409
    code = "invalid_transition"

    def __init__(self, from_: str, to: str, why: str | None = None) -> None:
        self.from_ = from_
        self.to = to
        super().__init__(why or f"a ticket in state {from_!r} cannot move to {to!r}")


class NotLeaseHolder(TakedownError):
    """Claim the ticket first: only the reviewer holding its lease (or a lead) may decide it."""

    status = 409
    code = "not_lease_holder"


class SameReviewer(TakedownError):
    """An appeal must be decided by a different reviewer than the original decision."""

    status = 409
    code = "same_reviewer"


class AppealWindowClosed(TakedownError):
    """The window for appealing this decision has closed."""

    status = 409
    code = "appeal_window_closed"


class UnknownKey(TakedownError):
    """No active reviewer or lead key has that prefix."""

    status = 400
    code = "unknown_key"
