"""Migrations against a real, empty PostgreSQL database."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from kernel.db import DatabaseError, discover_migrations, migrate


async def test_all_migrations_apply_to_an_empty_database_once(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        applied = await migrate(conn)
        assert applied == [m.number for m in discover_migrations()]
        assert applied == sorted(applied) and len(applied) >= 3
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"schema_migrations", "api_keys", "hashsets", "hashset_versions", "hash_entries", "scan_matches"} <= tables
        assert await migrate(conn) == []  # never re-applied
    finally:
        await conn.close()


async def test_replicas_starting_together_apply_each_migration_exactly_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(n for applied in results for n in applied) == [m.number for m in discover_migrations()]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(discover_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_stops_the_start(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        migrations = discover_migrations()
        await migrate(conn, migrations)
        edited = [dataclasses.replace(migrations[0], sql=migrations[0].sql + "\n-- edited"), *migrations[1:]]
        with pytest.raises(DatabaseError, match="edited after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_no_trace(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        migrations = discover_migrations()
        broken = dataclasses.replace(
            migrations[-1], number=9999, name="broken", sql="CREATE TABLE half_done (x int); SELECT 1/0;"
        )
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, [*migrations, broken])
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE number = 9999") == 0
    finally:
        await conn.close()
