"""The conformance kit: checks every detection tool must pass, built-in or third-party.

hashguard runs these on every installed built-in tool in its own test suite; a tool author
runs them in theirs::

    from detector.tools.testing import assert_conforms
    def test_my_tool_conforms():
        assert_conforms(MyTool())

or one test per check with ``pytest.mark.parametrize("check", CHECKS, ids=str)`` and
``check.run(MyTool())``. The pictures are drawn by ``detector.synthetic`` (never real material).
In the style of python-threatexchange's signal-type auto-tests and Thorn perception's hasher
integrity tests: properties any usable tool has, not a tool's exact output.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from detector.decode import Media
from detector.errors import InvalidHash
from detector.synthetic import draw, encode, variant
from detector.tools.base import LOW_QUALITY, HashResult, HashTool, IndexKind, hamming
from detector.tools.registry import check_declaration
from kernel.errors import ServiceError

# Pictures the kit uses: an original, and unrelated ones that must not match it.
ORIGINAL_SEED = 4242
UNRELATED_SEEDS = (4243, 4244, 4245, 4246)
UNIFORM_COLOURS = ((0, 0, 0), (128, 128, 128), (255, 255, 255))
MAX_PIXELS = 50_000_000


class ConformanceError(AssertionError):
    """A tool failed a conformance check."""


def _media(data: bytes) -> Media:
    return Media(data=data, max_pixels=MAX_PIXELS)


def _frames(tool: HashTool) -> bool:
    """A frame-list tool (vPDQ): its value is a list of frames, each a ``bits``-wide hash (``IndexKind.FRAMES``)."""
    return tool.index_kind() is IndexKind.FRAMES


def _value(tool: HashTool, code: bytes) -> bytes:
    """A value of the tool holding ``code``: the code itself, or a one-frame list for a frame-list tool."""
    if not _frames(tool):
        return code
    from detector.video_frames import Frame, pack

    return pack([Frame(number=0, quality=100, pdq=code, seconds=0.0)])


def _hash(tool: HashTool, data: bytes) -> HashResult:
    result = tool.hash_with_quality(_media(data))
    _require(result.tool == tool.name, f"hash() returned tool={result.tool!r}, expected {tool.name!r}")
    if _frames(tool):
        try:
            tool.validate(result.value)
        except InvalidHash as exc:
            raise ConformanceError(f"hash() returned a frame list the tool itself refuses: {exc}") from exc
        return result
    _require(
        isinstance(result.value, bytes) and len(result.value) == tool.width,
        f"hash() must return {tool.width} bytes, got {len(result.value)}",
    )
    return result


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def check_declaration_is_valid(tool: HashTool) -> None:
    """Name, version, kind, bits, threshold and media types are declared and consistent."""
    try:
        check_declaration(tool, f"tool {type(tool).__qualname__}")
    except Exception as exc:
        raise ConformanceError(str(exc)) from exc


def check_hex_round_trip(tool: HashTool) -> None:
    """format() then parse_hex() gives the value back, whatever the case, prefix or blanks."""
    rng = random.Random(7)
    samples = [
        _value(tool, code)
        for code in (bytes(tool.width), b"\xff" * tool.width, bytes(rng.randrange(256) for _ in range(tool.width)))
    ]
    samples.append(_hash(tool, encode(draw(ORIGINAL_SEED))).value)
    for value in samples:
        text = tool.format(value)
        _require(tool.normalise(text) == text, "format() must produce the normalised form")
        for variant_text in (text, text.upper(), f"0x{text}", f"  {text}\n"):
            _require(tool.parse_hex(variant_text) == value, "parse_hex(format(v)) must give v back")


def check_malformed_hashes_refused_without_echo(tool: HashTool) -> None:
    """Wrong length or non-hex text raises InvalidHash (a ValueError) whose message omits the text."""
    code = bytes(range(tool.width)) if tool.width <= 256 else bytes(tool.width)
    good = tool.format(_value(tool, code))
    bads = [good[:-2], good + "ab", good[:-1] + "g", "", "zz" * tool.width]
    if _frames(tool):  # a frame's hash cut short, lengthened or not hex, inside an otherwise valid list
        digits = code.hex()
        bads = [
            good.replace(digits, digits[:-2]),
            good.replace(digits, digits + "ab"),
            good.replace(digits, digits[:-1] + "g"),
            "",
            "zz" * tool.width,
        ]
    for bad in bads:
        try:
            tool.parse_hex(bad)
        except InvalidHash as exc:
            _require(isinstance(exc, ValueError), "InvalidHash must stay a ValueError")
            _require(not bad or bad not in exc.message, "the error message repeats the malformed value")
        else:
            raise ConformanceError(f"parse_hex accepted a malformed value of {len(bad)} characters")


def check_self_match(tool: HashTool) -> None:
    """The same bytes hash to the same value twice: distance 0 to itself."""
    data = encode(draw(ORIGINAL_SEED))
    first, second = _hash(tool, data), _hash(tool, data)
    _require(first.value == second.value, "hashing the same bytes twice gave different values")
    _require(tool.distance(first.value, second.value) == 0, "distance(v, v) must be 0")


def check_distance_is_hamming(tool: HashTool) -> None:
    """distance() agrees with the Hamming distance the indexes use."""
    rng = random.Random(11)
    for _ in range(8):
        a = bytes(rng.randrange(256) for _ in range(tool.width))
        b = bytes(rng.randrange(256) for _ in range(tool.width))
        _require(tool.distance(_value(tool, a), _value(tool, b)) == hamming(a, b), "distance() disagrees with Hamming distance")


def check_copy_within_threshold(tool: HashTool) -> None:
    """A resized, re-encoded copy is within threshold (perceptual); an identical copy is (exact)."""
    original = encode(draw(ORIGINAL_SEED))
    reference = _hash(tool, original).value
    if tool.index_kind() is IndexKind.EXACT:
        _require(tool.distance(reference, _hash(tool, bytes(original)).value) == 0, "an identical copy must match")
        return
    for scale, quality in ((0.5, 70), (0.8, 85)):
        copy = _hash(tool, variant(draw(ORIGINAL_SEED), scale=scale, quality=quality)).value
        distance = tool.distance(reference, copy)
        _require(
            distance <= tool.threshold(),
            f"a copy at scale {scale}, JPEG quality {quality} is at distance {distance} > threshold {tool.threshold()}",
        )


def check_unrelated_beyond_threshold(tool: HashTool) -> None:
    """Unrelated pictures are farther apart than the threshold."""
    reference = _hash(tool, encode(draw(ORIGINAL_SEED))).value
    for seed in UNRELATED_SEEDS:
        distance = tool.distance(reference, _hash(tool, encode(draw(seed))).value)
        _require(distance > tool.threshold(), f"an unrelated picture is at distance {distance} <= threshold {tool.threshold()}")


def check_uniform_images_refused_or_flagged(tool: HashTool) -> None:
    """A uniform picture is refused (a 4xx ServiceError) or flagged by a quality below LOW_QUALITY.

    Such pictures carry no content, so a perceptual tool that hashes them confidently would
    match every other blank picture in a list. Exact tools only ever match identical bytes: exempt.
    """
    if tool.index_kind() is IndexKind.EXACT:
        return
    for colour in UNIFORM_COLOURS:
        data = encode(Image.new("RGB", (320, 240), colour))
        try:
            result = _hash(tool, data)
        except ServiceError as exc:
            _require(400 <= exc.status < 500, f"a uniform picture raised {exc.code} with status {exc.status}, expected a 4xx")
            continue
        _require(
            result.quality is not None and result.quality < LOW_QUALITY,
            f"a uniform {colour} picture hashed with quality {result.quality}; expected < {LOW_QUALITY} or a refusal",
        )


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: Callable[[HashTool], None]

    def __str__(self) -> str:
        return self.name


CHECKS: tuple[Check, ...] = tuple(
    Check(fn.__name__.removeprefix("check_"), fn)
    for fn in (
        check_declaration_is_valid,
        check_hex_round_trip,
        check_malformed_hashes_refused_without_echo,
        check_self_match,
        check_distance_is_hamming,
        check_copy_within_threshold,
        check_unrelated_beyond_threshold,
        check_uniform_images_refused_or_flagged,
    )
)


def failures(tool: HashTool) -> dict[str, str]:
    """Run every check; return {check name: what failed} (empty when the tool conforms)."""
    failed: dict[str, str] = {}
    for check in CHECKS:
        try:
            check.run(tool)
        except ConformanceError as exc:
            failed[check.name] = str(exc)
        except Exception as exc:  # a crash inside the tool is a failure of that check, not of the kit
            failed[check.name] = f"raised {type(exc).__name__}: {exc}"
    return failed


def assert_conforms(tool: HashTool) -> None:
    """Raise ``ConformanceError`` listing every failed check."""
    failed = failures(tool)
    if failed:
        raise ConformanceError(
            f"{tool.name} fails {len(failed)} check(s):\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items())
        )
