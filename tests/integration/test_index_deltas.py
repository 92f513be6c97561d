"""The index follows list changes in place (issue 16): deltas, retractions, disables, metadata and
allow-list changes are applied without rebuilding a tool, a full replacement rebuilds that tool only,
and every snapshot answers exactly what a full reload of the same database answers."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from detector.approvals import pg as approvals_pg
from detector.matcher import LoadedVersion, MatchSnapshot, ToolEntries, build_snapshot
from detector.snapshots import SnapshotLoader
from detector.tools.base import IndexKind
from detector.tools.registry import ToolRegistry
from hashsets import allowlist, entries, lists
from hashsets.manifest import Kind
from hashsets.parse import parse_blocks
from hashsets.serving import SnapshotSource
from kernel.metrics import Metrics

TOOLS = ToolRegistry.load(("pdq", "md5"))
WIDTH = {"pdq": 32, "md5": 16}


def code(tool: str, i: int) -> bytes:
    return hashlib.sha256(f"{tool}-{i}".encode()).digest()[: WIDTH[tool]]


def flip(value: bytes, bits: int) -> bytes:
    out = bytearray(value)
    for b in range(bits):
        out[b // 8] ^= 1 << (b % 8)
    return bytes(out)


async def put(conn: asyncpg.Connection, name: str, tool: str, text: str, kind: Kind = Kind.FULL) -> lists.ImportResult:
    request = lists.ImportRequest(name=name, tool=tool, source="tests", kind=kind, actor="tester")
    parse = TOOLS.get(tool).parse_hex
    blocks = parse_blocks(text.splitlines(keepends=True), parse, width=WIDTH[tool], allow_retractions=kind is Kind.DELTA)
    return await lists.import_list(conn, request, blocks)


def full(tool: str, ids: list[int]) -> str:
    return "id,hash\n" + "".join(f"e{i},{code(tool, i).hex()}\n" for i in ids)


def delta(tool: str, add: list[int], retract: list[int]) -> str:
    lines = [f"add,e{i},{code(tool, i).hex()}" for i in add] + [f"retract,e{i}," for i in retract]
    return "op,id,hash\n" + "".join(line + "\n" for line in lines)


def loader(pool: asyncpg.Pool, index_dir: Path | None = None) -> SnapshotLoader[Any]:
    """The loader as the service composes it; with ``index_dir``, index files are kept there."""
    return SnapshotLoader(
        pool=pool,
        lists=SnapshotSource(),
        policy_inputs=approvals_pg.policy_inputs,
        tools=TOOLS,
        jurisdictions=("GB",),
        metrics=Metrics(),
        index_dir=index_dir,
    )


async def reference(pool: asyncpg.Pool) -> MatchSnapshot:
    """What the loader built before issue 16: every matchable entry streamed, every index built."""
    source = SnapshotSource()
    versions: list[LoadedVersion] = []
    data: dict[str, tuple[list[int], list[bytes], list[tuple[int, int]]]] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        for v in await source.active_versions(conn):
            ids, codes, spans = data.setdefault(v.tool, ([], [], []))
            spans.append((len(ids), len(versions)))
            async for chunk in source.stream_entries(conn, v):
                ids.extend(r[0] for r in chunk)
                codes.extend(r[1] for r in chunk)
            count = len(ids) - spans[-1][0]
            versions.append(
                LoadedVersion(
                    hashset=v.name, version=v.version, tool=v.tool, entries=count, status=v.status, threshold=v.threshold
                )
            )
        allowed = await source.allowed_hashes(conn)
    tool_entries = {
        tool: ToolEntries(
            ids=np.array(ids, dtype=np.int64),
            codes=np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, WIDTH[tool]),
            spans=tuple(spans),
        )
        for tool, (ids, codes, spans) in data.items()
    }
    allow = {
        tool: ToolEntries(
            ids=np.array([a for a, t, _ in allowed if t == tool], dtype=np.int64),
            codes=np.frombuffer(b"".join(h for _, t, h in allowed if t == tool), dtype=np.uint8).reshape(-1, WIDTH[tool]),
        )
        for tool in WIDTH
        if any(t == tool for _, t, _ in allowed)
    }
    return build_snapshot(list(TOOLS), versions, tool_entries, allow=allow)


def answers(snapshot: MatchSnapshot, probes: list[tuple[str, bytes]]) -> list[list[tuple[Any, ...]]]:
    thresholds = {"pdq": 31, "md5": 0}
    out = []
    for tool, value in probes:
        hits = snapshot.match({tool: value}, thresholds)
        out.append([(h.tool, h.row_id, h.distance, h.hashset, h.hashset_version, h.shadow) for h in hits])
    return out


def held(snapshot: MatchSnapshot) -> list[tuple[Any, ...]]:
    return sorted((v.hashset, v.version, v.tool, v.entries, v.status, v.threshold) for v in snapshot.versions)


def probes_for(ids: range) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for i in ids:
        out += [("pdq", code("pdq", i)), ("pdq", flip(code("pdq", i), 12)), ("pdq", flip(code("pdq", i), 35))]
        out.append(("md5", code("md5", i)))
    return out


async def holds(conn: asyncpg.Connection, name: str) -> set[int]:
    """The entry numbers the list's current version holds (whatever its status)."""
    current = await conn.fetchval(
        "SELECT v.lineage FROM hashsets h JOIN hashset_versions v ON v.id = h.current_version_id WHERE h.name = $1", name
    )
    rows = await conn.fetch(
        "SELECT e.entry_id FROM hash_entries e WHERE e.version_id = ANY($1::integer[]) AND NOT EXISTS"
        " (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]))",
        list(current or []),
    )
    return {int(r["entry_id"][1:]) for r in rows}


