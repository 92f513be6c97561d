"""The detector context's own errors (the shared ones are in ``kernel.errors``).

Each error class carries its HTTP status and a stable machine-readable ``code``; its
docstring is the default message. Domain code raises these; only the HTTP edge turns them
into ``{"error": {"code", "message"}}`` responses. Messages never contain a hash value from
a list: hash list entries are confidential.
"""

from __future__ import annotations

from kernel.errors import BadRequest, ServiceError


class DetectorError(ServiceError):
    """The scan could not be handled."""


class InvalidHash(BadRequest, ValueError):
    """A hash value is not valid for its tool."""

    code = "invalid_hash"


class UnknownTool(BadRequest):
    """No detection tool of that name is enabled."""

    code = "unknown_tool"

    def __init__(self, tool: str, known: list[str]) -> None:
        self.tool = tool
        super().__init__(f"unknown or disabled tool {tool!r}; enabled tools: {', '.join(known)}")


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
