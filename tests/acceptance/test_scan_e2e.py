"""The scan path end to end through a real process: ``hashguard serve`` on loopback, a list made
from drawn pictures hashed and imported with the ``hashguard`` command line (subprocesses too).

The rest of the scan and lookup behaviour is tested against the app in process: tests/http/test_scan.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.synthetic import draw, variant
from tests.conftest import Cli, Service
from tests.harness import import_test_list, scan


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    return import_test_list(cli, tmp_path / "pictures")


def test_resized_copy_matches_its_entry_and_unrelated_picture_does_not(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service()
    key = cli.new_key()

    copy = scan(service, key, variant(draw(13), scale=0.5, quality=60), content_id="upload-13")
    assert copy.status == 200, copy.body
    verdict = copy.json()
    assert verdict["verdict"] == "match"
    assert verdict["content_id"] == "upload-13"
    uuid.UUID(verdict["ticket_id"])  # a match opens a takedown ticket
    uuid.UUID(verdict["scan_id"])
    [match] = verdict["matches"]
    assert match["hashset"] == "test-list"
    assert match["hashset_version"] == 1
    assert match["entry_id"] == "entry-13"
    assert match["tool"] == "pdq"
    assert "distance" not in match  # not by default: distances read list entries back

    other = scan(service, key, variant(draw(999)), content_id="upload-999")
    assert other.status == 200
    assert other.json()["verdict"] == "no_match"
    assert other.json()["matches"] == []

    # No response may carry a list entry's hash value.
    for body in (copy.body, other.body):
        for value in listed.values():
            assert value not in body.decode()

    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_scans_total{endpoint="scan",verdict="match"} 1.0' in metrics
    assert 'hashguard_scans_total{endpoint="scan",verdict="no_match"} 1.0' in metrics
    assert 'hashguard_index_entries{hashset="test-list",tool="pdq"} 5.0' in metrics
    assert "hashguard_scan_duration_seconds_bucket" in metrics
