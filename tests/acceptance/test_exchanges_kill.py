"""A ``hashguard exchanges fetch`` process SIGKILLed in the middle of a fetch: the next fetch resumes exactly,
the list equals the source, and no page was applied twice (every entry row written once)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time

import asyncpg
import pytest

from tests.conftest import Cli
from tests.standins.ncmec_hashsharing import PASSWORD, USER, Entry, InThread, NcmecStandIn


async def _held(url: str, name: str) -> tuple[dict[str, bytes], int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT e.id, e.entry_id, e.hash FROM hash_entries e JOIN hashset_versions v ON v.id = e.version_id"
            " JOIN hashsets h ON h.id = v.hashset_id WHERE h.name = $1",
            name,
        )
        current = await conn.fetchval(
            "SELECT v.lineage FROM hashsets h JOIN hashset_versions v ON v.id = h.current_version_id WHERE h.name = $1", name
        )
        retracted = {
            r["entry_row"] for r in await conn.fetch("SELECT entry_row FROM hash_retractions WHERE version_id = ANY($1)", current)
        }
        alive = {r["entry_id"]: r["hash"] for r in rows if r["id"] not in retracted}
        return alive, len(rows)
    finally:
        await conn.close()


@pytest.mark.slow
def test_sigkill_mid_fetch_then_resume(cli: Cli) -> None:
    stand_in = NcmecStandIn(page_size=500)
    rng = random.Random(21)
    now = int(time.time())
    for i in range(2000):
        stand_in.put(Entry(member="42", id=f"k{i}", at=now - 60 + i % 20, fingerprints={"pdq": rng.randbytes(32).hex()}))
    stand_in.faults.hang.add(1501)  # the fourth page never answers while the process lives
    env = {**cli.env, "KILL_NCMEC_USER": USER, "KILL_NCMEC_PASSWORD": PASSWORD, "HASHGUARD_EXCHANGES_BATCH_ENTRIES": "500"}
    with InThread(stand_in) as running:
        cli.env.update(env)
        cli(
            "exchanges", "add", "ncmec", "--kind", "ncmec", "--set", f"environment={running.url}",
            "--set", "username=env:KILL_NCMEC_USER", "--set", "password=env:KILL_NCMEC_PASSWORD", "--set", "settle_s=0",
        )  # fmt: skip
        fetch = subprocess.Popen(
            [sys.executable, "-m", "hashguard.cli", "exchanges", "fetch", "ncmec"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert stand_in.hanging.wait(60), "the fetch never reached the fourth page"
            os.kill(fetch.pid, signal.SIGKILL)
            fetch.wait(30)
        finally:
            if fetch.poll() is None:
                fetch.kill()
                fetch.wait(30)
        assert fetch.returncode == -signal.SIGKILL
        url = env["HASHGUARD_DATABASE_URL"]
        alive, written = asyncio.run(_held(url, "ncmec-pdq"))
        assert len(alive) == written == 1500  # three pages committed, each with its checkpoint
        stand_in.faults.hang.clear()
        out = cli("exchanges", "fetch", "ncmec").stdout
        assert "1 pages" in out and "500 added" in out  # resumed at the fourth page, nothing re-applied
        alive, written = asyncio.run(_held(url, "ncmec-pdq"))
        assert alive == {
            key: bytes.fromhex(value) for key, value in ((k, e.fingerprints["pdq"]) for k, e in stand_in.entries.items())
        }
        assert written == 2000
