"""``hashguard exchanges ...``: add, list, show, pause, resume, fetch-now, fetch and remove hash-sharing sources."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

import aiohttp

from detector.tools.registry import discover as discover_tools
from hashsets.exchanges import registry, store
from hashsets.exchanges.base import CONNECTOR_NAME, ExchangeError, check_settings
from hashsets.exchanges.fetcher import Fetcher, hash_parser
from kernel.commandline import invoking_user, run_with_connection
from kernel.db import open_pool
from kernel.settings import Settings

if TYPE_CHECKING:
    import asyncpg

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_interval(text: str) -> float:
    """``15m``, ``1h``, ``90s`` or plain seconds; at least 10 s."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 10:
        raise argparse.ArgumentTypeError("the interval must be at least 10 s")
    return seconds


def _pairs(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExchangeError(f"--set takes NAME=VALUE, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def cmd_add(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not CONNECTOR_NAME.fullmatch(name):
        raise ExchangeError(f"a source name must match {CONNECTOR_NAME.pattern} (it names its lists: NAME-pdq, ...)")
    cls = registry.connector_class(args.kind)
    config = check_settings(cls, _pairs(args.set))
    members = sorted({m.strip() for m in args.members.split(",") if m.strip()}) if args.members else None
    actor = invoking_user(args.actor)
    run_with_connection(
        lambda conn: store.add_source(
            conn,
            name=name,
            kind=cls.name,
            config=config,
            members=members,
            interval_s=args.interval,
            upvotes=args.upvotes,
            actor=actor,
        )
    )
    print(
        f"added source {name} ({cls.name}), fetched every {args.interval:g} s by the running service (or: hashguard exchanges fetch {name})"
    )
    return 0


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "never"


def cmd_list(args: argparse.Namespace) -> int:
    for s in run_with_connection(store.sources):
        state = "paused" if s.paused else (f"error: {s.last_error_kind}" if s.last_error_kind else "ok")
        print(
            f"{s.name}\t{s.kind}\tevery {s.interval_s:g} s\t{state}\tlast page {_when(s.last_page_at)}"
            f"\t{s.entries_fetched} entries\t{s.quarantined} quarantined"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        s = await store.source(conn, args.name)
        print(f"source {s.name} ({s.kind}), added by {s.created_by} on {_when(s.created_at)}")
        print(f"settings: {json.dumps(s.config, sort_keys=True)} (secrets only as env:/file: references)")
        print(
            f"members: {', '.join(s.members) if s.members else 'all'}; every {s.interval_s:g} s; upvotes {'on' if s.upvotes else 'off'}"
        )
        print(f"state: {'paused' if s.paused else 'active'}; next due {_when(s.next_due_at)}")
        print(
            f"last page {_when(s.last_page_at)}; last complete fetch {_when(s.last_success_at)}; source read up to {_when(s.source_time)}"
        )
        print(f"entries fetched {s.entries_fetched}; page batches applied {s.pages_applied}")
        if s.last_error_kind:
            print(f"last error ({s.last_error_kind}) at {_when(s.last_error_at)}: {s.last_error}")
        for tool, name in await store.source_lists(conn, s.id):
            print(f"list {name} ({tool})")
        rows = await store.quarantined(conn, s.id)
        print(f"quarantined: {len(rows)}")
        for r in rows:
            which = f" entry {r['entry_id']}" if r["entry_id"] else ""
            print(f"  {r['scope']} at {r['position']}{which}: {r['reason']} (seen {r['attempts']}x, last {_when(r['last_at'])})")
        for f in await store.feedback_list(conn, s.id):
            state = "sent" if f["sent_at"] else ("failed" if f["failed_at"] else f"pending ({f['attempts']} attempts)")
            print(f"feedback {f['vote']} on {f['entry_id']} {f['tool']} ({f['ticket']}): {state}")

    run_with_connection(work)
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    actor = invoking_user(args.actor)
    run_with_connection(lambda conn: store.set_paused(conn, args.name, args.paused, actor))
    print(f"{args.name}: {'paused' if args.paused else 'resumed'}")
    return 0


def cmd_fetch_now(args: argparse.Namespace) -> int:
    actor = invoking_user(args.actor)
    run_with_connection(lambda conn: store.fetch_now(conn, args.name, actor))
    print(f"{args.name}: due now; the running service fetches it within HASHGUARD_EXCHANGES_POLL_S")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    actor = invoking_user(args.actor)
    kept = run_with_connection(lambda conn: store.remove_source(conn, args.name, actor))
    print(
        f"removed source {args.name}; its lists stay ({', '.join(kept) or 'none'}): disable them with hashguard hashsets status"
    )
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch one source in this process, now (the service's schedule does the same)."""
    settings = Settings.from_env()

    async def main() -> int:
        pool = await open_pool(settings.database_url, settings.data_dir, max_size=2)
        try:
            async with aiohttp.ClientSession() as session:
                fetcher = Fetcher(
                    pool=pool,
                    session=session,
                    parse=hash_parser({n: t.parse_hex for n, t in discover_tools().items()}),
                    batch_entries=settings.exchanges_batch_entries,
                    actor=invoking_user(args.actor),
                )
                outcome = await fetcher.fetch(args.name)
        finally:
            await pool.close()
        if outcome.locked_elsewhere:
            print(f"{args.name}: another process is fetching it now")
            return 1
        a = outcome.applied
        print(
            f"{args.name}: {outcome.pages} pages, {a.updates} updates: {a.added} added, {a.retracted} retracted,"
            f" {a.stale} stale, {a.filtered} filtered, {a.problems} entries and {a.failed_pages} pages quarantined"
        )
        if outcome.error is not None:
            print(f"{args.name}: stopped ({outcome.error.kind}): {outcome.error}")
            return 1
        return 0

    return asyncio.run(main())


def register(subparsers: Any) -> None:
    exchanges = subparsers.add_parser("exchanges", help="hash-sharing sources whose lists arrive by themselves").add_subparsers(
        dest="exchanges_command", required=True
    )

    def named(command: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = exchanges.add_parser(command, help=help)
        parser.add_argument("name")
        parser.add_argument("--actor", help="who to record (default: cli:<user>)")
        return parser

    add = named("add", "add a source (credentials as env:VAR or file:PATH, never the value)")
    add.add_argument("--kind", required=True, help="the connector: ncmec, ... (installed ones: hashguard.exchanges entry points)")
    add.add_argument("--interval", type=parse_interval, default=900.0, help="how often to fetch: 15m (default), 1h, 90s")
    add.add_argument("--set", action="append", metavar="NAME=VALUE", help="a connector setting (repeatable)")
    add.add_argument("--members", help="only entries from these members/issuers, comma-separated (default: all)")
    add.add_argument("--upvotes", action="store_true", help="send an upvote when a reviewer confirms a match (downvotes always)")
    add.set_defaults(func=cmd_add)
    exchanges.add_parser("list", help="sources and their freshness").set_defaults(func=cmd_list)
    named("show", "one source: settings, freshness, lists, quarantine, feedback").set_defaults(func=cmd_show)
    named("pause", "stop fetching a source (until resumed)").set_defaults(func=cmd_pause, paused=True)
    named("resume", "fetch a paused source again").set_defaults(func=cmd_pause, paused=False)
    named("fetch-now", "make a source due now for the running service").set_defaults(func=cmd_fetch_now)
    named("fetch", "fetch a source in this process, now").set_defaults(func=cmd_fetch)
    named("remove", "forget a source and its checkpoint (its lists stay)").set_defaults(func=cmd_remove)
