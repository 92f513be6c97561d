"""Reading vPDQ video lists: the reference's hash files (one video a file), a folder of them, or JSON Lines.

Each form becomes the same JSON Lines stream for ``hashsets.parse`` (``{"id", "hash"}`` with the
frame list in its one-line form, ``detector.video_frames``), so video entries go through the same
parser, import, manifest and signature checks as image lists:

* a vPDQ hash file (lines ``frame_number,quality,pdq_hex,timestamp_seconds``): one entry, its id
  the file name without its extension;
* a folder: every regular, non-hidden file in it, in name order, each a hash file (or a JSON Lines file);
* JSON Lines: one video a line, ``{"id": ..., "frames": [[frame, quality, hex, seconds], ...]}``,
  with ``category``, ``scheme`` and ``op`` as in image lists.

The digest a manifest names is the SHA-256 of the file's bytes; for a folder, of each file's name,
a NUL byte, its size as 8 big-endian bytes and its bytes, in name order. Pure: no database, no web.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from hashsets.errors import HashsetError
from hashsets.progress import Progress

# One hash file is one video: at one frame a second, a day of video is under 10 MB of text.
MAX_HASH_FILE_BYTES = 64 * 1024 * 1024


def _entry_id(path: Path) -> str:
    return path.name.split(".", 1)[0] if not path.name.startswith(".") else path.name


def _jsonl_line(line: str) -> str:
    """A JSON Lines entry with ``frames`` rewritten as ``hash`` (the frame list's one-line text); anything
    else is passed on unchanged, for the parser to report with its line number."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict) or "frames" not in obj:
        return line
    frames = obj.pop("frames")
    if not isinstance(frames, list):
        obj["hash"] = ""  # the parser's own message: the hash is not valid
        return json.dumps(obj)
    records = []
    for item in frames:
        if isinstance(item, list) and len(item) == 4:
            records.append(",".join(str(part) for part in item))
        else:
            records.append("?")  # refused by the frame parser, which names the record
    obj["hash"] = ";".join(records)
    return json.dumps(obj)


class VideoListFile:
    """One pass over a video list (file or folder): ``lines()`` for the parser, ``sha256`` after it."""

    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        if not path.is_file() and not path.is_dir():
            raise HashsetError(f"{path} is not a readable file or folder")
        self.path = path
        self._digest = hashlib.sha256()
        self._progress = progress
        self.bytes_read = 0
        self.lines_read = 0
        self.files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
        if path.is_dir() and not self.files:
            raise HashsetError(f"{path} holds no hash files")
        self.size = sum(p.stat().st_size for p in self.files)

    def _read(self, path: Path) -> bytes:
        size = path.stat().st_size
        if size > MAX_HASH_FILE_BYTES:
            raise HashsetError(f"{path.name} is larger than {MAX_HASH_FILE_BYTES} bytes: not a vPDQ hash file")
        data = path.read_bytes()
        if self.path.is_dir():
            self._digest.update(path.name.encode("utf-8") + b"\0" + len(data).to_bytes(8, "big"))
        self._digest.update(data)
        self.bytes_read += len(data)
        return data

    def lines(self) -> Iterator[str]:
        for path in self.files:
            text = self._read(path).decode("utf-8", errors="replace").lstrip("\ufeff")
            content = [line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")]
            if content and content[0].lstrip().startswith("{"):
                for line in text.split("\n"):
                    self.lines_read += 1
                    yield _jsonl_line(line) if line.strip() else line
            else:
                self.lines_read += 1
                records = ";".join(line.strip() for line in content)
                yield json.dumps({"id": _entry_id(path), "hash": records})
            if self._progress is not None:
                self._progress.update(self.bytes_read, self.lines_read)

    @property
    def sha256(self) -> bytes:
        return self._digest.digest()