async def allow_tools(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for name in TOOLS.names():
            await approvals_pg.allow_local(conn, tool=name, versions="*", reason="test", actor="tests")


async def test_a_delta_is_applied_in_place_and_its_retractions_stop_matching(pool: asyncpg.Pool) -> None:
    await allow_tools(pool)
    live = loader(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 50))))
        await put(conn, "m", "md5", full("md5", list(range(0, 20))))
    _, first = await live.load()
    assert live.last_changes == {"pdq": "rebuild", "md5": "rebuild"}
    pdq_index = first.hamming["pdq"]
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", delta("pdq", [60, 61], [3, 4]), Kind.DELTA)
    _, second = await live.load()
    assert live.last_changes == {"pdq": "delta", "md5": "unchanged"}
    assert second.exact["md5"] is first.exact["md5"]  # the other tool's index is shared, not rebuilt
    assert second.hamming["pdq"] is not pdq_index
    [hit] = second.match({"pdq": code("pdq", 60)}, {"pdq": 31})
    assert (hit.hashset, hit.hashset_version) == ("a", 2)
    assert second.match({"pdq": code("pdq", 3)}, {"pdq": 31}) == []
    # Hits on rows of the base name the version held now, not the one that added the row.
    [old] = second.match({"pdq": code("pdq", 10)}, {"pdq": 31})
    assert old.hashset_version == 2
    assert answers(second, probes_for(range(70))) == answers(await reference(pool), probes_for(range(70)))
    assert held(second) == held(await reference(pool))
    changes = live._metrics.index_changes.labels(tool="pdq", kind="delta")._value.get()
    assert changes == 1


async def test_disable_enable_status_threshold_and_allow_need_no_rebuild(pool: asyncpg.Pool) -> None:
    await allow_tools(pool)
    live = loader(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 30))))
    await live.load()
    base = live._held["pdq"].base
    async with pool.acquire() as conn:
        await entries.disable_entry(conn, "a", "e5", "wrong", "tester")
    _, snap = await live.load()
    assert snap.match({"pdq": code("pdq", 5)}, {"pdq": 31}) == []
    assert live._held["pdq"].base is base
    async with pool.acquire() as conn:
        await entries.enable_entry(conn, "a", "e5", "right after all", "tester")
        await lists.set_threshold(conn, "a", 10, "tester", "tighter")
        await lists.set_status(conn, "a", "shadow", "tester", "trial")
        allow_id = await allowlist.allow(conn, "pdq", flip(code("pdq", 7), 2), "benign", "tester")
    _, snap = await live.load()
    assert live.last_changes == {"pdq": "unchanged", "md5": "unchanged"}
    assert live._held["pdq"].base is base
    [hit] = snap.match({"pdq": code("pdq", 5)}, {"pdq": 31})
    assert hit.shadow
    assert snap.match({"pdq": flip(code("pdq", 6), 12)}, {"pdq": 31}) == []  # list threshold 10
    assert snap.match({"pdq": flip(code("pdq", 7), 2)}, {"pdq": 31}) == []  # allow-listed
    probes = [*probes_for(range(30)), ("pdq", flip(code("pdq", 7), 2))]
    assert answers(snap, probes) == answers(await reference(pool), probes)
    async with pool.acquire() as conn:
        await allowlist.disallow(conn, allow_id, "not benign", "tester")
    _, snap = await live.load()
    assert answers(snap, probes) == answers(await reference(pool), probes)


async def test_a_full_replacement_rebuilds_that_tool_only(pool: asyncpg.Pool) -> None:
    await allow_tools(pool)
    live = loader(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 30))))
        await put(conn, "m", "md5", full("md5", list(range(0, 10))))
    _, first = await live.load()
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(20, 40))))
    _, snap = await live.load()
    assert live.last_changes == {"pdq": "rebuild", "md5": "unchanged"}
    assert snap.exact["md5"] is first.exact["md5"]
    assert answers(snap, probes_for(range(45))) == answers(await reference(pool), probes_for(range(45)))


