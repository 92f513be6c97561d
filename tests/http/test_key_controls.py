"""What is set on a key beside its role, over HTTP: distances only when granted (and audited), rate
limits with 429 and Retry-After, per key from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.synthetic import draw, variant
from kernel.keys import PREFIX_LENGTH
from tests.harness import import_test_list, scan
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    return import_test_list(cli, tmp_path / "pictures")


def audit_actions(service: Service, auditor: str, subject: str) -> list[dict[str, object]]:
    page = service.request("GET", f"/v1/audit?subject={subject}", key=auditor)
    assert page.status == 200, page.body
    return [e for e in page.json()["entries"]]


def test_answers_carry_no_distance_unless_the_key_is_granted_them(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service(HASHGUARD_KEY_CACHE_S="0")
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    prefix = key[:PREFIX_LENGTH]
    near = bytearray(bytes.fromhex(listed[14]))
    near[0] ^= 0b1011

    def answers() -> list[dict[str, object]]:
        single = service.post_json("/v1/lookup", {"content_id": "c-14", "hashes": {"pdq": near.hex()}}, key)
        batch = service.post_json("/v1/lookup", {"items": [{"content_id": "c-14b", "hashes": {"pdq": near.hex()}}]}, key)
        scanned = scan(service, key, variant(draw(14), scale=0.8, quality=80), content_id="u-14")
        assert {single.status, batch.status, scanned.status} == {200}, (single.body, batch.body, scanned.body)
        return [single.json()["matches"][0], batch.json()["items"][0]["matches"][0], scanned.json()["matches"][0]]

    plain = answers()
    assert [m["entry_id"] for m in plain] == ["entry-14"] * 3
    assert all("distance" not in m for m in plain)

    # Staff still see how near the evidence was, on the ticket.
    ticket_id = service.post_json("/v1/lookup", {"content_id": "c-14", "hashes": {"pdq": near.hex()}}, key).json()["ticket_id"]
    evidence = service.request("GET", f"/v1/tickets/{ticket_id}", key=reviewer).json()["evidence"]
    assert {e["distance"] for e in evidence} == {3}

    out = cli("keys", "grant-distances", prefix, "--reason", "a research partner measuring its own hashing")
    assert "now carry distances" in out.stdout
    granted = answers()
    assert [m["distance"] for m in granted[:2]] == [3, 3] and isinstance(granted[2]["distance"], int)

    cli("keys", "withdraw-distances", prefix, "--reason", "the study is over")
    assert all("distance" not in m for m in answers())

    auditor = cli.new_key("auditor")
    entries = audit_actions(service, auditor, f"key:{prefix}")
    actions = [e["action"] for e in entries]
    assert actions == ["key.created", "key.distances_granted", "key.distances_withdrawn"]
    assert "a research partner" in json.dumps(entries[1])

    unknown = cli("keys", "grant-distances", "hg_nosuchkey", "--reason", "x", check=False)
    assert unknown.returncode == 1 and "no active key" in unknown.stderr


def test_rate_limits_answer_429_with_retry_after_per_key(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service(HASHGUARD_RATE_PER_S="1", HASHGUARD_RATE_BURST="20", HASHGUARD_KEY_CACHE_S="0")
    key, other = cli.new_key(), cli.new_key()
    far = bytes(b ^ 0xFF for b in bytes.fromhex(listed[11])).hex()

    def batch(k: str, n: int) -> tuple[int, str | None, dict[str, object]]:
        items = [{"content_id": f"c-{i}", "hashes": {"pdq": far}} for i in range(n)]
        r = service.post_json("/v1/lookup", {"items": items}, k)
        return r.status, r.headers.get("Retry-After"), r.json()

    assert batch(key, 15)[0] == 200  # 15 of the 20 tokens
    status, retry, body = batch(key, 10)  # a batch costs one token per item: 10 > the 5 left
    assert status == 429 and body["error"]["code"] == "rate_limited"  # type: ignore[index]
    assert retry is not None and int(retry) >= 1
    assert batch(other, 15)[0] == 200  # buckets are per key
    too_big = batch(other, 30)
    assert too_big[0] == 429 and "send smaller batches" in json.dumps(too_big[2])
    assert "hashguard_rate_limited_total" in service.request("GET", "/metrics").body.decode()

    # Its own limit, from the command line: a larger bucket.
    cli("keys", "limit", key[:PREFIX_LENGTH], "--burst", "100", "--rate", "50", "--reason", "a large platform")
    wait_until(lambda: batch(key, 60)[0] == 200, 30, interval=0.2)  # the bucket refills at 50 a second to 100
    cli("keys", "limit", key[:PREFIX_LENGTH], "--rate", "0", "--reason", "trusted internal batch job")
    assert all(batch(key, 200)[0] == 200 for _ in range(3))  # 0: unlimited
