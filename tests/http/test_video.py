"""Video scans over HTTP: a list made from vPDQ hash files (``hashguard hash --tool vpdq``) imported with
``hashguard hashsets import --tool vpdq``, matched by re-encoded copies through /v1/scan; unrelated
videos not; hostile files refused with a 4xx within their limits, the service healthy after, and
no upload left on disk. Clips are drawn and encoded by the test (``detector.synthetic_video``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from detector.synthetic_video import Clip, encode
from detector.video_decode import VideoJob, VideoLimits, run_isolated
from detector.video_frames import format_lines
from tests.harness import scan
from tests.http.inprocess import Cli, Service
from tests.metrics_reading import samples

pytestmark = pytest.mark.slow


def sample(exposition: str, name: str, **labels: str) -> float | None:
    return samples(exposition).get((name, frozenset(labels.items())))


CLIP = dict(seconds=5.0, fps=10.0, width=256, height=192)
LISTED = (21, 22, 23)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The listed clips, their vPDQ hash files (written as ``hashguard hash --tool vpdq`` prints them), re-encoded
    copies of one of them and an unrelated clip: drawn and encoded once for the module."""
    folder = tmp_path_factory.mktemp("videos")
    hashes = folder / "hashes"
    hashes.mkdir()
    files: dict[str, Path] = {"hashes": hashes}
    for seed in LISTED:
        original = Path(encode(str(folder / f"listed-{seed}.mp4"), Clip(seed=seed, **CLIP)))  # type: ignore[arg-type]
        files[f"listed-{seed}"] = original
        value = run_isolated(VideoJob(path=str(original), limits=VideoLimits())).value
        (hashes / f"video-{seed}.txt").write_text("\n".join(format_lines(value)) + "\n")
    clip = Clip(seed=22, **CLIP)  # type: ignore[arg-type]
    files["copy-webm"] = Path(encode(str(folder / "copy.webm"), clip, container="webm", codec="libvpx", bit_rate=200_000))
    files["copy-small"] = Path(encode(str(folder / "copy.mkv"), clip, container="mkv", size=(192, 144), crf=35))
    files["unrelated"] = Path(encode(str(folder / "unrelated.mp4"), Clip(seed=99, **CLIP)))  # type: ignore[arg-type]
    return files


@pytest.fixture
def videos(clips: dict[str, Path], cli: Cli) -> dict[str, Path]:
    """The folder of hash files imported as the vpdq list "videos"."""
    out = cli(
        "hashsets", "import", str(clips["hashes"]), "--name", "videos", "--tool", "vpdq", "--source", "tests", "--allow-unsigned"
    )
    assert "imported 3 vpdq entries" in out.stdout
    return clips


