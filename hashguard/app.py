"""The composition root of the service: the one place that wires the contexts (detector, hashsets, takedown) together."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import numpy as np
from aiohttp import web

from detector import http, pg
from detector.appkeys import HASH_POOL, HOLDER, SCANNER, TOOLS
from detector.approvals import http as approvals_http
from detector.approvals import pg as approvals_pg
from detector.decode import HashingPath
from detector.errors import NotReady
from detector.index_metrics import observe_snapshot
from detector.matcher import Hit, LoadedVersion, MatchSnapshot, ToolEntries, build_snapshot
from detector.reload import Reloader
from detector.scan import HashPool, MatchView, Resolution, ScanContext, ScanService, SnapshotHolder
from detector.tools.policy import Activation, decide_all, next_change
from detector.tools.registry import ToolRegistry
from hashguard import flows, openapi
from hashsets import pg as hashsets_pg
from kernel import auditlog
from kernel.appkeys import DB_URL, KEY_CACHE, METRICS, POOL, SETTINGS
from kernel.db import create_pool, migrate, resolve_url
from kernel.metrics import Metrics
from kernel.routes import Route, register
from kernel.settings import Settings, SettingsError
from kernel.web import errors_middleware
from takedown import http as takedown_http
from takedown import jobs as takedown_jobs
from takedown import pg as takedown_pg
from takedown.config import TakedownConfig
from takedown.tickets import Evidence
from takedown.workflow import Source

log = logging.getLogger(__name__)

# Room for multipart framing and the small form fields beside the media itself.
_MULTIPART_SLACK = 64 * 1024


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = await resolve_url(settings.database_url, settings.data_dir)
    pool = await create_pool(url, settings.db_pool_size)
    async with pool.acquire() as conn:
        await migrate(conn)
    app[DB_URL] = url
    app[POOL] = pool
    yield
    await pool.close()


async def _hash_pool(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[HASH_POOL] = HashPool(settings.hash_workers, settings.scan_timeout_s, processes=settings.hash_pool == "processes")
    app[SCANNER] = ScanService(
        tools=app[TOOLS],
        holder=app[HOLDER],
        pool=app[HASH_POOL],
        max_pixels=settings.max_pixels,
        hashing=HashingPath(settings.hashing),
        resolve=lambda scan_id, context, hits: _resolve(app, scan_id, context, hits),
        remember=(lambda scan_id, context, hashes: _remember(app, scan_id, context, hashes)) if settings.lookback_days else None,
    )
    yield
    await asyncio.get_running_loop().run_in_executor(None, app[HASH_POOL].close)


async def _resolve(app: web.Application, scan_id: uuid.UUID, context: ScanContext, hits: Sequence[Hit]) -> Resolution:
    """Turn index hits into list details, keep the evidence and open (or join) the content's ticket, in one transaction.

    Shadow-list hits are recorded (flagged) and counted but not returned, so the verdict stays
    ``no_match`` for them and nothing acts on them. Entries matching far more often than the flood
    limit are quarantined: still answered as a match (the platform holds the upload), flagged so
    the takedown side sends them to review instead of acting automatically.
    """
    tools = app[TOOLS]
    settings = app[SETTINGS]
    metrics = app[METRICS]
    async with app[POOL].acquire() as conn, conn.transaction():
        described = await hashsets_pg.describe_entries(conn, sorted({h.row_id for h in hits}))
        quarantined: set[int] = set()
        if settings.flood_max_matches > 0:
            live = sorted({h.row_id for h in hits if not h.shadow})
            quarantined, newly = await hashsets_pg.flood_check(
                conn, live, window_s=settings.flood_window_s, limit=settings.flood_max_matches
            )
            if newly:
                log.warning(
                    "%d list entries matched more than %d times in %.0f s: quarantined, their matches go to review",
                    newly,
                    settings.flood_max_matches,
                    settings.flood_window_s,
                )
                metrics.quarantined_entries.set(await hashsets_pg.count_quarantined(conn))
        views: list[MatchView] = []
        shadow: list[MatchView] = []
        records: list[pg.MatchRecord] = []
        for hit in hits:
            entry = described.get(hit.row_id)
            if entry is None:
                # Entries are never deleted, so this is an inconsistency; a verdict without this hit
                # could be a wrong no_match, so the scan fails and the platform holds the upload.
                log.error("index hit on row %d of %s has no stored entry; answering not_ready", hit.row_id, hit.tool)
                raise NotReady("a matched list entry could not be resolved; hold the upload and retry")
            act = hit.activation
            version = act.version if act is not None else tools.get(hit.tool).version
            # The version the snapshot held when it matched; the row's own is the one that added it.
            hashset = hit.hashset or entry.hashset
            hashset_version = hit.hashset_version or entry.hashset_version
            view = MatchView(
                hashset=hashset,
                hashset_version=hashset_version,
                entry_id=entry.entry_id,
                tool=hit.tool,
                tool_version=version,
                distance=hit.distance,
                quarantined=hit.row_id in quarantined,
                approval_id=act.approval_id if act is not None else None,
                approval_reason=act.reason.value if act is not None else None,
            )
            if hit.shadow:
                shadow.append(view)
            else:
                views.append(view)
            records.append(
                pg.MatchRecord(
                    scan_id=scan_id,
                    content_id=context.content_id,
                    content_url=context.content_url,
                    hash_entry_id=hit.row_id,
                    hashset=hashset,
                    hashset_version=hashset_version,
                    entry_id=entry.entry_id,
                    tool=hit.tool,
                    tool_version=version,
                    distance=hit.distance,
                    api_key_id=context.api_key_id,
                    shadow=hit.shadow,
                    quarantined=view.quarantined,
                    approval_id=act.approval_id if act is not None else None,
                    local_allowance_id=act.allowance_id if act is not None else None,
                    approval_reason=act.reason.value if act is not None else None,
                )
            )
        await pg.record_matches(conn, records)
        # Shadow matches are evidence only: no ticket, no action, not in the verdict.
        ticket = await _open_ticket(app, conn, scan_id, context, views) if views else None
    for view in views:
        metrics.matches.labels(hashset=view.hashset, tool=view.tool).inc()
    for view in shadow:
        metrics.shadow_matches.labels(hashset=view.hashset, tool=view.tool).inc()
    if ticket is not None:
        if ticket.opened:
            metrics.tickets_opened.labels(source=Source.HASH_MATCH.value).inc()
        if ticket.auto_action is not None:
            metrics.ticket_decisions.labels(state="actioned", automated="true").inc()
            app[takedown_http.WAKER].wake()
    return Resolution(matches=views, ticket_id=str(ticket.ticket_id) if ticket else None)


async def _open_ticket(
    app: web.Application, conn: asyncpg.Connection, scan_id: uuid.UUID, context: ScanContext, views: Sequence[MatchView]
) -> takedown_pg.MatchTicket:
    """A match opens a takedown ticket (or joins the content's live one) in the evidence's transaction."""
    evidence = [
        Evidence(
            scan_id=scan_id,
            hashset=v.hashset,
            hashset_version=v.hashset_version,
            entry_id=v.entry_id,
            tool=v.tool,
            tool_version=v.tool_version,
            distance=v.distance,
            approval_id=v.approval_id,
            approval_reason=v.approval_reason,
            quarantined=v.quarantined,
        )
        for v in views
    ]
    return await takedown_pg.record_match(
        conn,
        content_id=context.content_id,
        content_url=context.content_url,
        evidence=evidence,
        api_key_id=context.api_key_id,
        config=app[takedown_http.CONFIG],
        on_decision=app[takedown_http.DECISION_HOOKS],
    )


async def _remember(app: web.Application, scan_id: uuid.UUID, context: ScanContext, hashes: Mapping[str, bytes]) -> None:
    async with app[POOL].acquire() as conn:
        await hashsets_pg.remember_scan(
            conn,
            scan_id,
            content_id=context.content_id,
            content_url=context.content_url,
            api_key_id=context.api_key_id,
            hashes=hashes,
        )


async def _lookback_retention(app: web.Application) -> AsyncIterator[None]:
    """Upload hashes kept for look-back are deleted once older than HASHGUARD_LOOKBACK_DAYS (all of
    them when it is 0, so turning look-back off also forgets what it kept)."""

    async def purge_forever() -> None:
        while True:
            try:
                async with app[POOL].acquire() as conn:
                    gone = await hashsets_pg.purge_scan_hashes(conn, app[SETTINGS].lookback_days)
                if gone:
                    log.info("look-back: deleted %d upload hashes past their retention", gone)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("could not purge look-back upload hashes; retrying")
            await asyncio.sleep(600)

    task = asyncio.create_task(purge_forever(), name="hashguard-lookback-retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _decide_tools(app: web.Application, conn: asyncpg.Connection) -> tuple[dict[str, Activation], datetime | None]:
    """The approval policy's decision for every installed tool now, and when it may next change by itself."""
    approvals, allowances = await approvals_pg.policy_inputs(conn)
    now = datetime.now(UTC)
    decisions = decide_all(
        {t.name: t.version for t in app[TOOLS]},
        approvals=approvals,
        allowances=allowances,
        jurisdictions=app[SETTINGS].jurisdictions,
        now=now,
    )
    return decisions, next_change(approvals, now)


def _fingerprint(generation: int, activations: Mapping[str, Activation], changes_at: datetime | None) -> Hashable:
    # The lists' generation counter moves with every change to what is matched (versions, status,
    # thresholds, disabled entries, allow-list). The decisions are part of it: an approval suspended, withdrawn or expired changes the
    # fingerprint, so the reloader swaps in a snapshot without that tool's index. So is the next
    # validity boundary, so passing one always installs a snapshot that schedules the next.
    return generation, tuple(sorted(activations.items())), changes_at


async def _active_fingerprint(app: web.Application) -> Hashable:
    async with app[POOL].acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        generation = await hashsets_pg.generation(conn)
        activations, changes_at = await _decide_tools(app, conn)
        return _fingerprint(generation, activations, changes_at)


async def _load_snapshot(app: web.Application) -> tuple[Hashable, MatchSnapshot]:
    """Read every active and shadow list version in one consistent database snapshot and index it.

    The fingerprint is the lists' generation counter read in the same transaction, so a change
    committed while loading is seen as a change at the next check.
    """
    tools = app[TOOLS]
    ids: dict[str, list[np.ndarray]] = {}
    codes: dict[str, list[bytes]] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    offsets: dict[str, int] = {}
    loaded: list[LoadedVersion] = []
    gaps: list[LoadedVersion] = []
    allow_ids: dict[str, list[int]] = {}
    allow_codes: dict[str, list[bytes]] = {}
    async with app[POOL].acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        generation = await hashsets_pg.generation(conn)
        versions = await hashsets_pg.active_versions(conn)
        activations, changes_at = await _decide_tools(app, conn)
        for version in versions:
            if version.tool not in tools.names() or not activations[version.tool].active:
                # Stored, not matched: a coverage gap, reported; the list comes back into use when
                # its tool is enabled and approved again.
                log.warning(
                    "list %s holds %d %s entries, but no active tool computes %s hashes (%s): a coverage gap",
                    version.name,
                    version.entry_count,
                    version.tool,
                    version.tool,
                    activations[version.tool].reason if version.tool in activations else "not enabled",
                )
                gaps.append(
                    LoadedVersion(hashset=version.name, version=version.version, tool=version.tool, entries=version.entry_count)
                )
                continue
            start = offsets.get(version.tool, 0)
            count = 0
            async for chunk in hashsets_pg.stream_entries(conn, version):
                ids.setdefault(version.tool, []).append(np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk)))
                codes.setdefault(version.tool, []).append(b"".join(r[1] for r in chunk))
                count += len(chunk)
            spans.setdefault(version.tool, []).append((start, len(loaded)))
            offsets[version.tool] = start + count
            loaded.append(
                LoadedVersion(
                    hashset=version.name,
                    version=version.version,
                    tool=version.tool,
                    entries=count,
                    status=version.status,
                    threshold=version.threshold,
                )
            )
        for allow_id, tool_name, value in await hashsets_pg.allowed_hashes(conn):
            if tool_name in tools.names() and activations[tool_name].active:
                allow_ids.setdefault(tool_name, []).append(allow_id)
                allow_codes.setdefault(tool_name, []).append(value)
        app[METRICS].quarantined_entries.set(await hashsets_pg.count_quarantined(conn))
    entries = {
        name: ToolEntries(
            ids=np.concatenate(ids[name]),
            codes=np.frombuffer(b"".join(codes[name]), dtype=np.uint8).reshape(-1, tools.get(name).width),
            spans=tuple(spans[name]),
        )
        for name in ids
    }
    allow = {
        name: ToolEntries(
            ids=np.array(allow_ids[name], dtype=np.int64),
            codes=np.frombuffer(b"".join(allow_codes[name]), dtype=np.uint8).reshape(-1, tools.get(name).width),
        )
        for name in allow_ids
    }
    active = [t for t in tools if activations[t.name].active]
    snapshot = await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(build_snapshot, active, loaded, entries, activations, allow=allow, coverage_gaps=gaps)
    )
    snapshot = dataclasses.replace(snapshot, policy_changes_at=changes_at)
    return _fingerprint(generation, activations, changes_at), snapshot


