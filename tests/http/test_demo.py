"""The demo as a newcomer meets it (finding 13 of issue 11): the README's lookup example works on it,
its key is created once, written 0600 and audited, and its records name who made them.

The demo's own ``serve --demo`` process, its curl and a restart: tests/acceptance/test_embedded_and_demo.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import asyncpg

from hashguard.demo import DEMO_ACTOR, DEMO_LIST, seed
from kernel.commandline import run_with_connection
from kernel.settings import Settings
from tests.http.inprocess import Cli, Service

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_lookup_body() -> str:
    """The JSON the README's lookup example sends (the ``-d '...'`` after its ``/v1/lookup`` curl)."""
    text = README.read_text()
    found = re.search(r"curl -X POST \S*/v1/lookup .*?\n\s*-d '([^']+)'", text)
    assert found, "the README has no lookup example"
    return found.group(1)


def rows(url: str, query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_the_readme_lookup_example_matches_on_the_demo_and_the_demo_records_who_made_it(
    cli: Cli, start_service: Callable[..., Service], service_env: dict[str, str]
) -> None:
    settings = Settings.from_env(service_env)
    demo = run_with_connection(lambda conn: seed(conn, settings.data_dir), settings)
    assert demo.created and demo.key_file.stat().st_mode & 0o777 == 0o600
    # A second start reuses the key and says so: nothing to print, nothing created twice.
    again = run_with_connection(lambda conn: seed(conn, settings.data_dir), settings)
    assert not again.created and again.key == demo.key
    service = start_service(allow_tools=False)  # only what the demo itself allows

    [hashed] = [
        json.loads(line)
        for line in cli("hash", "--tool", "pdq", str(settings.data_dir / "demo" / "demo-3.png")).stdout.splitlines()
    ]
    body = readme_lookup_body().replace("<64 hex digits>", hashed["hash"])
    answer = service.request("POST", "/v1/lookup", body.encode(), demo.key, Content_Type="application/json")
    assert answer.status == 200, answer.body
    [item] = answer.json()["items"]
    assert item["verdict"] == "match" and item["matches"][0]["hashset"] == DEMO_LIST

    url = service_env["HASHGUARD_DATABASE_URL"]
    created = rows(url, "SELECT actor, subject FROM audit_log WHERE action = 'key.created'")
    [(actor, subject)] = [(r["actor"], r["subject"]) for r in created]
    assert actor == DEMO_ACTOR and subject.startswith("key:") and demo.key.startswith(subject.removeprefix("key:"))
    imported = rows(url, f"SELECT DISTINCT actor FROM hashset_events WHERE hashset = '{DEMO_LIST}'")
    assert [r["actor"] for r in imported] == [DEMO_ACTOR]
    assert "unknown" not in {r["actor"] for r in rows(url, "SELECT actor FROM audit_log")}