def _multipart(data: bytes, ctype: str, content_id: str) -> tuple[bytes, str]:
    boundary = "hashguard-video-boundary"
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="content_id"\r\n\r\n{content_id}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="v"\r\nContent-Type: {ctype}\r\n\r\n'.encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_reencoded_copies_match_and_unrelated_videos_do_not(
    videos: dict[str, Path], cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    service = start_service(HASHGUARD_VIDEO_TMP_DIR=str(spool))
    key = cli.new_key()
    tickets: list[str] = []
    for name, ctype in (("copy-webm", "video/webm"), ("copy-small", "video/x-matroska")):
        result = scan(service, key, videos[name].read_bytes(), content_id=name, ctype=ctype)
        assert result.status == 200, result.body
        answer = result.json()
        assert answer["verdict"] == "match", answer
        [match] = answer["matches"]
        assert (match["entry_id"], match["tool"], match["hashset"]) == ("video-22", "vpdq", "videos")
        assert match["query_share"] >= 80.0 and match["index_share"] > 0 and match["matched_frames"] >= 4
        assert "distance" not in match
        assert answer["ticket_id"]
        tickets.append(answer["ticket_id"])
    # The ticket's evidence names how much of each video matched.
    ticket = service.request("GET", f"/v1/tickets/{tickets[0]}", None, cli.new_key("reviewer"))
    assert ticket.status == 200, ticket.body
    [evidence] = ticket.json()["evidence"]
    assert evidence["tool"] == "vpdq" and evidence["query_share"] >= 80.0 and evidence["matched_frames"] >= 4
    result = scan(service, key, videos["unrelated"].read_bytes(), content_id="unrelated", ctype="video/mp4")
    assert result.status == 200, result.body
    assert result.json()["verdict"] == "no_match"
    body, ctype = _multipart(videos["copy-webm"].read_bytes(), "video/webm", "form-video")
    result = service.request("POST", "/v1/scan", body, key, Content_Type=ctype)
    assert result.status == 200, result.body
    assert [m["entry_id"] for m in result.json()["matches"]] == ["video-22"]
    assert list(spool.iterdir()) == []  # every upload deleted once hashed
    # ``hashguard hash --tool vpdq`` prints the hash files the list was made from.
    printed = cli("hash", "--tool", "vpdq", str(videos["listed-21"])).stdout
    assert printed == (videos["hashes"] / "video-21.txt").read_text()
    # The platform hashed the video itself: the same frames as a vpdq lookup.
    frames = [line.split(",") for line in cli("hash", "--tool", "vpdq", str(videos["copy-small"])).stdout.splitlines()]
    item = {"content_id": "hashed-elsewhere", "vpdq": [[int(f), int(q), h, float(t)] for f, q, h, t in frames]}
    result = service.post_json("/v1/lookup", item, key)
    assert result.status == 200, result.body
    assert [m["entry_id"] for m in result.json()["matches"]] == ["video-22"]
    assert result.json()["matches"][0]["query_share"] >= 80.0
    metrics = service.request("GET", "/metrics").body.decode()
    assert sample(metrics, "hashguard_video_scans_total", outcome="hashed") == 4


