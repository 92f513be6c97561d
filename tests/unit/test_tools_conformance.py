"""The conformance kit on every installed built-in tool, and on tools built to fail it."""

from __future__ import annotations

from typing import ClassVar

import pytest

from detector.decode import Media
from detector.tools.base import HashResult, HashTool, ToolKind
from detector.tools.registry import ToolRegistry
from detector.tools.testing import CHECKS, Check, ConformanceError, assert_conforms, failures

BUILTIN = ToolRegistry.load()


@pytest.mark.parametrize("check", CHECKS, ids=str)
@pytest.mark.parametrize("name", BUILTIN.names())
def test_builtin_tool_passes(name: str, check: Check) -> None:
    check.run(BUILTIN.get(name))


class _ConstantTool(HashTool):
    """Says every picture is the same: must fail the 'unrelated' and 'uniform' checks."""

    name = "constant"
    version = "1"
    kind = ToolKind.PERCEPTUAL
    bits = 64
    default_threshold = 4

    def hash(self, media: Media) -> HashResult:
        return HashResult(tool=self.name, value=bytes.fromhex("0f0f0f0f0f0f0f0f"), quality=100)


class _SloppyParser(_ConstantTool):
    name = "sloppy"

    def parse_hex(self, text: str) -> bytes:  # accepts anything, echoes it in errors
        return bytes.fromhex(text.strip()[: self.bits // 4].ljust(self.bits // 4, "0")) if text else bytes(self.width)


class _BadDeclaration(_ConstantTool):
    name = "Bad Name"
    bits: ClassVar[int] = 60


def test_a_tool_that_cannot_tell_pictures_apart_fails() -> None:
    failed = failures(_ConstantTool())
    assert set(failed) == {"unrelated_beyond_threshold", "uniform_images_refused_or_flagged"}
    with pytest.raises(ConformanceError, match="fails 2 check"):
        assert_conforms(_ConstantTool())


def test_a_lax_parser_fails() -> None:
    assert "malformed_hashes_refused_without_echo" in failures(_SloppyParser())


def test_a_bad_declaration_fails() -> None:
    assert "declaration_is_valid" in failures(_BadDeclaration())
