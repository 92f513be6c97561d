"""A lookup batch over HTTP: all its matches in one transaction, the answer's shape as before, and
the size limits (more than 1,000 items: 400; a body over 4 MiB, such as 100,000 items: 413)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg

from tests.harness import import_test_list
from tests.http.inprocess import Cli, Service


def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_a_1000_item_batch_records_its_500_matches_in_one_transaction(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    listed = import_test_list(cli, tmp_path / "pictures")
    service = start_service()
    key = cli.new_key()
    far = "00" * 32
    hashes = list(listed.values())
    items = [{"content_id": f"c-{i}", "hashes": {"pdq": hashes[i % len(hashes)] if i % 2 else far}} for i in range(1000)]
    answer = service.post_json("/v1/lookup", {"items": items}, key)
    assert answer.status == 200, answer.body
    verdicts = answer.json()["items"]
    assert [v["content_id"] for v in verdicts] == [f"c-{i}" for i in range(1000)]
    assert sum(v["verdict"] == "match" for v in verdicts) == 500
    first = next(v for v in verdicts if v["verdict"] == "match")
    assert set(first) == {"scan_id", "content_id", "verdict", "matches", "ticket_id", "elapsed_ms"}
    assert set(first["matches"][0]) == {
        "hashset",
        "hashset_version",
        "entry_id",
        "tool",
        "tool_version",
        "approval_id",
        "approval_reason",
        "transform",
    }

    # One transaction: every row carries the one transaction's start time (now()); the tickets' rows are
    # written in savepoints of it (so their xmin differ), the evidence with one COPY (one xmin).
    url = cli.env["HASHGUARD_DATABASE_URL"]
    [row] = fetch(url, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS xids, min(scanned_at) AS at FROM scan_matches")
    assert (row["n"], row["xids"]) == (500, 1)
    [tickets] = fetch(
        url, "SELECT count(*) AS n, count(DISTINCT observed_at) AS starts, min(observed_at) AS at FROM ticket_evidence"
    )
    assert (tickets["n"], tickets["starts"], tickets["at"]) == (500, 1, row["at"])


def test_batch_size_limits(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    key = cli.new_key()
    item = {"content_id": "c", "hashes": {"pdq": "00" * 32}}
    over = service.post_json("/v1/lookup", {"items": [item] * 1001}, key)
    assert over.status == 400 and "items" in over.json()["error"]["message"], over.body
    huge = service.request(
        "POST", "/v1/lookup", json.dumps({"items": [item] * 100_000}).encode(), key, Content_Type="application/json"
    )
    assert huge.status == 413, huge.body
    assert huge.json()["error"]["code"] == "payload_too_large"
    assert "at most 1000 items" in huge.json()["error"]["message"]
