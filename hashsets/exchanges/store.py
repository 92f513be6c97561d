"""Hash-sharing sources in the database: their settings, checkpoints, quarantine and feedback, and the
writing of fetched pages as delta versions of the source's lists (one list per hash type, named
``SOURCE-TOOL``).

A batch of pages is applied in one transaction with the checkpoint after its last page, and only if
the stored checkpoint is still the one the fetch started from: a crash resumes exactly there and a
page is never applied twice, even by two replicas racing (the advisory lock keeps them apart; this
check makes it a proof rather than a hope). Updates are applied last-writer-wins per source entry
(``exchange_entries``), which also knows the list rows holding each entry, so a change or deletion
retracts exactly those rows without searching the list: a page costs what it changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hashsets.events import record_event
from hashsets.exchanges.base import MAX_ENTRY_ID, Checkpoint, EntryProblem, ExchangeError, Page, Update, clip
from hashsets.parse import Scheme, normalise_category
from kernel import auditlog
from kernel.auditlog import Change
from kernel.db import Queries

Q = Queries("hashsets.exchanges")
L = Queries("hashsets")

_EPOCH = datetime.min.replace(tzinfo=UTC)


class CheckpointMoved(ExchangeError):
    """Another fetch of this source advanced its checkpoint meanwhile; this one stops without applying."""

    kind = "race"


class ListChangedElsewhere(ExchangeError):
    """A list this source feeds was changed by something else (a rollback, a hand import)."""

    kind = "list_changed"


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    id: int
    name: str
    kind: str
    config: dict[str, str]
    members: tuple[str, ...] | None
    interval_s: float
    upvotes: bool
    paused: bool
    checkpoint: dict[str, Any] | None
    next_due_at: datetime
    last_page_at: datetime | None
    last_success_at: datetime | None
    source_time: datetime | None
    last_error: str | None
    last_error_kind: str | None
    last_error_at: datetime | None
    entries_fetched: int
    pages_applied: int
    created_by: str
    created_at: datetime
    quarantined: int = 0


@dataclass(kw_only=True, slots=True)
class Applied:
    updates: int = 0
    added: int = 0
    retracted: int = 0
    stale: int = 0
    filtered: int = 0
    problems: int = 0
    failed_pages: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # list name -> version made


def _source(r: asyncpg.Record) -> Source:
    values = dict(r)
    values["config"] = json.loads(values["config"])
    values["checkpoint"] = json.loads(values["checkpoint"]) if values["checkpoint"] else None
    values["members"] = tuple(values["members"]) if values["members"] is not None else None
    return Source(**values)


async def _audit(conn: asyncpg.Connection, actor: str, action: str, name: str, after: Mapping[str, Any] | None = None) -> None:
    await auditlog.record(conn, Change(actor=actor, action=f"exchange.{action}", subject=f"exchange:{name}", after=after))


async def add_source(
    conn: asyncpg.Connection,
    *,
    name: str,
    kind: str,
    config: Mapping[str, str],
    members: Sequence[str] | None,
    interval_s: float,
    upvotes: bool,
    actor: str,
) -> int:
    async with conn.transaction():
        source_id = await conn.fetchval(
            Q.insert_source, name, kind, json.dumps(dict(config)), list(members) if members else None, interval_s, upvotes, actor
        )
        if source_id is None:
            raise ExchangeError(f"a source named {name!r} exists already")
        # The settings hold secrets only as references (env:/file:), so they may be audited as they are.
        await _audit(
            conn, actor, "add", name, {"kind": kind, "config": dict(config), "members": members, "interval_s": interval_s}
        )
    return int(source_id)


async def sources(conn: asyncpg.Connection, name: str | None = None) -> list[Source]:
    return [_source(r) for r in await conn.fetch(Q.sources, name)]


async def source(conn: asyncpg.Connection, name: str) -> Source:
    found = await sources(conn, name)
    if not found:
        raise ExchangeError(f"no source is named {name!r} (see: hashguard exchanges list)")
    return found[0]


async def set_paused(conn: asyncpg.Connection, name: str, paused: bool, actor: str) -> None:
    async with conn.transaction():
        if await conn.fetchval(Q.set_paused, name, paused) is None:
            raise ExchangeError(f"no source is named {name!r}")
        await _audit(conn, actor, "pause" if paused else "resume", name)


async def fetch_now(conn: asyncpg.Connection, name: str, actor: str) -> None:
    async with conn.transaction():
        if await conn.fetchval(Q.set_due_now, name) is None:
            raise ExchangeError(f"no source is named {name!r}")
        await _audit(conn, actor, "fetch_now", name)


async def remove_source(conn: asyncpg.Connection, name: str, actor: str) -> list[str]:
    """Stop fetching a source and forget its checkpoint; its lists stay (disable them with hashsets status)."""
    async with conn.transaction():
        found = await source(conn, name)
        kept = [r["name"] for r in await conn.fetch(Q.source_lists, found.id)]
        await conn.execute(Q.delete_source, name)
        await _audit(conn, actor, "remove", name, {"lists_kept": kept})
    return kept


async def source_lists(conn: asyncpg.Connection, source_id: int) -> list[tuple[str, str]]:
    return [(r["tool"], r["name"]) for r in await conn.fetch(Q.source_lists, source_id)]


async def due_sources(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    return [(r["id"], r["name"]) for r in await conn.fetch(Q.due_sources)]


async def try_lock(conn: asyncpg.Connection, source_id: int) -> bool:
    """One fetch per source across every replica: a session advisory lock, gone with the connection."""
    return bool(await conn.fetchval(Q.try_lock, source_id))


async def unlock(conn: asyncpg.Connection, source_id: int) -> None:
    await conn.fetchval(Q.unlock, source_id)


async def finished(conn: asyncpg.Connection, source_id: int) -> None:
    await conn.execute(Q.finished, source_id)


async def failed(conn: asyncpg.Connection, source_id: int, kind: str, message: str, retry_s: float) -> None:
    await conn.execute(Q.failed, source_id, clip(message), kind, retry_s)


async def quarantined(conn: asyncpg.Connection, source_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.quarantine_list, source_id))


async def open_page_failures(conn: asyncpg.Connection, source_id: int) -> list[tuple[int, str]]:
    return [(r["id"], r["position"]) for r in await conn.fetch(Q.open_page_failures, source_id)]


async def retry_failed(conn: asyncpg.Connection, quarantine_id: int, reason: str) -> None:
    await conn.execute(Q.retry_failed_page, quarantine_id, clip(reason))


Parse = Callable[[str, str], bytes]


def _digest(value: bytes, category: str | None) -> str:
    return hashlib.md5(value + b"\0" + (category or "").encode(), usedforsecurity=False).hexdigest()


async def apply_pages(
    conn: asyncpg.Connection,
    src: Source,
    *,
    expected: Checkpoint | None,
    pages: Sequence[Page],
    parse: Parse,
    actor: str,
    resolves: int | None = None,
) -> Applied:
    """Apply ``pages`` and store the last one's checkpoint, in one transaction, if the stored
    checkpoint is still ``expected``. ``resolves``: the quarantined page these pages read again
    (no checkpoint moves then)."""
    result = Applied()
    async with conn.transaction():
        stored = await conn.fetchval(Q.lock_source, src.id)
        if resolves is None and (json.loads(stored) if stored else None) != (dict(expected) if expected is not None else None):
            raise CheckpointMoved(f"the checkpoint of {src.name!r} moved during this fetch; nothing applied")
        latest: dict[str, Update] = {}
        problems: list[EntryProblem] = []
        for page in pages:
            problems.extend(page.problems)
            if page.failure is not None:
                result.failed_pages += 1
                await conn.execute(
                    Q.quarantine, src.id, "page", clip(page.failure.position, 1000), None, clip(page.failure.reason)
                )
            for update in page.updates:
                result.updates += 1
                if src.members is not None and (update.member or "") not in src.members:
                    result.filtered += 1
                    continue
                if len(update.entry_id) > MAX_ENTRY_ID or not update.entry_id:
                    problems.append(EntryProblem(position="page", reason="the entry id is empty or too long"))
                    continue
                prev = latest.get(update.entry_id)
                if prev is None or (update.updated_at or _EPOCH) >= (prev.updated_at or _EPOCH):
                    latest[update.entry_id] = update
        await _apply_updates(conn, src, latest, parse, problems, result, actor)
        for problem in problems:
            result.problems += 1
            await conn.execute(
                Q.quarantine,
                src.id,
                "entry",
                clip(problem.position, 1000),
                clip(problem.entry_id, MAX_ENTRY_ID) if problem.entry_id else None,
                clip(problem.reason),
            )
        if resolves is not None:
            await conn.execute(Q.resolve_quarantine, resolves)
        else:
            last = pages[-1] if pages else None
            times = [p.source_time for p in pages if p.source_time is not None]
            await conn.execute(
                Q.advance,
                src.id,
                json.dumps(dict(last.checkpoint)) if last is not None else stored,
                result.updates,
                len(pages),
                max(times) if times else None,
            )
    return result


async def _apply_updates(
    conn: asyncpg.Connection,
    src: Source,
    latest: Mapping[str, Update],
    parse: Parse,
    problems: list[EntryProblem],
    result: Applied,
    actor: str,
) -> None:
    if not latest:
        return
    states = {r["entry_id"]: r for r in await conn.fetch(Q.entry_states, src.id, list(latest))}
    adds: dict[str, list[tuple[str, bytes, str | None, Scheme | None]]] = {}
    retracts: dict[str, list[int]] = {}
    changed: dict[str, tuple[Update, dict[str, int], dict[str, str]]] = {}
    for entry_id, update in latest.items():
        state = states.get(entry_id)
        newer = state is not None and state["updated_at"] is not None and update.updated_at is not None
        if newer and update.updated_at < state["updated_at"]:  # type: ignore[index]
            result.stale += 1  # a newer update of this entry was applied already
            continue
        rows: dict[str, int] = json.loads(state["rows"]) if state is not None else {}
        digests: dict[str, str] = json.loads(state["digests"]) if state is not None else {}
        wanted: dict[str, tuple[bytes, str | None, Scheme | None]] = {}
        if not update.deleted:
            try:
                category, scheme = normalise_category(update.classification, None)
            except ValueError:
                category, scheme = None, None  # an unknown classification: kept, unclassified
            for tool, text in update.fingerprints.items():
                try:
                    wanted[tool] = (parse(tool, text), category, scheme)
                except ValueError as exc:
                    problems.append(EntryProblem(position=f"entry {entry_id}", reason=f"{tool}: {exc}", entry_id=entry_id))
        for tool in sorted(set(rows) | set(wanted)):
            new = wanted.get(tool)
            digest = _digest(new[0], new[1]) if new is not None else None
            if digest is not None and digests.get(tool) == digest and tool in rows:
                continue  # the same hash and category as held: nothing to write
            if tool in rows:
                retracts.setdefault(tool, []).append(rows.pop(tool))
                digests.pop(tool, None)
            if new is not None and digest is not None:
                adds.setdefault(tool, []).append((entry_id, *new))
                digests[tool] = digest
        changed[entry_id] = (update, rows, digests)
    for tool in sorted(set(adds) | set(retracts)):
        made = await _write_version(conn, src, tool, adds.get(tool, []), retracts.get(tool, []), actor)
        result.versions[made.name] = made.version
        result.added += len(adds.get(tool, []))
        result.retracted += len(retracts.get(tool, []))
        for entry_id, row in made.rows.items():
            changed[entry_id][1][tool] = row
    if changed:
        ids = list(changed)
        await conn.execute(
            Q.upsert_states,
            src.id,
            ids,
            [changed[i][0].updated_at for i in ids],
            [changed[i][0].deleted for i in ids],
            [json.dumps(changed[i][1]) for i in ids],
            [json.dumps(changed[i][2]) for i in ids],
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Made:
    name: str
    version: int
    rows: dict[str, int]


async def _write_version(
    conn: asyncpg.Connection,
    src: Source,
    tool: str,
    adds: list[tuple[str, bytes, str | None, Scheme | None]],
    retracts: list[int],
    actor: str,
) -> _Made:
    """One version of the source's ``tool`` list: the base's entries plus ``adds`` minus the rows ``retracts``."""
    link = await conn.fetchrow(Q.list_link, src.id, tool)
    issuer = f"exchange:{src.name} ({src.kind})"
    if link is None:
        name = f"{src.name}-{tool}"
        if await conn.fetchrow(L.get_hashset, name) is not None:
            raise ExchangeError(f"a list named {name!r} exists already and is not fed by source {src.name!r}; rename one of them")
        hashset_id = await conn.fetchval(L.insert_hashset, name, tool, issuer, False)
        await conn.execute(Q.insert_link, src.id, tool, hashset_id)
        base = None
    else:
        name, hashset_id = link["name"], link["hashset_id"]
        await conn.fetchval(L.lock_hashset, hashset_id)
        current = await conn.fetchval(Q.current_version, hashset_id)
        if current != link["version_id"]:
            raise ListChangedElsewhere(
                f"the list {name!r} was changed outside the fetcher (rollback or import); the source stops until it is"
                " re-added (hashguard exchanges remove, then add) or the list is rolled forward"
            )
        base = await conn.fetchrow(L.get_version_by_id, current) if current is not None else None
    version = await conn.fetchval(L.next_version, hashset_id)
    version_id = await conn.fetchval(
        L.insert_version,
        hashset_id,
        version,
        b"",
        "delta" if base is not None else "full",
        base["id"] if base is not None else None,
        issuer,
        None,
        None,
        "unsigned",
        None,
        json.dumps({"exchange": src.name, "kind": src.kind}),
        actor,
    )
    await conn.copy_records_to_table(
        "hash_entries",
        records=[(version_id, e, v, c, s.value if s else None) for e, v, c, s in adds],
        columns=["version_id", "entry_id", "hash", "category", "scheme"],
    )
    rows = {r["entry_id"]: r["id"] for r in await conn.fetch(Q.version_rows, version_id)} if adds else {}
    if retracts:
        await conn.execute(L.insert_retractions, retracts, version_id)
    lineage = [*(base["lineage"] if base is not None else []), version_id]
    count = (base["entry_count"] if base is not None else 0) + len(adds) - len(retracts)
    await conn.execute(L.finish_version, version_id, count, len(adds), len(retracts), lineage)
    await conn.execute(L.set_current_version, hashset_id, version_id)
    await conn.execute(Q.set_link_version, src.id, tool, version_id)
    await record_event(
        conn,
        actor,
        "import",
        name,
        {
            "version": version,
            "kind": "delta" if base is not None else "full",
            "issuer": issuer,
            "exchange": src.name,
            "added": len(adds),
            "retracted": len(retracts),
            "entries": count,
        },
    )
    return _Made(name=name, version=version, rows=rows)


# -- feedback ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class EntrySource:
    source_id: int
    source: str
    kind: str
    upvotes: bool
    tool: str
    entry_id: str


async def source_of_entry_row(conn: asyncpg.Connection, entry_row: int) -> EntrySource | None:
    r = await conn.fetchrow(Q.source_of_entry_row, entry_row)
    if r is None:
        return None
    return EntrySource(
        source_id=r["source_id"], source=r["name"], kind=r["kind"], upvotes=r["upvotes"], tool=r["tool"], entry_id=r["entry_id"]
    )


async def queue_feedback(
    conn: asyncpg.Connection, entry: EntrySource, *, vote: str, reason: str, ticket: str, actor: str
) -> bool:
    """Queue a verdict for the source (delivered with retries by the fetcher); recorded in the audit log."""
    queued = await conn.fetchval(Q.queue_feedback, entry.source_id, entry.entry_id, entry.tool, vote, clip(reason), ticket, actor)
    if queued is not None:
        await _audit(
            conn,
            actor,
            "feedback_queued",
            entry.source,
            {"entry_id": entry.entry_id, "tool": entry.tool, "vote": vote, "ticket": ticket},
        )
    return queued is not None


async def due_feedback(conn: asyncpg.Connection, limit: int = 50) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.due_feedback, limit))


async def feedback_sent(conn: asyncpg.Connection, feedback_id: int, source: str, details: Mapping[str, Any]) -> None:
    await conn.execute(Q.feedback_sent, feedback_id)
    await _audit(conn, "hashguard", "feedback_sent", source, details)


async def feedback_retry(conn: asyncpg.Connection, feedback_id: int, error: str, delay_s: float, give_up: bool) -> None:
    await conn.execute(Q.feedback_retry, feedback_id, clip(error), delay_s, give_up)


async def feedback_list(conn: asyncpg.Connection, source_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.feedback_list, source_id))
