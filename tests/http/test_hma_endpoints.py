"""The HMA-compatible matching endpoints, called exactly as HMA's documentation shows (the query strings of
its API reference and tests), against hashguard's lists, keys, tenants and lookup use case."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernel.keys import PREFIX_LENGTH
from tests.harness import import_test_list, ok
from tests.http.inprocess import Cli, Service


def get(service: Service, path: str, key: str, **query: str) -> tuple[int, Any]:
    result = service.request("GET", f"{path}?{urllib.parse.urlencode(query)}", None, key)
    return result.status, json.loads(result.body)


def test_hma_lookups_match_hashguard_lists_and_never_leak_hashes(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    hashes = import_test_list(cli, tmp_path)
    service = start_service()
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    known, other = hashes[11], hashes[12]
    unknown = "f" * 64

    status, body = get(service, "/m/raw_lookup", key, signal_type="pdq", signal=known)
    assert status == 200 and isinstance(body, dict) and len(body["matches"]) == 1 and isinstance(body["matches"][0], int)
    assert get(service, "/m/raw_lookup", key, signal_type="pdq", signal=unknown) == (200, {"matches": []})
    assert get(service, "/m/raw_lookup", key, signal_type="pdq", signal=known, banks="another-list") == (200, {"matches": []})

    status, refused = get(service, "/m/raw_lookup", key, signal_type="pdq", signal=known, include_distance="true")
    assert status == 403 and refused["error"]["code"] == "distances_not_granted"
    granted = cli.new_key()
    cli("keys", "grant-distances", granted[:PREFIX_LENGTH], "--reason", "tests: HMA client compatibility")
    status, near = get(service, "/m/raw_lookup", granted, signal_type="pdq", signal=known, include_distance="true")
    assert status == 200 and near == {"matches": [{"bank_content_id": body["matches"][0], "distance": "0"}]}
    status, by_bank_near = get(service, "/m/lookup", granted, signal_type="pdq", signal=known)
    assert by_bank_near == {"test-list": [{"bank_content_id": body["matches"][0], "distance": "0"}]}

    # /m/lookup as HMA's API reference shows it: GET /m/lookup?signal_type=pdq&signal=<hex>
    fresh = cli.new_key()
    status, by_bank = get(service, "/m/lookup", fresh, signal_type="pdq", signal=other)
    assert status == 200 and list(by_bank) == ["test-list"]
    [match] = by_bank["test-list"]
    assert set(match) == {"bank_content_id"}  # no distance for a key not granted them
    assert get(service, "/m/lookup", fresh, signal_type="pdq", signal=unknown) == (200, {})
    status, url = get(service, "/m/lookup", fresh, url="https://example.org/picture.png")
    assert status == 400 and url["error"]["code"] == "url_fetching_refused"
    status, bad = get(service, "/m/lookup", fresh, signal_type="tmk", signal=known)
    assert status == 400 and bad["error"]["code"] == "unknown_signal_type"
    status, bad = get(service, "/m/raw_lookup", fresh, signal_type="pdq", signal="xyz")
    assert status == 400

    # The lookup use case: the match opened a ticket in the key's tenant, named by the hash.
    tickets = ok(service.request("GET", "/v1/tickets", key=reviewer))["tickets"]
    assert tickets and all(t["content_id"].startswith("hma:pdq:") for t in tickets)

    compared = service.post_json("/m/compare", {"pdq": [known, known]}, fresh)
    assert compared.status == 200 and compared.json() == {"pdq": [True, {"distance": 0}]}
    far = ok(service.post_json("/m/compare", {"pdq": [known, unknown]}, fresh))
    assert far["pdq"][0] is False and far["pdq"][1]["distance"] > 31
    assert service.post_json("/m/compare", {"pdq": [known]}, fresh).status == 400

    status, index = get(service, "/m/index/status", fresh)
    assert status == 200 and index["pdq"]["present"] and index["pdq"]["size"] == 5
    assert service.request("GET", "/m/raw_lookup?signal_type=pdq&signal=" + known).status == 401

    for value in hashes.values():  # no list hash in any answer or log line
        assert value not in service.log()
