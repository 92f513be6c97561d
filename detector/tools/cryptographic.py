"""Exact tools: cryptographic digests of the file bytes, as most hotline lists still carry."""

from __future__ import annotations

import hashlib
from typing import ClassVar

from detector.decode import Media
from detector.tools.base import HashResult, HashTool, ToolKind


class _DigestTool(HashTool):
    kind: ClassVar[ToolKind] = ToolKind.CRYPTOGRAPHIC
    default_threshold: ClassVar[int] = 0
    algorithm: ClassVar[str]

    def hash(self, media: Media) -> HashResult:
        return HashResult(tool=self.name, value=hashlib.new(self.algorithm, media.data).digest())


class Md5Tool(_DigestTool):
    name = "md5"
    version = "1"
    bits = 128
    algorithm = "md5"
    description = "MD5 of the exact file bytes (matches only byte-identical copies)."


class Sha256Tool(_DigestTool):
    name = "sha256"
    version = "1"
    bits = 256
    algorithm = "sha256"
    description = "SHA-256 of the exact file bytes (matches only byte-identical copies)."
