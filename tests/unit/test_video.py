"""vPDQ frame lists, the frame-level video index against brute force, the snapshot's video matching,
video list files, and decoding drawn clips (PyAV) in isolated worker processes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from detector.decode import HashingPath
from detector.errors import InvalidHash
from detector.matcher import LoadedVersion, ToolEntries, build_snapshot
from detector.synthetic_video import Clip, encode
from detector.tools.testing import assert_conforms
from detector.tools.vpdq import VpdqTool
from detector.video_decode import CorruptVideo, VideoJob, VideoLimitExceeded, VideoLimits, hash_video_file, run_isolated
from detector.video_frames import (
    RECORD_BYTES,
    Frame,
    MatchParams,
    compare,
    format_compact,
    format_lines,
    frames_json,
    is_match,
    pack,
    parse_frames_json,
    parse_text,
    unpack,
)
from detector.video_match import VideoIndex, passes
from hashsets.errors import InvalidListFile
from hashsets.parse import ListFormat, parse_lines
from hashsets.video_files import VideoListFile


def _random_video(
    rng: random.Random, frames: int, base: bytes | None = None, flips: int = 0, quality: int | None = None
) -> bytes:
    out = []
    for i in range(frames):
        code = bytearray(base[i * RECORD_BYTES + 9 : i * RECORD_BYTES + 41]) if base else bytearray(rng.randbytes(32))
        for _ in range(flips):
            bit = rng.randrange(256)
            code[bit // 8] ^= 1 << (bit % 8)
        out.append(
            Frame(
                number=i * 30,
                quality=quality if quality is not None else rng.choice([100, 100, 90, 40]),
                pdq=bytes(code),
                seconds=float(i),
            )
        )
    return pack(out)


def test_pack_and_text_forms_round_trip() -> None:
    rng = random.Random(1)
    value = _random_video(rng, 5)
    assert len(value) == 5 * RECORD_BYTES
    assert parse_text("\n".join(format_lines(value))) == value
    assert parse_text(format_compact(value)) == value
    assert parse_frames_json(json.loads(json.dumps(frames_json(value)))) == value
    first = unpack(value)[0]
    assert format_lines(value)[0] == f"0,{first.quality},{first.pdq.hex()},0.000"


def test_malformed_frame_lists_are_refused_without_echo() -> None:
    secret = "ab" * 32
    for bad in ("", f"0,100,{secret[:-1]},0.0", f"0,101,{secret},0.0", f"x,100,{secret},0", f"0,100,{secret}"):
        with pytest.raises(InvalidHash) as caught:
            parse_text(bad)
        assert secret[:20] not in caught.value.message
    with pytest.raises(InvalidHash):
        parse_frames_json([[0, 100, "zz", 0.0]])
    with pytest.raises(InvalidHash):
        parse_frames_json([[0, True, secret, 0.0]])


def test_video_index_agrees_with_brute_force_comparison() -> None:
    rng = random.Random(7)
    listed = [_random_video(rng, rng.randint(1, 12)) for _ in range(40)]
    index = VideoIndex.build(listed, 50)
    for trial in range(30):
        source = listed[rng.randrange(len(listed))]
        n = len(source) // RECORD_BYTES
        # A near copy of a listed video (bits flipped), of an unrelated one, or a mix of both.
        query = (
            _random_video(rng, n, base=source, flips=rng.choice([0, 8, 20, 40]))
            if trial % 3
            else _random_video(rng, rng.randint(1, 8))
        )
        found = {h.video: h for h in index.search(query, 31)}
        for position, video in enumerate(listed):
            oracle = compare(query, video, MatchParams())
            if oracle is None or oracle.matched_frames == 0:
                assert position not in found
                continue
            hit = found[position]
            assert hit.query_share == pytest.approx(oracle.query_share)
            assert hit.index_share == pytest.approx(oracle.index_share)
            assert hit.matched_frames == oracle.matched_frames
            assert passes(hit, MatchParams()) == is_match(oracle, MatchParams())


def test_duplicate_and_low_quality_frames_are_not_counted() -> None:
    code = bytes(range(32))
    other = bytes(255 - b for b in range(32))
    # A still scene held for four samples counts once; a low-quality frame not at all.
    listed = pack(
        [Frame(number=i, quality=100, pdq=code, seconds=i) for i in range(4)]
        + [Frame(number=9, quality=10, pdq=other, seconds=9)]
    )
    query = pack([Frame(number=0, quality=100, pdq=code, seconds=0), Frame(number=1, quality=100, pdq=other, seconds=1)])
    [hit] = VideoIndex.build([listed], 50).search(query, 31)
    assert (hit.query_share, hit.index_share, hit.matched_frames) == (50.0, 100.0, 1)
    assert not passes(hit, MatchParams())  # 50% of the query's frames < 80%
    assert passes(hit, MatchParams(query_share=50.0))


def test_snapshot_matches_videos_per_list_threshold_and_names_shares() -> None:
    rng = random.Random(3)
    videos = [_random_video(rng, 6, quality=100) for _ in range(4)]
    versions = [
        LoadedVersion(hashset="wide", version=1, tool="vpdq", entries=2),
        LoadedVersion(hashset="strict", version=1, tool="vpdq", entries=2, threshold=2),
    ]
    entries = {
        "vpdq": ToolEntries(
            ids=np.array([101, 102, 201, 202], dtype=np.int64),
            codes=np.empty((0, 32), np.uint8),
            spans=((0, 0), (2, 1)),
            values=tuple(videos),
        )
    }
    snapshot = build_snapshot([VpdqTool()], versions, entries)
    assert snapshot.entries_by_tool() == {"vpdq": 4}
    near_wide = _random_video(rng, 6, base=videos[1], flips=10, quality=100)
    [hit] = snapshot.match({"vpdq": near_wide}, {"vpdq": 31})
    assert (hit.row_id, hit.hashset, hit.query_share, hit.matched_frames) == (102, "wide", 100.0, 6)
    # Ten bits away is past the strict list's threshold of 2; an exact copy is not.
    assert snapshot.match({"vpdq": _random_video(rng, 6, base=videos[3], flips=10, quality=100)}, {"vpdq": 31}) == []
    [exact] = snapshot.match({"vpdq": videos[3]}, {"vpdq": 31})
    assert (exact.row_id, exact.hashset, exact.index_share) == (202, "strict", 100.0)
    assert snapshot.match({"vpdq": _random_video(rng, 6, quality=100)}, {"vpdq": 31}) == []


def test_vpdq_tool_conforms_on_still_images() -> None:
    assert_conforms(VpdqTool())


def test_video_list_files_hash_files_folders_and_json_lines(tmp_path: Path) -> None:
    rng = random.Random(5)
    a, b = _random_video(rng, 3), _random_video(rng, 2)
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "video-a.txt").write_text("\n".join(format_lines(a)) + "\n")
    (folder / "video-b.txt").write_text("# a comment\n" + "\n".join(format_lines(b)) + "\n")
    tool = VpdqTool()
    file = VideoListFile(folder)
    entries = list(parse_lines(file.lines(), tool.parse_hex, format=ListFormat.JSONL))
    assert [(e.entry_id, e.value) for e in entries] == [("video-a", a), ("video-b", b)]
    assert len(file.sha256) == 32
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(json.dumps({"id": "v1", "frames": frames_json(a), "category": "A1"}) + "\n")
    [entry] = list(parse_lines(VideoListFile(jsonl).lines(), tool.parse_hex, format=ListFormat.JSONL))
    assert (entry.entry_id, entry.value, entry.category) == ("v1", a, "A1")
    (folder / "video-c.txt").write_text("0,100,nothex,0.0\n")
    with pytest.raises(InvalidListFile) as caught:
        list(parse_lines(VideoListFile(folder).lines(), tool.parse_hex, format=ListFormat.JSONL))
    assert "nothex" not in str(caught.value)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("clips")
    clip = Clip(seed=11, seconds=4.0, fps=12.0, width=256, height=192)
    return {
        "original": encode(str(folder / "original.mp4"), clip),
        "low": encode(str(folder / "low.webm"), clip, container="webm", codec="libvpx", bit_rate=150_000),
        "small": encode(str(folder / "small.avi"), clip, container="avi", codec="mpeg4", size=(160, 120), bit_rate=1_000_000),
        "other": encode(str(folder / "other.mkv"), Clip(seed=12, seconds=4.0, fps=12.0, width=256, height=192), container="mkv"),
    }


def test_clips_hash_like_the_reference_sampling_and_copies_match(clips: dict[str, str]) -> None:
    limits = VideoLimits()
    hashed = {name: hash_video_file(VideoJob(path=path, limits=limits)) for name, path in clips.items()}
    original = hashed["original"]
    assert (original.frames_decoded, original.frames_hashed) == (48, 4)
    assert [(f.number, f.seconds) for f in unpack(original.value)] == [(0, 0.0), (12, 1.0), (24, 2.0), (36, 3.0)]
    for name in ("low", "small"):
        assert is_match(compare(hashed[name].value, original.value), MatchParams()), name
    assert not is_match(compare(hashed["other"].value, original.value), MatchParams())
    # The fast path stays within a few bits of pdqhash on the same decoded frames.
    reference = hash_video_file(VideoJob(path=clips["original"], limits=limits, hashing=HashingPath.REFERENCE))
    distances = [
        bin(int.from_bytes(f.pdq, "big") ^ int.from_bytes(r.pdq, "big")).count("1")
        for f, r in zip(unpack(original.value), unpack(reference.value), strict=True)
    ]
    assert max(distances) <= 8, distances
    # Every half second: twice the frames.
    assert hash_video_file(VideoJob(path=clips["original"], limits=limits, seconds_per_hash=0.5)).frames_hashed == 8


def test_limits_and_broken_files_end_in_4xx_in_a_worker(clips: dict[str, str], tmp_path: Path) -> None:
    def refused(path: str, **limits: float) -> VideoLimitExceeded:
        with pytest.raises(VideoLimitExceeded) as caught:
            run_isolated(VideoJob(path=path, limits=VideoLimits(**limits)))  # type: ignore[arg-type]
        assert caught.value.status == 422
        return caught.value

    assert refused(clips["original"], max_frame_pixels=10_000).limit == "frame_size"
    assert refused(clips["original"], max_duration_s=2.0).limit == "duration"
    assert refused(clips["original"], max_frames=2).limit == "frames"
    data = Path(clips["original"]).read_bytes()
    for name, body in (("empty", b""), ("garbage", bytes(range(256)) * 40), ("truncated", data[: len(data) // 2])):
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(CorruptVideo):
            run_isolated(VideoJob(path=str(path), limits=VideoLimits()))
