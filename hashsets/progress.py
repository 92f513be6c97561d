"""Import progress on stderr: a redrawn bar on a terminal, a plain percentage line every 10% otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30


class Progress:
    """Progress by bytes of the list file read; counts entries, never shows them."""

    def __init__(self, total_bytes: int, *, stream: TextIO | None = None, label: str = "importing") -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._total = max(1, total_bytes)
        self._label = label
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, done_bytes: int, entries: int) -> None:
        fraction = min(1.0, done_bytes / self._total)
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1:
                return
            self._last_draw = now
            filled = int(fraction * _WIDTH)
            bar = "#" * filled + "." * (_WIDTH - filled)
            elapsed = now - self._started
            self._stream.write(f"\r{self._label} [{bar}] {fraction:6.1%}  {entries:,} entries  {elapsed:5.1f} s")
            self._stream.flush()
        else:
            decile = int(fraction * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                self._stream.write(f"{self._label}: {decile * 10}% ({entries} entries)\n")
                self._stream.flush()

    def finish(self, entries: int, message: str = "stored") -> None:
        elapsed = time.monotonic() - self._started
        if self._tty:
            self._stream.write(f"\r{self._label} [{'#' * _WIDTH}] 100.0%  {entries:,} entries  {elapsed:5.1f} s\n")
        self._stream.write(f"{self._label}: {message} {entries} entries in {elapsed:.1f} s\n")
        self._stream.flush()
