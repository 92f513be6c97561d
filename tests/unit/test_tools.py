"""The built-in tools: formats that interoperate with the reference tools, and safe parsing."""

from __future__ import annotations

import hashlib
from importlib.metadata import EntryPoint

import imagehash
import numpy as np
import pdqhash
import pytest

from detector.decode import Media
from detector.errors import InvalidHash
from detector.synthetic import draw, encode, variant
from detector.tools.base import HashTool, ToolKind
from detector.tools.registry import ToolRegistry, ToolRegistryError, discover


def media(data: bytes) -> Media:
    return Media(data=data, max_pixels=50_000_000)


def test_all_builtin_tools_are_registered_through_entry_points() -> None:
    tools = ToolRegistry.load()
    assert tools.names() == ["dhash", "md5", "pdq", "phash", "sha256", "vpdq"]
    for tool in tools:
        assert tool.bits % 8 == 0 and tool.version
        assert tool.default_threshold == 0 or tool.kind is ToolKind.PERCEPTUAL


def test_pdq_hex_is_the_python_threatexchange_format() -> None:
    picture = draw(5)
    vector, quality = pdqhash.compute(np.asarray(picture))
    bits = "".join(str(int(b)) for b in vector)
    expected = f"{int(bits, 2):064x}"  # how python-threatexchange prints PDQ
    result = ToolRegistry.load().get("pdq").hash(media(encode(picture)))
    assert result.value.hex() == expected
    assert result.quality == quality


@pytest.mark.parametrize(("name", "function"), [("phash", imagehash.phash), ("dhash", imagehash.dhash)])
def test_imagehash_tools_match_str_of_imagehash(name: str, function) -> None:  # type: ignore[no-untyped-def]
    picture = draw(6)
    tool = ToolRegistry.load().get(name)
    assert tool.hash(media(encode(picture))).value.hex() == str(function(picture))


def test_exact_tools_hash_the_file_bytes() -> None:
    data = encode(draw(7), "JPEG")
    tools = ToolRegistry.load()
    assert tools.get("md5").hash(media(data)).value == hashlib.md5(data).digest()
    assert tools.get("sha256").hash(media(data)).value == hashlib.sha256(data).digest()


def test_perceptual_tools_see_a_resized_copy_within_threshold_and_another_picture_beyond() -> None:
    tools = ToolRegistry.load()
    for name in ("pdq", "phash", "dhash"):
        tool = tools.get(name)
        original = np.unpackbits(np.frombuffer(tool.hash(media(encode(draw(8)))).value, np.uint8))
        copy = np.unpackbits(np.frombuffer(tool.hash(media(variant(draw(8), scale=0.5))).value, np.uint8))
        other = np.unpackbits(np.frombuffer(tool.hash(media(encode(draw(9)))).value, np.uint8))
        assert int((original != copy).sum()) <= tool.threshold(), name
        assert int((original != other).sum()) > tool.threshold(), name


@pytest.mark.parametrize("text", ["", "abc", "g" * 64, "0" * 63, "0" * 65, "0x" + "0" * 63, "00 " * 32])
def test_parse_hex_refuses_bad_values_without_repeating_them(text: str) -> None:
    tool = ToolRegistry.load().get("pdq")
    with pytest.raises(InvalidHash) as caught:
        tool.parse_hex(text)
    assert text.strip() == "" or text.strip() not in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_parse_hex_normalises() -> None:
    tool = ToolRegistry.load().get("md5")
    assert tool.parse_hex("  0xABCDEF0123456789ABCDEF0123456789\n") == bytes.fromhex("abcdef0123456789abcdef0123456789")


def test_duplicate_tool_names_fail_clearly() -> None:
    point = EntryPoint(name="md5", value="detector.tools.cryptographic:Md5Tool", group="hashguard.tools")
    with pytest.raises(ToolRegistryError, match="two installed tools are named 'md5'"):
        discover([point, point])


def test_entry_point_must_be_a_tool_with_its_own_name() -> None:
    with pytest.raises(ToolRegistryError, match="not a HashTool"):
        discover([EntryPoint(name="x", value="detector.decode:Media", group="hashguard.tools")])
    with pytest.raises(ToolRegistryError, match="loads a tool named 'md5'"):
        discover([EntryPoint(name="sha1", value="detector.tools.cryptographic:Md5Tool", group="hashguard.tools")])


def test_unknown_enabled_tool_is_an_error() -> None:
    with pytest.raises(ToolRegistryError, match="nosuch"):
        ToolRegistry.load(("pdq", "nosuch"))
    assert issubclass(type(ToolRegistry.load(("pdq",)).get("pdq")), HashTool)


def test_declarations_are_checked_at_discovery() -> None:
    from detector.tools.registry import check_declaration

    class NoVersion(HashTool):
        name = "noversion"
        version = ""
        kind = ToolKind.PERCEPTUAL
        bits = 64
        default_threshold = 4

        def hash(self, media: Media):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(ToolRegistryError, match="non-empty version"):
        check_declaration(NoVersion(), "test")

    class ExactWithThreshold(NoVersion):
        version = "1"
        kind = ToolKind.CRYPTOGRAPHIC

    with pytest.raises(ToolRegistryError, match="exact index"):
        check_declaration(ExactWithThreshold(), "test")

    class Missing(HashTool):
        def hash(self, media: Media):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(ToolRegistryError, match="does not declare 'name'"):
        check_declaration(Missing(), "test")


def test_interface_defaults_keep_the_builtin_tools_unchanged() -> None:
    tools = ToolRegistry.load()
    pdq, md5 = tools.get("pdq"), tools.get("md5")
    assert pdq.index_kind().value == "hamming" and md5.index_kind().value == "exact"
    assert pdq.threshold() == 31 and md5.threshold() == 0
    assert "image/jpeg" in pdq.media_types
    assert pdq.distance(b"\x0f" * 32, b"\x00" * 32) == 128
    assert md5.estimate_quality(b"\x00" * 16) is None
    assert tools.get("dhash").estimate_quality(b"\x00" * 8) == 0
    assert tools.get("dhash").estimate_quality(b"\x0f" * 8) == 100
    assert pdq.normalise(" 0xAB ") == "ab"


def test_a_plugin_that_cannot_be_imported_fails_clearly() -> None:
    point = EntryPoint(name="broken", value="hashguard_no_such_module_xyz:Tool", group="hashguard.tools")
    with pytest.raises(ToolRegistryError, match=r"entry point 'broken'.*cannot be loaded: ModuleNotFoundError"):
        discover([point])


def test_jurisdictions_setting_is_normalised() -> None:
    from kernel.settings import Settings

    assert Settings.from_env({}).jurisdictions == ()
    assert Settings.from_env({"HASHGUARD_JURISDICTIONS": " gb, AU,,gb "}).jurisdictions == ("AU", "GB")
