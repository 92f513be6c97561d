"""The detector context's errors.

Each error class carries its HTTP status and a stable machine-readable ``code``; its
docstring is the default message. Domain code raises these; only the HTTP edge turns them
into ``{"error": {"code", "message"}}`` responses. Messages never contain a hash value from
a list: hash list entries are confidential.
"""

from __future__ import annotations


class DetectorError(Exception):
    """The request could not be handled."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        super().__init__(self.message)


class BadRequest(DetectorError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class MissingField(BadRequest):
    """A required field is missing."""

    code = "missing_field"

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        super().__init__(f"the field {field_name!r} is required")


class InvalidHash(BadRequest, ValueError):
    """A hash value is not valid for its tool."""

    code = "invalid_hash"


class UnknownTool(BadRequest):
    """No detection tool of that name is enabled."""

    code = "unknown_tool"

    def __init__(self, tool: str, known: list[str]) -> None:
        self.tool = tool
        super().__init__(f"unknown or disabled tool {tool!r}; enabled tools: {', '.join(known)}")


class Unauthorized(DetectorError):
    """A valid API key is required: send 'Authorization: Bearer <key>'."""

    status = 401
    code = "unauthorized"


class Forbidden(DetectorError):
    """This API key's role may not use this endpoint."""

    status = 403
    code = "forbidden"


class PayloadTooLarge(DetectorError):
    """The upload is larger than this service accepts."""

    status = 413
    code = "payload_too_large"


class UnsupportedMedia(DetectorError):
    """The upload is not an image in a supported format."""

    status = 415
    code = "unsupported_media_type"


class ImageTooLarge(DetectorError):
    """The image has more pixels than this service decodes."""

    status = 422
    code = "image_too_large"


class CorruptMedia(DetectorError):
    """The image is truncated or corrupt and cannot be decoded."""

    status = 422
    code = "corrupt_media"


class ScanTimeout(DetectorError):
    """The scan did not finish in time; hold the upload and retry."""

    status = 503
    code = "scan_timeout"


class NotReady(DetectorError):
    """The service is not ready to scan (database or index unavailable); hold the upload and retry."""

    status = 503
    code = "not_ready"