def _log_tool_changes(old: MatchSnapshot | None, new: MatchSnapshot) -> None:
    before = old.activations if old is not None else {}
    for name, act in new.activations.items():
        if before.get(name) != act:
            state = "ACTIVE" if act.active else "inactive"
            log.info("tool %s %s is %s: %s (%s)", name, act.version, state, act.reason, act.detail)
    if not new.active_tools():
        log.warning("no detection tool is active: scans answer 503 not_ready until a tool is approved or allowed locally")


async def _index(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    timer: list[asyncio.TimerHandle] = []

    def install(snapshot: MatchSnapshot, seconds: float) -> None:
        _log_tool_changes(app[HOLDER].current, snapshot)
        app[HOLDER].current = snapshot
        observe_snapshot(app[METRICS], snapshot, seconds)
        # An approval that expires (or starts) changes what may scan with nothing written to the
        # database: wake the reloader at that moment instead of waiting for the periodic check.
        while timer:
            timer.pop().cancel()
        if snapshot.policy_changes_at is not None:
            delay = (snapshot.policy_changes_at - datetime.now(UTC)).total_seconds()
            timer.append(loop.call_later(min(max(delay, 0.0) + 0.01, 86_400.0), reloader.wake))

    reloader = Reloader(
        url=app[DB_URL],
        fingerprint=lambda: _active_fingerprint(app),
        load=lambda: _load_snapshot(app),
        install=install,
        interval_s=app[SETTINGS].reload_interval_s,
    )
    await reloader.load_now()
    task = asyncio.create_task(reloader.run(), name="hashguard-reload")
    yield
    while timer:
        timer.pop().cancel()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _takedown_config(settings: Settings) -> TakedownConfig:
    return TakedownConfig(
        due_hours={
            Source.HASH_MATCH: settings.due_hash_match_h,
            Source.AUTHORITY_ORDER: settings.due_authority_order_h,
            Source.HOTLINE: settings.due_hotline_h,
            Source.TRUSTED_FLAGGER: settings.due_trusted_flagger_h,
            Source.USER_REPORT: settings.due_user_report_h,
        },
        lease_s=settings.lease_s,
        appeal_window_days=settings.appeal_window_days,
        retention_days=settings.retention_days,
    )


def _job_metrics(metrics: Metrics) -> takedown_jobs.JobMetrics:
    return takedown_jobs.JobMetrics(
        deliveries=metrics.webhook_deliveries,
        outbox_pending=metrics.outbox_pending,
        outbox_failed=metrics.outbox_failed,
        outbox_oldest_pending=metrics.outbox_oldest_pending,
        tickets=metrics.tickets,
        tickets_overdue=metrics.tickets_overdue,
        evidence_purged=metrics.evidence_purged,
    )


def _settings_for_audit(settings: Settings) -> dict[str, str]:
    """The settings in effect, for the audit log: secrets and database credentials only as set or unset."""
    secret = {"HASHGUARD_WEBHOOK_SECRET", "HASHGUARD_DATABASE_URL"}
    shown: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        env, value = f.metadata["env"], getattr(settings, f.name)
        if env in secret:
            shown[env] = "(unset)" if value is None else "(set)"
        elif env == "HASHGUARD_WEBHOOK_URL" and value:
            # A URL may carry credentials (user:pass@, a token in the query): keep only where it points.
            parts = urlsplit(value)
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            shown[env] = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        else:
            shown[env] = ",".join(value) if isinstance(value, tuple) else str(value)
    return shown


async def _takedown_jobs(app: web.Application) -> AsyncIterator[None]:
    """Outbox delivery (when a webhook is configured), the evidence purge, lease expiry and the queue gauges."""
    settings = app[SETTINGS]
    metrics = _job_metrics(app[METRICS])
    pool = app[POOL]
    async with pool.acquire() as conn:
        await auditlog.record_settings(conn, _settings_for_audit(settings))
    tasks = [
        asyncio.create_task(
            takedown_jobs.retention_loop(pool, settings.retention_interval_s, metrics, settings.retention_days),
            name="hashguard-retention",
        ),
        asyncio.create_task(takedown_jobs.queue_loop(pool, metrics), name="hashguard-takedown-queue"),
    ]
    session: aiohttp.ClientSession | None = None
    if settings.webhook_url and settings.webhook_secret:
        session = aiohttp.ClientSession()
        deliverer = takedown_jobs.OutboxDeliverer(
            pool=pool,
            session=session,
            config=takedown_jobs.WebhookConfig(
                url=settings.webhook_url,
                secret=settings.webhook_secret,
                timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts,
                backoff_base_s=settings.webhook_backoff_s,
                backoff_cap_s=settings.webhook_backoff_max_s,
                poll_s=settings.outbox_poll_s,
            ),
            metrics=metrics,
            waker=app[takedown_http.WAKER],
        )
        tasks.append(asyncio.create_task(deliverer.run(), name="hashguard-outbox"))
    else:
        log.warning("HASHGUARD_WEBHOOK_URL is not set: takedown actions are kept in the outbox, undelivered")
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if session is not None:
        await session.close()


# The root's own routes: the document that describes every context's.
ROUTES: list[Route] = [openapi.ROUTE]


def service_routes() -> list[Route]:
    """Every endpoint the service serves: the one table the router, the document and the role tests read."""
    return [*http.ROUTES, *approvals_http.ROUTES, *ROUTES, *takedown_http.ROUTES]


def create_app(settings: Settings) -> web.Application:
    """Build the service. Resources (database pool, hashing threads, index) start with the app."""
    app = web.Application(
        # Bodies are streamed with their own limits; this cap is a second line of defence.
        client_max_size=settings.max_upload_bytes + _MULTIPART_SLACK,
        middlewares=[errors_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[TOOLS] = ToolRegistry.load(settings.tools)
    app[HOLDER] = SnapshotHolder()
    app[KEY_CACHE] = {}
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_hash_pool)
    app.cleanup_ctx.append(_index)
    app.cleanup_ctx.append(_lookback_retention)
    if settings.webhook_url and not settings.webhook_secret:
        raise SettingsError("HASHGUARD_WEBHOOK_URL is set but HASHGUARD_WEBHOOK_SECRET is not: webhooks must be signed")
    app[takedown_http.CONFIG] = _takedown_config(settings)
    # Cross-context flow: a reviewer's verdict that a hash match was wrong becomes feedback on the
    # list entry for its issuer, in the decision's own transaction.
    app[takedown_http.DECISION_HOOKS] = (flows.wrong_match_feedback,)
    app[takedown_http.WAKER] = takedown_jobs.Waker()
    app.cleanup_ctx.append(_takedown_jobs)
    routes = service_routes()
    register(app, routes)
    app[openapi.DOCUMENT] = openapi.openapi_document(routes)
    return app
