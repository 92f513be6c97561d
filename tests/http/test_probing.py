"""The probing detector over HTTP: each attack class of issue 11 (smaller counts than
benchmarks/probing.py) is stopped before its 32nd matching lookup without recovering the entry, the
key stays suspended on every call until a lead releases it; benign re-encodings never suspend."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.probing import (
    Oracle,
    Outcome,
    boundary_walk,
    flip_per_call,
    group_testing,
    http_oracle,
    near_copy,
    one_batch,
    pdq_of,
    re_encodings,
)
from kernel.keys import PREFIX_LENGTH
from tests.harness import import_test_list, scan
from tests.http.inprocess import Cli, Service

SEED = 13  # a listed picture of tests.harness


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    return import_test_list(cli, tmp_path / "pictures")


def oracle(service: Service, key: str) -> Oracle:
    def post(path: str, payload: dict[str, object]) -> tuple[int, dict[str, object]]:
        result = service.post_json(path, payload, key)
        return result.status, result.json()

    return Oracle(http_oracle(post))


def attack_key(cli: Cli, distances: bool) -> str:
    key = cli.new_key()
    if distances:
        cli("keys", "grant-distances", key[:PREFIX_LENGTH], "--reason", "tests: the worst case")
    return key


def assert_stopped(outcome: Outcome, entry: bytes) -> None:
    assert outcome.blocked, outcome
    assert outcome.matching < 32, outcome
    assert outcome.guess != entry


@pytest.mark.parametrize(
    ("attack", "distances"),
    [
        (lambda o, near: flip_per_call(o, near, bits=64), True),
        (lambda o, near: one_batch(o, near, bits=128), True),
        (lambda o, near: group_testing(o, near), True),
        (lambda o, near: boundary_walk(o, near, random.Random(5)), False),
    ],
    ids=["flip-per-call", "one-batch", "group-testing", "boundary-walk"],
)
def test_each_attack_is_stopped_before_its_32nd_matching_lookup(
    attack: Callable[[Oracle, bytes], Outcome],
    distances: bool,
    listed: dict[int, str],
    cli: Cli,
    start_service: Callable[..., Service],
) -> None:
    service = start_service(HASHGUARD_KEY_CACHE_S="0")
    entry = bytes.fromhex(listed[SEED])
    near = near_copy(SEED, random.Random(1), entry)
    assert 4 <= sum(bin(a ^ b).count("1") for a, b in zip(near, entry, strict=True)) <= 12
    outcome = attack(oracle(service, attack_key(cli, distances)), near)
    assert_stopped(outcome, entry)


def test_a_suspended_key_is_refused_everywhere_until_a_lead_releases_it(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service(HASHGUARD_KEY_CACHE_S="0")
    key = attack_key(cli, distances=True)
    prefix = key[:PREFIX_LENGTH]
    entry = bytes.fromhex(listed[SEED])
    outcome = flip_per_call(oracle(service, key), near_copy(SEED, random.Random(1), entry), bits=64)
    assert outcome.blocked

    # Every call now: a scan of something unlisted, a lookup that matches nothing.
    unlisted = scan(service, key, pdq_free_picture(), content_id="other")
    nothing = service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": "00" * 32}}, key)
    for refused in (unlisted, nothing):
        assert refused.status == 403 and refused.json()["error"]["code"] == "key_suspended", refused.body

    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_key_suspensions_total{rule="off_weight"} 1.0' in metrics
    assert "probing detector: key" in service.log() and "entry-13 of test-list" in service.log()
    assert listed[SEED] not in service.log()  # never the entry's hash
    auditor = cli.new_key("auditor")
    page = service.request("GET", f"/v1/audit?subject=key:{prefix}", key=auditor).json()["entries"]
    [suspended] = [e for e in page if e["action"] == "key.suspended"]
    assert suspended["actor"] == "probing-detector" and suspended["after"]["entry_id"] == "entry-13"
    assert listed[SEED] not in json.dumps(page)
    assert prefix in cli("keys", "suspended").stdout

    # Only a lead or admin may release it, with a reason.
    lead, platform = cli.new_key("lead"), cli.new_key()
    path = f"/v1/keys/{prefix}/release"
    assert service.post_json(path, {"reason": "looked at it"}, platform).status == 403
    assert service.post_json(path, {}, lead).status == 400
    released = service.post_json(path, {"reason": "a customer's test harness, now stopped"}, lead)
    assert released.status == 200, released.body
    assert released.json()["key_prefix"] == prefix
    assert service.post_json("/v1/lookup", {"content_id": "x", "hashes": {"pdq": "00" * 32}}, key).status == 200
    assert service.post_json(path, {"reason": "again"}, lead).status == 409
    assert service.post_json("/v1/keys/hg_nosuchkey/release", {"reason": "x"}, lead).status == 404
    actions = [e["action"] for e in service.request("GET", f"/v1/audit?subject=key:{prefix}", key=auditor).json()["entries"]]
    assert actions[-2:] == ["key.suspended", "key.released"]

    # The command line does the same.
    second = attack_key(cli, distances=True)
    assert flip_per_call(oracle(service, second), near_copy(SEED, random.Random(2), entry), bits=64).blocked
    assert "released" in cli("keys", "release", second[:PREFIX_LENGTH], "--reason", "checked").stdout
    assert service.post_json("/v1/lookup", {"content_id": "y", "hashes": {"pdq": "00" * 32}}, second).status == 200


def pdq_free_picture() -> bytes:
    from detector.synthetic import draw, encode

    return encode(draw(424242), "JPEG", quality=80)


def test_benign_re_encodings_from_one_key_never_suspend_it(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service(HASHGUARD_KEY_CACHE_S="0")
    key = cli.new_key()
    statuses: list[int] = []
    for i, (_, _, jpeg) in enumerate(re_encodings(SEED, 240, random.Random(7))):
        if i % 8 == 0:
            result = scan(service, key, jpeg, content_id=f"upload-{i}")
        else:
            payload = {"content_id": f"upload-{i}", "hashes": {"pdq": pdq_of(jpeg).hex()}}
            result = service.post_json("/v1/lookup", payload, key)
        assert result.status == 200, (i, result.body)
        statuses.append(result.status)
        assert result.json()["verdict"] == "match"
    assert "hashguard_key_suspensions_total{" not in service.request("GET", "/metrics").body.decode()
