"""A delta imported right after a bulk import: the planner has statistics and joins in linear time.

The checks read PostgreSQL's plans (``EXPLAIN``), not the clock. Before the fix the first delta
after a 100,000-entry COPY planned its duplicate-id check as a nested loop over the whole base
version (one rescan per new row) and took 46 s on this machine; at 10M entries it ran 11 minutes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from detector.tools.pdq import PdqTool
from hashsets import lists
from hashsets.errors import InvalidListFile
from hashsets.lists import Q
from hashsets.manifest import Kind
from hashsets.parse import parse_blocks

PDQ = PdqTool()
BULK = 100_000  # enough rows that a nested loop over them is visibly quadratic
DELTA = 10_000


def h(i: int) -> str:
    return hashlib.sha256(f"bulk-{i}".encode()).hexdigest()


async def put(conn: asyncpg.Connection, text: str, *, kind: Kind) -> lists.ImportResult:
    request = lists.ImportRequest(name="big", tool="pdq", source="tests", kind=kind, actor="tester")
    blocks = parse_blocks(text.splitlines(keepends=True), PDQ.parse_hex, width=32, allow_retractions=kind is Kind.DELTA)
    return await lists.import_list(conn, request, blocks)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def plan_of(conn: asyncpg.Connection, query: str, *args: Any) -> list[dict[str, Any]]:
    [document] = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + query, *args))
    return list(nodes(document["Plan"]))


def assert_linear_join(plan: list[dict[str, Any]]) -> None:
    kinds = [node["Node Type"] for node in plan]
    assert "Nested Loop" not in kinds, kinds
    assert {"Hash Join", "Merge Join"} & set(kinds), kinds
    assert [n["Relation Name"] for n in plan if n.get("Relation Name") == "hash_entries"], kinds


async def test_a_delta_right_after_a_bulk_import_gets_hash_joins_not_nested_loops(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await put(conn, "id,hash\n" + "".join(f"e{i},{h(i)}\n" for i in range(BULK)), kind=Kind.FULL)
        # The bulk import analysed what it wrote: the planner now knows the table's size and ids.
        reltuples = await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'hash_entries'")
        assert reltuples > 0.9 * BULK
        assert await conn.fetchval("SELECT count(*) FROM pg_stats WHERE tablename = 'hash_entries' AND attname = 'entry_id'") == 1

        delta = "op,id,hash\n" + "".join(f"add,d{i},{h(BULK + i)}\n" for i in range(DELTA))
        delta += "".join(f"retract,e{i},\n" for i in range(0, 2 * DELTA, 2))
        async with conn.transaction():  # the delta's rows stay uncommitted, as during its own conflict check
            result = await put(conn, delta, kind=Kind.DELTA)
            assert (result.added, result.retracted, result.entries) == (DELTA, DELTA, BULK)
            version_id, base = result.lineage[-1], list(result.lineage[:-1])
            # With the bulk import's statistics even the planner left to itself reads each side once ...
            assert_linear_join(await plan_of(conn, Q.add_conflicts, version_id, base, list(result.lineage)))
            # ... and with the guard the import runs under, it has no choice.
            async with lists.bulk_join_plan(conn):
                assert_linear_join(await plan_of(conn, Q.add_conflicts, version_id, base, list(result.lineage)))
                # The delta's staged retractions (a temporary table, dropped at commit) are still here.
                assert await conn.fetchval("SELECT count(*) FROM import_retractions") == DELTA
                assert_linear_join(await plan_of(conn, Q.resolve_retractions_by_id, base))
            # The guard is transaction-local and restored: the rest of the transaction plans as usual.
            assert await conn.fetchval("SELECT current_setting('enable_nestloop')") == "on"

        # The same path for real, committed: the delta is checked and refused in linear time.
        await put(conn, "op,id,hash\n" + "".join(f"add,x{i},{h(2 * BULK + i)}\n" for i in range(DELTA)), kind=Kind.DELTA)
        with pytest.raises(InvalidListFile) as refused:
            await put(conn, f"op,id,hash\nadd,new,{h(3 * BULK)}\nadd,e7,{h(3 * BULK + 1)}\n", kind=Kind.DELTA)
        assert "'e7'" in refused.value.message and h(7) not in refused.value.message


async def test_without_statistics_the_conflict_check_still_plans_linear_joins(pool: asyncpg.Pool) -> None:
    """Statistics never describe the rows an import just wrote; the guard keeps the plan linear anyway."""
    async with pool.acquire() as conn:
        small = lists.ANALYZE_AFTER_ROWS // 2  # below the threshold: nothing analyses this table
        await put(conn, "id,hash\n" + "".join(f"e{i},{h(i)}\n" for i in range(small)), kind=Kind.FULL)
        assert await conn.fetchval("SELECT count(*) FROM pg_stats WHERE tablename = 'hash_entries'") == 0
        async with conn.transaction():
            result = await put(
                conn, "op,id,hash\n" + "".join(f"add,d{i},{h(small + i)}\n" for i in range(small)), kind=Kind.DELTA
            )
            async with lists.bulk_join_plan(conn):
                assert_linear_join(
                    await plan_of(conn, Q.add_conflicts, result.lineage[-1], list(result.lineage[:-1]), list(result.lineage))
                )


async def test_a_small_import_does_not_analyse_and_leaves_the_planner_alone(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await put(conn, "id,hash\n" + "".join(f"e{i},{h(i)}\n" for i in range(50)), kind=Kind.FULL)
        assert await conn.fetchval("SELECT count(*) FROM pg_stats WHERE tablename = 'hash_entries'") == 0
        result = await put(conn, f"op,id,hash\nadd,e1,{h(1)}\nretract,e1,\nadd,e2b,{h(99)}\n", kind=Kind.DELTA)
        assert (result.added, result.retracted, result.entries) == (2, 1, 51)
        assert await conn.fetchval("SELECT current_setting('enable_nestloop')") == "on"
