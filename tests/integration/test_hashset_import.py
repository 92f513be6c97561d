"""Importing hash lists into the real database: all or nothing, versions, and confidentiality."""

from __future__ import annotations

import hashlib

import asyncpg
import pytest

from detector.tools.cryptographic import Md5Tool
from detector.tools.pdq import PdqTool
from hashsets import entries, lists
from hashsets.errors import InvalidListFile, ToolMismatch
from hashsets.parse import parse_lines

PDQ = PdqTool()
MD5 = Md5Tool()


def pdq_hex(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


async def run_import(conn: asyncpg.Connection, text: str, name: str = "list", tool=PDQ) -> lists.ImportResult:  # type: ignore[no-untyped-def]
    return await lists.import_entries(
        conn,
        name=name,
        tool=tool.name,
        source="tests",
        entries=parse_lines(text.splitlines(keepends=True), tool.parse_hex),
        file_sha256=hashlib.sha256(text.encode()).digest(),
    )


async def test_csv_import_creates_a_version_and_stores_entries(pool: asyncpg.Pool) -> None:
    text = "id,hash,category\n" + "".join(f"e{i},{pdq_hex(i)},B1\n" for i in range(1000))
    async with pool.acquire() as conn:
        result = await run_import(conn, text)
        assert (result.version, result.entries) == (1, 1000)
        [active] = await lists.active_versions(conn)
        assert (active.name, active.tool, active.version, active.entry_count) == ("list", "pdq", 1, 1000)
        async with conn.transaction():
            rows = sorted([r async for chunk in entries.stream_entries(conn, active, chunk=300) for r in chunk])
        assert [value.hex() for _, value in rows] == [pdq_hex(i) for i in range(1000)]
        described = await entries.describe_entries(conn, [rows[7][0]])
        assert described[rows[7][0]].entry_id == "e7" and described[rows[7][0]].category == "B1"

        second = await run_import(conn, "hash\n" + pdq_hex(5000) + "\n")
        assert second.version == 2
        [active] = await lists.active_versions(conn)
        assert (active.version, active.entry_count) == (2, 1)


async def test_a_bad_line_anywhere_keeps_nothing_and_names_the_line(pool: asyncpg.Pool) -> None:
    secret = pdq_hex(3)
    lines = [f"{pdq_hex(i)}\n" for i in range(120_000)]
    lines[110_000] = secret[:-1] + "\n"  # one digit short, deep into a later COPY batch
    lines[5] = "not-hex\n"
    async with pool.acquire() as conn:
        with pytest.raises(InvalidListFile) as caught:
            await run_import(conn, "".join(lines))
        message = caught.value.message
        assert "line 6:" in message and "line 110001:" in message
        assert "2 invalid line(s)" in message
        assert secret[:-1] not in message
        assert await conn.fetchval("SELECT count(*) FROM hash_entries") == 0
        assert await conn.fetchval("SELECT count(*) FROM hashsets") == 0


async def test_duplicate_ids_wrong_columns_and_ids_that_leak_hashes_are_refused(pool: asyncpg.Pool) -> None:
    text = "\n".join(
        [
            "hash,id",
            f"{pdq_hex(1)},a",
            f"{pdq_hex(2)},a",
            f"{pdq_hex(3)}",
            f"{pdq_hex(4)},{pdq_hex(4)}",
        ]
    )
    async with pool.acquire() as conn:
        with pytest.raises(InvalidListFile) as caught:
            await run_import(conn, text)
    message = caught.value.message
    assert "line 4: expected 2 columns, found 1" in message
    assert "line 5: the id repeats the hash value" in message
    assert pdq_hex(4) not in message


async def test_a_list_keeps_its_tool(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await run_import(conn, "00" * 16 + "\n", name="exact", tool=MD5)
        with pytest.raises(ToolMismatch):
            await run_import(conn, pdq_hex(1) + "\n", name="exact")


async def test_duplicate_ids_are_refused_by_the_database_and_nothing_is_kept(pool: asyncpg.Pool) -> None:
    # Checked by the unique index rather than a set in memory, so a 10M-entry import streams.
    text = "hash,id\n" + f"{pdq_hex(1)},a\n{pdq_hex(2)},b\n{pdq_hex(3)},a\n"
    async with pool.acquire() as conn:
        with pytest.raises(InvalidListFile, match="the id 'a' appears 2 times"):
            await run_import(conn, text)
        assert await conn.fetchval("SELECT count(*) FROM hash_entries") == 0
