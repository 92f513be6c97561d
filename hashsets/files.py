"""Reading a list file in large blocks: lines for the parser, the SHA-256 and progress on the way."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from hashsets.errors import HashsetError, VerificationFailed
from hashsets.manifest import Manifest
from hashsets.progress import Progress

_BLOCK = 1 << 20


class ListFile:
    """One pass over the file: ``lines()`` feeds the parser while the digest and byte count follow."""

    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        if not path.is_file():
            raise HashsetError(f"{path} is not a readable file")
        self.path = path
        self.size = path.stat().st_size
        self._digest = hashlib.sha256()
        self.bytes_read = 0
        self.lines_read = 0
        self._progress = progress

    def lines(self) -> Iterator[str]:
        pending = b""
        with self.path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                self._digest.update(block)
                self.bytes_read += len(block)
                data = pending + block
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                # Split on \n only (not str.splitlines), so line numbers match what editors show.
                # A non-UTF-8 byte becomes U+FFFD and that line fails validation with its number.
                text = data[:cut].decode("utf-8", errors="replace")
                parts = text.split("\n")
                parts.pop()  # after the last \n
                self.lines_read += len(parts)
                yield from parts
                if self._progress is not None:
                    self._progress.update(self.bytes_read, self.lines_read)
            if pending:
                self.lines_read += 1
                yield pending.decode("utf-8", errors="replace")

    @property
    def sha256(self) -> bytes:
        return self._digest.digest()


class Digested(Protocol):
    """A list file read in one pass (``ListFile``, ``hashsets.video_files.VideoListFile``): its SHA-256 once read."""

    @property
    def sha256(self) -> bytes: ...


def verifier(manifest: Manifest, file: Digested) -> Callable[[int], None]:
    """The end-of-stream check: the file's SHA-256 and entry count must be the manifest's."""

    def check(entries: int) -> None:
        if file.sha256 != manifest.sha256:
            raise VerificationFailed(
                "the list file's SHA-256 differs from the manifest's: the file was altered or is not the one"
                " the manifest describes; nothing was imported"
            )
        if entries != manifest.entries:
            raise VerificationFailed(
                f"the list file holds {entries} entries, the manifest says {manifest.entries}; nothing was imported"
            )

    return check
