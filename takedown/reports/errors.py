"""Errors of hotline reporting (status and code at the edge, like every ``TakedownError``)."""

from __future__ import annotations

from takedown.errors import TakedownError


class ReportNotFound(TakedownError):
    """No hotline report has that id."""

    status = 404
    code = "report_not_found"


class ReportNotRetryable(TakedownError):
    """Only a failed or retracted report can be queued again."""

    status = 409
    code = "report_not_retryable"


class ReportingNotConfigured(TakedownError):
    """hashguard cannot file with this hotline: a setting it needs is unset."""

    status = 409
    code = "reporting_not_configured"


class UnknownHotline(TakedownError):
    """hashguard files only with NCMEC itself; record a report made elsewhere with its 'reference'."""

    status = 400
    code = "unknown_hotline"
