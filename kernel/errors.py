"""The errors every context shares, and the base class the HTTP edge maps to JSON.

Each error class carries its HTTP status and a stable machine-readable ``code``; its docstring
is the default message. Domain code raises these (or a context's subclasses); only the HTTP edge
(``kernel.web``) turns them into ``{"error": {"code", "message"}}`` responses. Messages never
contain a hash value from a list: hash list entries are confidential.
"""

from __future__ import annotations


class ServiceError(Exception):
    """The request could not be handled."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        super().__init__(self.message)


class BadRequest(ServiceError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class MissingField(BadRequest):
    """A required field is missing."""

    code = "missing_field"

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        super().__init__(f"the field {field_name!r} is required")


class Unauthorized(ServiceError):
    """A valid API key is required: send 'Authorization: Bearer <key>'."""

    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    """This API key's role may not use this endpoint."""

    status = 403
    code = "forbidden"


class PayloadTooLarge(ServiceError):
    """The upload is larger than this service accepts."""

    status = 413
    code = "payload_too_large"


class UnsupportedMedia(ServiceError):
    """The upload is not an image in a supported format."""

    status = 415
    code = "unsupported_media_type"


class KeySuspended(ServiceError):
    """This API key is suspended: its use looked like reading a hash list back. A lead or admin can release it."""

    status = 403
    code = "key_suspended"


class RateLimited(ServiceError):
    """This API key is over its rate limit: retry after the number of seconds in Retry-After."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str | None = None, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class RequestTimeout(ServiceError):
    """The request body did not arrive in time (HASHGUARD_BODY_TIMEOUT_S); send it again, faster."""

    status = 408
    code = "request_timeout"
