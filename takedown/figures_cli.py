"""``hashguard transparency`` and ``hashguard dsa ...``: registered by the composition root
(``hashguard.figures.register_cli``), which passes what the figures need from outside takedown.

``run(work)`` opens a migrated connection, awaits ``work(conn)`` and returns its result."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kernel import keystore
from kernel.api import parse_moment
from takedown import dsa_store, figures_formats, transparency, transparency_store
from takedown.errors import TenantNotFound

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

Run = Callable[[Callable[["asyncpg.Connection"], Awaitable[Any]]], Any]


class _UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    run: Run,
    *,
    context: Callable[[], transparency.Context],
    lists_in_force: transparency_store.ListsInForce,
) -> None:
    figures = sub.add_parser(
        "transparency",
        help="transparency figures for a period (DSA Art 15/24, Reg. 2024/2835 template, Reg. 2021/1232 annual report)",
    )
    figures.add_argument(
        "--from", dest="start", help="ISO 8601 date or time (UTC if no offset); default the start of the year of --to"
    )
    figures.add_argument("--to", dest="end", help="ISO 8601 date or time (UTC if no offset); default now")
    figures.add_argument("--tenant", help="one tenant's figures (default: every tenant)")
    figures.add_argument("--format", default="json", choices=figures_formats.FORMATS)
    figures.add_argument("--out", help="write to this file instead of standard output")
    figures.set_defaults(func=lambda args: _transparency(run, args, context, lists_in_force))

    dsa = sub.add_parser("dsa", help="statements of reasons bound for the DSA Transparency Database").add_subparsers(
        dest="dsa_command", required=True
    )
    listing = dsa.add_parser("list", help="the queue, as JSON lines")
    listing.add_argument("--state", choices=("pending", "submitted", "failed"))
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=lambda args: _dsa_list(run, args))
    retry = dsa.add_parser("retry", help="send rejected statements again (after correcting them)")
    retry.add_argument("--ticket", help="only this ticket's (default: every rejected one)")
    retry.set_defaults(func=lambda args: _dsa_retry(run, args))


def _moment(raw: str, name: str) -> datetime:
    try:
        return parse_moment(name, raw, naive_is_utc=True)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _transparency(
    run: Run,
    args: argparse.Namespace,
    context: Callable[[], transparency.Context],
    lists_in_force: transparency_store.ListsInForce,
) -> int:
    end = _moment(args.end, "--to") if args.end else datetime.now(UTC)
    start = (
        _moment(args.start, "--from") if args.start else end.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    if start >= end:
        raise _UsageError("--from must be before --to")

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        tenants = None
        if args.tenant:
            found = await keystore.tenant_ids(conn, [args.tenant])
            if args.tenant not in found:
                raise TenantNotFound(f"no tenant is named {args.tenant!r}")
            tenants = [found[args.tenant]]
        body = await transparency_store.transparency_report(
            conn, start, end, tenants, context=context(), lists_in_force=lists_in_force
        )
        return {**body, "tenant": args.tenant}

    report = run(work)
    text = json.dumps(report, indent=2) + "\n" if args.format == "json" else figures_formats.render(report, args.format)
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v for k, v in row.items()}


def _dsa_list(run: Run, args: argparse.Namespace) -> int:
    for row in run(lambda conn: dsa_store.submissions(conn, args.state, args.limit)):
        print(json.dumps(_plain(row)))
    return 0


def _dsa_retry(run: Run, args: argparse.Namespace) -> int:
    ticket = None
    if args.ticket:
        try:
            ticket = uuid.UUID(args.ticket)
        except ValueError:
            print("hashguard dsa retry: error: --ticket takes a ticket id (a UUID)", file=sys.stderr)
            return 2
    n = run(lambda conn: dsa_store.retry_failed(conn, ticket))
    print(f"{n} statements queued again for the DSA Transparency Database")
    return 0
