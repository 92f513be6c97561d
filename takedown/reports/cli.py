"""``hashguard reports ...``: file, follow, retry and export hotline reports (registered by ``hashguard.cli``).

``file`` queues the ticket's NCMEC report (as a lead would: the command line needs no lease) and,
with ``--now``, runs the filing job here until the report is finished, failed or retracted;
otherwise the service's job files it. ``export`` writes the documents that would be sent, with
placeholder ids, for review: NCMEC's ``report.xml`` and ``fileinfo-N.xml``, or the NCA, ICCAM or
IWF JSON record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from kernel.db import open_pool
from kernel.settings import Settings
from takedown.cli import cli_actor
from takedown.config import TakedownConfig
from takedown.errors import InvalidInput
from takedown.reports import evidence, job, ncmec, recipients, store
from takedown.reports.api import report_json
from takedown.reports.errors import ReportingNotConfigured, UnknownHotline
from takedown.reports.records import OPEN, Status

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

Run = Callable[[Callable[["asyncpg.Connection"], Awaitable[Any]]], Any]
PLACEHOLDER_REPORT_ID = "0"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], run: Run, categories: store.EntryCategories) -> None:
    """Add ``reports``; ``categories`` is the lists' context's (category, scheme, issuer) of matched entries."""
    reports = sub.add_parser("reports", help="hotline reports hashguard files (NCMEC) or exports (NCA, ICCAM, IWF)")
    cmds = reports.add_subparsers(dest="reports_command", required=True)
    file = cmds.add_parser("file", help="file a ticket's confirmed item with a hotline (once: again prints the same report)")
    file.add_argument("--ticket", required=True, type=uuid.UUID)
    file.add_argument("--hotline", default="ncmec", choices=["ncmec"])
    file.add_argument("--now", action="store_true", help="run the filing here until it is finished, failed or retracted")
    file.set_defaults(func=lambda args: _file(run, args, categories))
    listing = cmds.add_parser("list", help="list hotline reports, newest first")
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=lambda args: _list(run, args))
    show = cmds.add_parser("show", help="a report's record and every call made for it, with its Request-ID")
    show.add_argument("id", type=uuid.UUID)
    show.set_defaults(func=lambda args: _show(run, args))
    retry = cmds.add_parser("retry", help="queue a failed or retracted report again")
    retry.add_argument("id", type=uuid.UUID)
    retry.set_defaults(func=lambda args: _retry(run, args))
    export = cmds.add_parser("export", help="write the documents that would be sent, with placeholder ids")
    export.add_argument("--hotline", required=True, choices=["ncmec", "nca", "iccam", "iwf"])
    export.add_argument("--ticket", required=True, type=uuid.UUID)
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--uk-linked", action="store_true", help="NCA: the content is UK-linked (required for a non-UK provider)")
    export.add_argument(
        "--even-if-reported-to-ncmec", action="store_true", help="NCA: export although the item was reported to NCMEC"
    )
    export.set_defaults(func=lambda args: _export(run, args, categories))


def _file(run: Run, args: argparse.Namespace, categories: store.EntryCategories) -> int:
    settings = Settings.from_env()
    config = job.config_from_settings(settings)
    problem = config.problem()
    takedown = TakedownConfig(retention_days=settings.retention_days, lease_s=settings.lease_s)

    async def queue(conn: asyncpg.Connection) -> tuple[Any, bool]:
        return await store.request_report(conn, args.ticket, cli_actor(), args.hotline, takedown, override=True, problem=problem)

    record, created = run(queue)
    print(("queued" if created else "already filed or queued") + f": report {record.id} ({record.status.value})")
    if args.now and record.status in OPEN:
        record = asyncio.run(_file_now(settings, config, record.id, categories))
        print(json.dumps(report_json(record), indent=2))
        return 0 if record.status is Status.FINISHED else 1
    return 0


async def _file_now(settings: Settings, config: job.NcmecConfig, report_id: uuid.UUID, categories: store.EntryCategories) -> Any:
    pool = await open_pool(settings.database_url, settings.data_dir, max_size=2)
    try:
        async with aiohttp.ClientSession() as session:
            filer = job.NcmecFiler(pool=pool, session=session, config=config, categories=categories)
            deadline = time.monotonic() + max(60.0, config.timeout_s * 8)
            while True:
                await filer.run_once()
                async with pool.acquire() as conn:
                    record = await store.get_report(conn, report_id)
                if record.status not in OPEN or time.monotonic() > deadline:
                    return record
                await asyncio.sleep(min(1.0, max(0.05, (record.next_attempt_at - datetime.now(UTC)).total_seconds())))
    finally:
        await pool.close()


def _list(run: Run, args: argparse.Namespace) -> int:
    statuses = [Status(args.status)] if args.status else None
    print("id\tticket\thotline\tstatus\treference\tattempts\tlast_error")
    for r in run(lambda conn: store.list_reports(conn, statuses, args.limit)):
        print(
            f"{r.id}\t{r.ticket_id}\t{r.hotline}\t{r.status.value}\t{r.hotline_reference or ''}\t{r.attempts}\t{r.last_error or ''}"
        )
    return 0


def _show(run: Run, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        record = await store.get_report(conn, args.id)
        calls = await store.report_calls(conn, args.id)
        return {
            **report_json(record),
            "calls": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in c.items()} for c in calls],
        }

    print(json.dumps(run(work), indent=2))
    return 0


def _retry(run: Run, args: argparse.Namespace) -> int:
    record = run(lambda conn: store.retry_report(conn, args.id, cli_actor()))
    print(f"report {record.id} queued again")
    return 0


def _export(run: Run, args: argparse.Namespace, categories: store.EntryCategories) -> int:
    settings = Settings.from_env()
    config = job.config_from_settings(settings)

    async def work(conn: asyncpg.Connection) -> tuple[Any, list[tuple[str, str | None]]]:
        case = await store.load_case(conn, args.ticket, categories=categories)
        prior = [
            (r.hotline, r.hotline_reference) for r in await store.ticket_reports(conn, args.ticket) if r.status is Status.FINISHED
        ]
        return case, prior

    case, prior = run(work)
    now = datetime.now(UTC)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if args.hotline == "ncmec":
        if config.reporter is None:
            raise ReportingNotConfigured("HASHGUARD_REPORTER_EMAIL is not set: NCMEC requires the reporting person's email")
        with_file = evidence.fetch_refusal(case.content_url, config.evidence_hosts) is None
        schema = ncmec.own_schema()
        documents = {"report.xml": ncmec.build_report(case, config.reporter, now=now, with_file=with_file)}
        if with_file:
            documents["fileinfo-1.xml"] = ncmec.build_file_details(
                case, report_id=PLACEHOLDER_REPORT_ID, file_id="placeholder-file-1", now=now, mou_signed=config.mou_signed
            )
        for name, document in documents.items():
            schema.check(document)  # never write a document we would not send
            (out / name).write_bytes(document)
            written.append(out / name)
    else:
        try:
            if args.hotline == "nca":
                if config.reporter is None:
                    raise ReportingNotConfigured("HASHGUARD_REPORTER_EMAIL is not set: the NCA report names the reporting person")
                record = recipients.nca_report(
                    case,
                    config.reporter,
                    now=now,
                    uk_provider=settings.nca_uk_provider,
                    uk_linked=args.uk_linked,
                    prior=prior,
                    duplicate_of_ncmec_allowed=args.even_if_reported_to_ncmec,
                )
            elif args.hotline == "iccam":
                record = recipients.iccam_record(case, now=now)
            elif args.hotline == "iwf":
                record = recipients.iwf_record(case, now=now)
            else:  # argparse's choices stop anything else
                raise UnknownHotline()
        except recipients.RecipientRefused as exc:
            raise InvalidInput(str(exc)) from None
        path = out / f"{args.hotline}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        written.append(path)
    for path in written:
        print(path)
    return 0
