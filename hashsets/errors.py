"""The hashsets context's errors. Messages name line numbers, never hash values."""

from __future__ import annotations


class HashsetError(Exception):
    """The hash list operation failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class InvalidListFile(HashsetError):
    """The hash list file has invalid lines; nothing of it was imported."""

    def __init__(self, problems: list[str], total: int) -> None:
        self.problems = problems
        self.total = total
        shown = "\n  ".join(problems)
        more = f"\n  ... and {total - len(problems)} more" if total > len(problems) else ""
        super().__init__(f"{total} invalid line(s); nothing was imported:\n  {shown}{more}")


class HashsetNotFound(HashsetError):
    """No hash list has that name."""


class ToolMismatch(HashsetError):
    """The list exists for another tool."""


class InvalidKey(HashsetError):
    """The key is not a valid Ed25519 key."""


class InvalidManifest(HashsetError):
    """The manifest is not valid; nothing was imported."""


class VerificationFailed(HashsetError):
    """The list did not verify against its manifest (signature, checksum or count); nothing was imported."""


class VersionConflict(HashsetError):
    """The version cannot be imported or selected."""


class EntryNotFound(HashsetError):
    """No entry of the list's current version has that id."""


class NotPermitted(HashsetError):
    """The operation needs a key with another role."""