def test_exact_video_hashes_match_the_file_bytes(
    videos: dict[str, Path], cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    data = videos["unrelated"].read_bytes()
    listing = tmp_path / "md5.csv"
    listing.write_text(f"id,hash\nvideo-md5,{hashlib.md5(data).hexdigest()}\n")
    cli("hashsets", "import", str(listing), "--name", "video-md5", "--tool", "md5", "--source", "tests", "--allow-unsigned")
    service = start_service()
    key = cli.new_key()
    result = scan(service, key, data, content_id="exact", ctype="video/mp4")
    assert result.status == 200, result.body
    assert [(m["entry_id"], m["tool"]) for m in result.json()["matches"]] == [("video-md5", "md5")]
    result = scan(service, key, data + b"\0", content_id="exact-2", ctype="video/mp4")  # one byte more: not the same file
    assert result.json()["verdict"] == "no_match" or [m["tool"] for m in result.json()["matches"]] == []


def test_hostile_videos_end_in_4xx_within_limits_and_the_service_stays_healthy(
    videos: dict[str, Path], cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    service = start_service(
        HASHGUARD_VIDEO_TMP_DIR=str(spool),
        HASHGUARD_VIDEO_MAX_BYTES="2000000",
        HASHGUARD_VIDEO_MAX_SECONDS="30",
        HASHGUARD_VIDEO_MAX_FRAMES="8",
    )
    key = cli.new_key()
    good = videos["copy-webm"].read_bytes()
    long_clip = Path(encode(str(tmp_path / "long.mp4"), Clip(seed=5, seconds=12.0, fps=5.0, width=96, height=64)))
    big_frames = Path(
        encode(str(tmp_path / "big.mp4"), Clip(seed=6, seconds=1.0, fps=5.0, width=96, height=64), size=(4096, 2304))
    )
    cases: dict[str, tuple[bytes, str, int, str]] = {
        "empty": (b"", "video/mp4", 422, "corrupt_media"),
        "garbage": (bytes(range(256)) * 64, "video/mp4", 422, "corrupt_media"),
        "truncated": (good[: len(good) // 3], "video/webm", 422, "corrupt_media"),
        "not-a-container": (json.dumps({"a": 1}).encode() * 100, "video/quicktime", 422, "corrupt_media"),
        "too-many-frames": (long_clip.read_bytes(), "video/mp4", 422, "video_limit_exceeded"),
        "huge-frames": (big_frames.read_bytes(), "video/mp4", 422, "video_limit_exceeded"),
        "too-many-bytes": (b"\0" * 2_000_001, "video/mp4", 413, "video_limit_exceeded"),
    }
    for name, (body, ctype, status, code) in cases.items():
        result = scan(service, key, body, content_id=name, ctype=ctype)
        assert result.status == status, (name, result.status, result.body)
        assert result.json()["error"]["code"] == code, (name, result.body)
    # An absurd declared duration, taken from the container header before a frame is decoded.
    declared = start_service(HASHGUARD_VIDEO_MAX_SECONDS="2", HASHGUARD_VIDEO_TMP_DIR=str(spool))
    result = scan(declared, key, long_clip.read_bytes(), content_id="long", ctype="video/mp4")
    assert result.status == 422 and "declares" in result.json()["error"]["message"], result.body
    assert service.request("GET", "/healthz").status == 200
    ok = scan(service, key, good, content_id="after", ctype="video/webm")
    assert ok.status == 200 and ok.json()["verdict"] == "match", ok.body
    assert list(spool.iterdir()) == []  # refused uploads are deleted too
    metrics = service.request("GET", "/metrics").body.decode()
    assert sample(metrics, "hashguard_video_refused_total", reason="frames") == 1
    assert sample(metrics, "hashguard_video_refused_total", reason="frame_size") == 1
    assert sample(metrics, "hashguard_video_refused_total", reason="bytes") == 1
    assert sample(metrics, "hashguard_video_refused_total", reason="corrupt") == 4


def test_a_decode_past_its_wall_time_costs_only_its_worker(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = start_service(HASHGUARD_VIDEO_WALL_S="0.05")
    key = cli.new_key()
    slow = tmp_path / "noise.mp4"
    rng = np.random.default_rng(8)
    with av.open(str(slow), mode="w") as out:  # noise: the most expensive picture to decode
        stream: Any = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for _ in range(90):
            picture = av.VideoFrame.from_ndarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    result = scan(service, key, slow.read_bytes(), content_id="slow", ctype="video/mp4")
    assert result.status == 422, result.body
    assert "HASHGUARD_VIDEO_WALL_S" in result.json()["error"]["message"]
    assert service.request("GET", "/healthz").status == 200
    image_scan = scan(service, key, b"not a picture", content_id="img", ctype="image/png")
    assert image_scan.status == 415  # the image path is untouched: not an image is its own 415


def test_a_signed_folder_of_hash_files_imports_and_an_altered_one_does_not(
    clips: dict[str, Path], cli: Cli, tmp_path: Path
) -> None:
    key = tmp_path / "issuer.key"
    public = cli("hashsets", "sign", "keygen", str(key)).stdout.strip()
    cli("hashsets", "trust", "Test Hotline", public, "--actor", "admin-1")
    folder = tmp_path / "signed"
    folder.mkdir()
    for seed in LISTED:
        (folder / f"video-{seed}.txt").write_text((clips["hashes"] / f"video-{seed}.txt").read_text())
    manifest = tmp_path / "videos.manifest.json"
    cli(
        "hashsets", "sign", "manifest", str(folder), "--key", str(key), "--issuer", "Test Hotline",
        "--name", "hotline-videos", "--tool", "vpdq", "--version", "2026.1", "--out", str(manifest),
    )  # fmt: skip
    assert json.loads(manifest.read_text())["entries"] == 3
    (folder / "video-21.txt").write_text((clips["hashes"] / "video-22.txt").read_text())  # swapped after signing
    failed = cli("hashsets", "import", str(folder), "--manifest", str(manifest), check=False)
    assert failed.returncode == 1 and "SHA-256" in failed.stderr
    (folder / "video-21.txt").write_text((clips["hashes"] / "video-21.txt").read_text())
    out = cli("hashsets", "import", str(folder), "--manifest", str(manifest))
    assert "imported 3 vpdq entries" in out.stdout
