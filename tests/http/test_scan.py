"""Scans and lookups over HTTP on loopback against the app served in this process, with a list
made from drawn pictures imported through the command line (also run in this process).

The same path through a real ``hashguard serve`` process: tests/acceptance/test_scan_e2e.py."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.synthetic import draw, encode, variant
from tests.harness import import_test_list, make_list, scan
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    return import_test_list(cli, tmp_path / "pictures")


def test_multipart_upload_with_form_fields(listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    key = cli.new_key()
    boundary = "hashguard-test-boundary"
    image = variant(draw(12), scale=0.7)
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="content_id"\r\n\r\nform-item-12\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="content_url"\r\n\r\nhttps://example.test/p/12\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode(),
            image,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    result = service.request("POST", "/v1/scan", body, key, Content_Type=f"multipart/form-data; boundary={boundary}")
    assert result.status == 200, result.body
    assert result.json()["content_id"] == "form-item-12"
    assert [m["entry_id"] for m in result.json()["matches"]] == ["entry-12"]


def test_lookup_single_and_batch_in_order(listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    key = cli.new_key()
    near = bytearray(bytes.fromhex(listed[14]))
    near[0] ^= 0b1011  # three bits away: still a match at threshold 31
    single = service.post_json("/v1/lookup", {"content_id": "c-14", "hashes": {"pdq": near.hex().upper()}}, key)
    assert single.status == 200, single.body
    assert single.json()["verdict"] == "match"
    assert "distance" not in single.json()["matches"][0]  # distances read entries back: not by default
    assert single.json()["matches"][0]["entry_id"] == "entry-14"

    far = bytes(b ^ 0xFF for b in bytes.fromhex(listed[11])).hex()
    items = [{"content_id": f"c-{i}", "hashes": {"pdq": listed[11] if i % 2 else far}} for i in range(40)]
    batch = service.post_json("/v1/lookup", {"items": items}, key)
    assert batch.status == 200, batch.body
    answers = batch.json()["items"]
    assert [a["content_id"] for a in answers] == [f"c-{i}" for i in range(40)]
    assert [a["verdict"] for a in answers] == ["match" if i % 2 else "no_match" for i in range(40)]
    assert all(a["matches"][0]["entry_id"] == "entry-11" for a in answers if a["verdict"] == "match")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge image but holds almost no data: a decompression-bomb probe."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_bad_input_gets_clear_errors_and_the_service_survives(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service(HASHGUARD_MAX_UPLOAD_BYTES="300000", HASHGUARD_MAX_PIXELS="2000000")
    key = cli.new_key()
    reviewer = cli.new_key("reviewer")
    jpeg = variant(draw(15), scale=1.0, quality=90)
    png = encode(draw(15))

    def expect(result, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
        assert result.status == status, result.body
        error = result.json()["error"]
        assert error["code"] == code
        assert error["message"]

    expect(scan(service, "", jpeg), 401, "unauthorized")
    expect(service.request("POST", "/v1/scan?content_id=x", jpeg), 401, "unauthorized")
    expect(scan(service, "hg_not-a-real-key", jpeg), 401, "unauthorized")
    expect(scan(service, reviewer, jpeg), 403, "forbidden")
    expect(scan(service, key, jpeg, content_id=None), 400, "missing_field")
    expect(scan(service, key, b"this is not an image at all", ctype="application/octet-stream"), 415, "unsupported_media_type")
    expect(scan(service, key, b""), 415, "unsupported_media_type")
    expect(scan(service, key, b'{"a": 1}', ctype="application/json"), 415, "unsupported_media_type")
    expect(scan(service, key, b"\xff" * 400_000), 413, "payload_too_large")
    expect(scan(service, key, _png_header_only(60_000, 60_000), ctype="image/png"), 422, "image_too_large")
    expect(scan(service, key, encode(draw(1, size=(2000, 1200)), "JPEG")), 422, "image_too_large")
    expect(scan(service, key, jpeg[: len(jpeg) // 2]), 422, "corrupt_media")
    expect(scan(service, key, png[: len(png) // 3], ctype="image/png"), 422, "corrupt_media")
    expect(scan(service, key, jpeg[:40]), 422, "corrupt_media")

    expect(service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": "abc"}}, key), 400, "invalid_hash")
    expect(service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": "zz" * 32}}, key), 400, "invalid_hash")
    expect(service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"nosuchtool": "00"}}, key), 400, "unknown_tool")
    expect(service.post_json("/v1/lookup", {"hashes": {"md5": "00" * 16}}, key), 400, "missing_field")
    expect(service.post_json("/v1/lookup", {"content_id": "x", "hashes": {}}, key), 400, "bad_request")
    expect(
        service.post_json("/v1/lookup", {"items": [{"content_id": "x", "hashes": {"md5": "00" * 16}}] * 1001}, key),
        400,
        "bad_request",
    )
    expect(service.request("POST", "/v1/lookup", b"{not json", key, Content_Type="application/json"), 400, "bad_request")
    expect(service.request("POST", "/v1/lookup", b"[" * 100_000, key, Content_Type="application/json"), 400, "bad_request")
    expect(scan(service, key, jpeg, content_id="nul%00byte"), 400, "bad_request")
    expect(service.post_json("/v1/lookup", {"content_id": "x\u0000y", "hashes": {"md5": "00" * 16}}, key), 400, "bad_request")
    expect(service.post_json("/v1/lookup", {"content_id": "x\ud800", "hashes": {"md5": "00" * 16}}, key), 400, "bad_request")
    expect(service.request("GET", "/v1/nothing-here"), 404, "not_found")
    expect(service.request("GET", "/v1/scan", key=key), 405, "method_not_allowed")

    # The error for a malformed hash never repeats the value sent.
    secretish = "ab" * 31 + "g1"
    result = service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": secretish}}, key)
    assert secretish not in result.body.decode()

    # Still alive and still correct after all of that.
    assert service.request("GET", "/healthz").status == 200
    good = scan(service, key, variant(draw(15), scale=0.5))
    assert good.status == 200 and good.json()["verdict"] == "match"
    metrics = service.request("GET", "/metrics").body.decode()
    for code in (
        "unauthorized",
        "forbidden",
        "missing_field",
        "unsupported_media_type",
        "payload_too_large",
        "image_too_large",
        "corrupt_media",
        "invalid_hash",
        "unknown_tool",
        "bad_request",
    ):
        assert f'hashguard_errors_total{{code="{code}"}}' in metrics, code
    assert "Traceback" not in service.log()


def test_a_listed_png_with_a_raised_height_is_corrupt_not_a_no_match(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    """Issue 11, finding 3: IHDR's height raised by 2%, its CRC fixed, pixels untouched, answered 200 no_match."""
    service = start_service()
    key = cli.new_key()
    listed_png = encode(draw(12))  # byte for byte the file the list's hash was made from
    assert scan(service, key, listed_png, ctype="image/png").json()["verdict"] == "match"
    raised = bytearray(listed_png)
    (height,) = struct.unpack(">I", raised[20:24])
    raised[20:24] = struct.pack(">I", height * 102 // 100)
    raised[29:33] = struct.pack(">I", zlib.crc32(bytes(raised[12:29])))
    result = scan(service, key, bytes(raised), ctype="image/png")
    assert result.status == 422, result.body
    assert result.json()["error"]["code"] == "corrupt_media"


def test_a_list_imported_while_running_is_matched_without_restart(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = start_service()
    key = cli.new_key()
    upload = variant(draw(12), scale=0.5)
    assert scan(service, key, upload).json()["verdict"] == "no_match"
    make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "late-list", "--tool", "pdq", "--allow-unsigned")
    wait_until(
        lambda: scan(service, key, upload).json()["verdict"] == "match",
        10,
        interval=0.2,
        what="the running service picking up the new list",
    )
    ready = service.request("GET", "/readyz").json()
    assert ready["index"]["hashsets"] == [{"name": "late-list", "version": 1, "tool": "pdq", "entries": 5, "status": "active"}]


def test_exact_tools_match_byte_identical_files(cli: Cli, start_service: Callable[..., Service], tmp_path: Path) -> None:
    picture = encode(draw(21), "JPEG", quality=85)
    path = tmp_path / "exact.jpg"
    path.write_bytes(picture)
    [row] = [json.loads(line) for line in cli("hash", "--tool", "md5", str(path)).stdout.splitlines()]
    (tmp_path / "md5.txt").write_text(f"# plain list, one hash per line\n{row['hash']}\n")
    cli("hashsets", "import", str(tmp_path / "md5.txt"), "--name", "md5-list", "--tool", "md5", "--allow-unsigned")
    service = start_service()
    key = cli.new_key()
    same = scan(service, key, picture)
    assert same.json()["verdict"] == "match"
    assert same.json()["matches"] == [
        {
            "hashset": "md5-list",
            "hashset_version": 1,
            "entry_id": "1",
            "tool": "md5",
            "tool_version": "1",
            # start_service allowed every tool locally: no approval, and the record says so.
            "approval_id": None,
            "approval_reason": "local_allowance",
            "transform": "original",
        }
    ]
    reencoded = scan(service, key, encode(draw(21), "JPEG", quality=84))
    assert reencoded.json()["verdict"] == "no_match"