async def test_compaction_keeps_answers(pool: asyncpg.Pool) -> None:
    await allow_tools(pool)
    live = loader(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 400))))
    await live.load()
    seen = set()
    async with pool.acquire() as conn:
        # Retract more than a quarter of the base: the next load compacts.
        await put(conn, "a", "pdq", delta("pdq", [1000, 1001], list(range(0, 150))), Kind.DELTA)
    _, snap = await live.load()
    seen.add(live.last_changes["pdq"])
    assert "compaction" in seen
    assert answers(snap, probes_for(range(1005))) == answers(await reference(pool), probes_for(range(1005)))


@pytest.mark.parametrize("seed", [16, 17, 18])
async def test_any_sequence_of_list_operations_answers_as_a_full_reload(pool: asyncpg.Pool, seed: int) -> None:
    """Property-style: random operations, after each one the in-place snapshot equals a full reload."""
    await allow_tools(pool)
    rng = random.Random(seed)
    live = loader(pool)
    members: dict[str, set[int]] = {}
    allowed: list[int] = []
    disabled: dict[str, set[int]] = {}
    next_id = 0
    kinds_seen: set[str] = set()
    names = [("a", "pdq"), ("b", "pdq"), ("m", "md5")]
    for _step in range(40):
        name, tool = rng.choice(names)
        op = rng.choice(["full", "delta", "delta", "delta", "disable", "enable", "status", "threshold", "allow", "rollback"])
        async with pool.acquire() as conn:
            if op == "full" or name not in members:
                ids = list(range(next_id, next_id + rng.randint(5, 40)))
                next_id += len(ids) + 1
                await put(conn, name, tool, full(tool, ids))
                members[name], disabled[name] = set(ids), set()
            elif op == "delta":
                members[name] = await holds(conn, name)
                add = list(range(next_id, next_id + rng.randint(0, 6)))
                next_id += len(add) + 1
                retract = rng.sample(sorted(members[name]), min(len(members[name]), rng.randint(0, 4)))
                if add or retract:
                    await put(conn, name, tool, delta(tool, add, retract), Kind.DELTA)
                    members[name] = (members[name] - set(retract)) | set(add)
            elif op == "disable" and members[name]:
                i = rng.choice(sorted(members[name]))
                if i not in disabled[name]:
                    await entries.disable_entry(conn, name, f"e{i}", "test", "tester")
                    disabled[name].add(i)
            elif op == "enable" and disabled[name]:
                i = rng.choice(sorted(disabled[name]))
                await entries.enable_entry(conn, name, f"e{i}", "test", "tester")
                disabled[name].discard(i)
            elif op == "status":
                await lists.set_status(conn, name, rng.choice(["active", "shadow", "disabled"]), "tester", "test")
            elif op == "threshold" and tool == "pdq":
                await lists.set_threshold(conn, name, rng.choice([None, 8, 20, 40]), "tester", "test")
            elif op == "allow" and tool == "pdq" and members[name]:
                i = rng.choice(sorted(members[name]))
                allowed.append(await allowlist.allow(conn, "pdq", flip(code("pdq", i), 3), "benign", "tester"))
            elif op == "rollback":
                now = (await lists.get_hashset(conn, name)).version
                versions = [v for v in await lists.list_versions(conn, name) if v.version != now]
                if versions:
                    target = rng.choice(versions).version
                    await lists.rollback(conn, name, target, "tester")
                    members[name] = await holds(conn, name)
        _, snap = await live.load()
        kinds_seen |= set(live.last_changes.values())
        ref = await reference(pool)
        probes = probes_for(range(next_id)) + [("pdq", flip(code("pdq", i), 3)) for i in range(next_id)]
        assert held(snap) == held(ref), op
        assert answers(snap, probes) == answers(ref, probes), op
    assert {"delta", "unchanged", "rebuild"} <= kinds_seen
    assert all(t.index_kind() is not IndexKind.FRAMES for t in TOOLS)


async def test_many_small_deltas_fold_the_row_table_and_still_answer_alike(pool: asyncpg.Pool) -> None:
    await allow_tools(pool)
    live = loader(pool)
    async with pool.acquire() as conn:
        await put(conn, "a", "pdq", full("pdq", list(range(0, 100))))
    await live.load()
    for step in range(12):
        async with pool.acquire() as conn:
            await put(conn, "a", "pdq", delta("pdq", [1000 + step], [step]), Kind.DELTA)
        _, snap = await live.load()
        assert live.last_changes["pdq"] == "delta"
    assert len(live._held["pdq"].rows.chunks) <= 8
    probes = probes_for(range(1015))
    assert answers(snap, probes) == answers(await reference(pool), probes)
