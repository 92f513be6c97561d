"""The composition root of the service: the one place that wires the contexts (detector, hashsets, takedown) together."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiohttp import web

from detector import hma_http, http
from detector.appkeys import HASH_POOL, HOLDER, SCANNER, TOOLS, VIDEO, VIDEO_PARAMS
from detector.approvals import http as approvals_http
from detector.approvals import pg as approvals_pg
from detector.decode import HashingPath
from detector.index_metrics import observe_snapshot
from detector.matcher import MatchSnapshot
from detector.probing import ProbeRules
from detector.reload import Reloader
from detector.remember import Remember
from detector.resolve import Answered, ProbeGuard, Resolver
from detector.scan import HashPool, ScanService, SnapshotHolder
from detector.snapshots import SnapshotLoader
from detector.tools.policy import eu_detection_halt
from detector.tools.registry import ToolRegistry
from detector.video_decode import VideoLimits
from detector.video_frames import MatchParams
from detector.video_scan import VideoScanner, VideoSettings
from hashguard import console_admin, exchange_jobs, figures, flows, openapi
from hashguard.workers import SINGLE, WORKER_ROLE, WorkerRole
from hashsets import uploads
from hashsets.entries import entry_classifications
from hashsets.serving import MatchCatalogue, SnapshotSource
from kernel import auditlog, keys_http
from kernel.appkeys import DB_HEALTH, DB_URL, KEY_CACHE, KEY_GUARD, METRICS, POOL, READY_DETAILS, SETTINGS
from kernel.db import create_pool, migrate, resolve_url
from kernel.dbfaults import DatabaseHealth, quiet_driver_logs
from kernel.metrics import Metrics, replica_dir
from kernel.ratelimit import ControlsCache, KeyGuard
from kernel.routes import Route, register
from kernel.settings import Settings, SettingsError
from kernel.web import AccessLogger, errors_middleware
from takedown import http as takedown_http
from takedown import jobs as takedown_jobs
from takedown.config import TakedownConfig
from takedown.console import http as console_http
from takedown.matching import MatchOpening, MatchTicket, open_for_many
from takedown.reports import job as report_job
from takedown.reports.case import Uploader
from takedown.webhooks import webhook_settings_problem
from takedown.workflow import Source

log = logging.getLogger(__name__)

# Room for multipart framing and the small form fields beside the media itself.
_MULTIPART_SLACK = 64 * 1024


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    role = app.get(WORKER_ROLE, SINGLE)
    # A worker of several connects where the parent started (or found) the database and migrated it once.
    url = role.database_url or await resolve_url(settings.database_url, settings.data_dir)
    pool = await create_pool(url, settings.db_pool_size)
    if role.database_url is None:
        async with pool.acquire() as conn:
            await migrate(conn)
    app[DB_URL] = url
    app[POOL] = pool
    # While PostgreSQL is unreachable /readyz and every /v1/ call answer 503 (kernel.dbfaults).
    quiet_driver_logs()
    app[DB_HEALTH] = health = DatabaseHealth(url)
    yield
    await health.close()
    await pool.close()


async def _hash_pool(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[HASH_POOL] = HashPool(
        settings.hash_workers,
        settings.scan_timeout_s,
        processes=settings.hash_pool == "processes",
        memory_total=settings.decode_memory_total_mb << 20,
        memory_small=(settings.decode_memory_mb << 20) // 16,
    )
    app[METRICS].decode_memory.set_function(lambda: app[HASH_POOL].memory.used)
    app[SCANNER] = ScanService(
        tools=app[TOOLS],
        holder=app[HOLDER],
        pool=app[HASH_POOL],
        max_pixels=settings.max_pixels,
        hashing=HashingPath(settings.hashing),
        memory_budget=settings.decode_memory_mb << 20,
        variants=settings.query_variants,
        # A match's flow across contexts: the lists describe and quarantine entries (hashsets), the
        # evidence is the detector's, the ticket takedown's, all in one transaction.
        resolve=Resolver(
            pool=app[POOL],
            lists=MatchCatalogue(),
            tickets=_TicketDesk(app),
            tools=app[TOOLS],
            metrics=app[METRICS],
            flood_max_matches=settings.flood_max_matches,
            flood_window_s=settings.flood_window_s,
            flood_min_sources=settings.flood_min_sources,
            probing=_probe_guard(settings, app[TOOLS]),
            # A suspension takes effect at once here; other replicas see it within HASHGUARD_KEY_CACHE_S
            # (and at their next match, which the detector checks in the database).
            on_suspended=app[KEY_GUARD].controls.forget,
        ),
        # Look-back: the detector hands an upload's hashes to hashsets' store to re-check on later imports.
        remember=Remember(pool=app[POOL], keep=uploads.remember_scans) if settings.lookback_days else None,
    )
    yield
    await asyncio.get_running_loop().run_in_executor(None, app[HASH_POOL].close)


def _probe_guard(settings: Settings, tools: ToolRegistry) -> ProbeGuard | None:
    rules = ProbeRules(
        off_weight=settings.probe_off_weight, spread_fraction=settings.probe_spread, boundary=settings.probe_boundary
    )
    if not (rules.off_weight or rules.spread_fraction or rules.boundary):
        return None
    return ProbeGuard(rules=rules, window_s=settings.probe_window_s, thresholds={t.name: t.threshold() for t in tools})


def _uploader(sent: Mapping[str, object] | None) -> Uploader | None:
    """The detector's checked ``uploader_*`` scan fields as takedown's value."""
    if not sent:
        return None
    port, when = sent.get("port"), sent.get("upload_time")
    return Uploader(
        account_id=str(sent["account_id"]) if "account_id" in sent else None,
        screen_name=str(sent["screen_name"]) if "screen_name" in sent else None,
        ip=str(sent["ip"]) if "ip" in sent else None,
        port=port if isinstance(port, int) else None,
        upload_time=when if isinstance(when, datetime) else None,
    )


class _TicketDesk:
    """The takedown side of a match (``detector.resolve.TicketDesk``): the root's adapter over takedown."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def open_for_many(self, conn: asyncpg.Connection, items: Sequence[Answered]) -> list[MatchTicket]:
        """Open takedown tickets (or join the contents' live ones) in the evidence's transaction, set-based."""
        return await open_for_many(
            conn,
            [
                MatchOpening(
                    scan_id=item.scan_id,
                    tenant_id=item.context.tenant_id,
                    content_id=item.context.content_id,
                    content_url=item.context.content_url,
                    api_key_id=item.context.api_key_id,
                    matches=item.matches,
                    upload_hashes=item.hashes,
                    uploader=_uploader(item.context.uploader),
                )
                for item in items
            ],
            config=self._app[takedown_http.CONFIG],
            on_decision=self._app[takedown_http.DECISION_HOOKS],
        )

    def committed(self, ticket: MatchTicket) -> None:
        metrics = self._app[METRICS]
        if ticket.opened:
            metrics.tickets_opened.labels(source=Source.HASH_MATCH.value).inc()
        if ticket.auto_action is not None:
            metrics.ticket_decisions.labels(state="actioned", automated="true").inc()
            self._app[takedown_http.WAKER].wake()


async def _lookback_retention(app: web.Application) -> AsyncIterator[None]:
    """Upload hashes kept for look-back are deleted once older than HASHGUARD_LOOKBACK_DAYS (all of
    them when it is 0, so turning look-back off also forgets what it kept)."""

    async def purge_forever() -> None:
        while True:
            try:
                async with app[POOL].acquire() as conn:
                    gone = await uploads.purge_scan_hashes(conn, app[SETTINGS].lookback_days)
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


def _log_tool_changes(old: MatchSnapshot | None, new: MatchSnapshot) -> None:
    before = old.activations if old is not None else {}
    for name, act in new.activations.items():
        if before.get(name) != act:
            state = "ACTIVE" if act.active else "inactive"
            log.info("tool %s %s is %s: %s (%s)", name, act.version, state, act.reason, act.detail)
    if not new.active_tools():
        log.warning("no detection tool is active: scans answer 503 not_ready until a tool is approved or allowed locally")


def _with_list_switches(
    load: Callable[[], Awaitable[tuple[Hashable, MatchSnapshot]]], source: SnapshotSource
) -> Callable[[], Awaitable[tuple[Hashable, MatchSnapshot]]]:
    """The loader's snapshot with the lists' dihedral switches, read by ``source`` in the load's own transaction."""

    async def switched() -> tuple[Hashable, MatchSnapshot]:
        fingerprint, snapshot = await load()
        return fingerprint, dataclasses.replace(snapshot, dihedral_off=source.dihedral_off)

    return switched


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

    settings = app[SETTINGS]
    # Snapshot building: the detector reads the stored lists through hashsets' reader.
    source = SnapshotSource()
    loader = SnapshotLoader(
        pool=app[POOL],
        lists=source,
        policy_inputs=approvals_pg.policy_inputs,
        tools=app[TOOLS],
        jurisdictions=settings.jurisdictions,
        metrics=app[METRICS],
        halt=eu_detection_halt(settings.jurisdictions, settings.eu_voluntary_detection_basis),
        video_params=app.get(VIDEO_PARAMS),
        # Built indexes persist here: a start maps the file (shared by the replica's workers) and
        # catches up by deltas instead of reading every row (detector.index_store).
        index_dir=settings.index_dir or settings.data_dir / "index",
    )

    def confirmed() -> None:
        app[HOLDER].confirmed_at = time.monotonic()
        app[METRICS].index_confirmed.set(time.time())

    reloader = Reloader(
        url=app[DB_URL],
        fingerprint=loader.fingerprint,
        load=_with_list_switches(loader.load, source),
        install=install,
        interval_s=settings.reload_interval_s,
        confirmed=confirmed,
        failed=lambda _: app[METRICS].index_reload_failures.inc(),
    )
    # A failure here must not stop the start: the service comes up not ready (scans 503, never an
    # unchecked no_match) and the reload loop keeps trying.
    if not await reloader.check():
        log.error("ALERT: the index could not be loaded at start-up; /readyz and scans answer 503 until a reload succeeds")
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
    secret = {"HASHGUARD_WEBHOOK_SECRET", "HASHGUARD_DATABASE_URL", "HASHGUARD_DSA_DB_TOKEN"}
    shown: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        env, value = f.metadata["env"], getattr(settings, f.name)
        if env in secret or env.endswith(("_PASSWORD", "_SECRET", "_TOKEN")):
            shown[env] = "(unset)" if value is None else "(set)"
        elif env == "HASHGUARD_WEBHOOK_URL" and value:
            # A URL may carry credentials (user:pass@, a token in the query): keep only where it points.
            parts = urlsplit(value)
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            shown[env] = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        else:
            shown[env] = ",".join(value) if isinstance(value, tuple) else str(value)
    return shown


async def _record_settings(pool: asyncpg.Pool, shown: dict[str, str]) -> None:
    """The settings in effect go to the audit log, retried with backoff while PostgreSQL is away."""
    delay = 1.0
    while True:
        try:
            async with pool.acquire() as conn:
                await auditlog.record_settings(conn, shown)
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not record the settings in the audit log (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def _takedown_jobs(app: web.Application) -> AsyncIterator[None]:
    """Outbox delivery (when a webhook is configured), the evidence purge, lease expiry and the queue gauges."""
    settings = app[SETTINGS]
    metrics = _job_metrics(app[METRICS])
    pool = app[POOL]
    shown = _settings_for_audit(settings)
    tasks: list[asyncio.Task[None]] = []
    try:  # at once when PostgreSQL is there (the record precedes anything this process does) ...
        async with pool.acquire() as conn:
            await auditlog.record_settings(conn, shown)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # ... else as soon as it is back: a worker restarted during an outage still starts and answers 503.
        log.warning("could not record the settings in the audit log (%s); retrying in the background", exc)
        tasks.append(asyncio.create_task(_record_settings(pool, shown), name="hashguard-settings-audit"))
    tasks += [
        asyncio.create_task(
            takedown_jobs.retention_loop(
                pool, settings.retention_interval_s, flows.DETECTOR_SCANS, metrics, settings.retention_days
            ),
            name="hashguard-retention",
        ),
        asyncio.create_task(takedown_jobs.queue_loop(pool, metrics), name="hashguard-takedown-queue"),
    ]
    # Delivery always runs: tenants may have their own webhooks (``hashguard tenants webhook``);
    # the global one, when set, serves the default tenant.
    session = aiohttp.ClientSession()
    deliverer = takedown_jobs.OutboxDeliverer(
        pool=pool,
        session=session,
        config=takedown_jobs.WebhookConfig(
            url=settings.webhook_url if settings.webhook_secret else None,
            secret=settings.webhook_secret if settings.webhook_url else None,
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
    if not settings.webhook_url:
        log.warning("HASHGUARD_WEBHOOK_URL is not set: the default tenant's takedown actions are kept in the outbox, undelivered")
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await session.close()


def report_metrics(metrics: Metrics) -> report_job.ReportMetrics:
    return report_job.ReportMetrics(
        submissions=metrics.report_submissions,
        open=metrics.reports_open,
        oldest_unfinished=metrics.report_oldest_unfinished,
        errors=metrics.hotline_errors,
    )


async def _report_filer(app: web.Application) -> AsyncIterator[None]:
    """The CyberTipline filing job (when configured); its gauges are kept either way."""
    config = report_job.config_from_settings(app[SETTINGS])
    session = aiohttp.ClientSession()
    filer = report_job.NcmecFiler(
        pool=app[POOL],
        session=session,
        config=config,
        metrics=report_metrics(app[METRICS]),
        waker=app[takedown_http.REPORTING].waker,
        categories=entry_classifications,
    )
    if config.problem() is not None and config.url:
        log.warning("NCMEC reporting is not usable: %s", config.problem())
    task = asyncio.create_task(filer.run(), name="hashguard-report-filer")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await session.close()


# The root's own routes: the document that describes every context's.
ROUTES: list[Route] = [openapi.ROUTE]
ROUTES += hma_http.ROUTES  # exchanges (issue 14): HMA-compatible matching endpoints


def service_routes() -> list[Route]:
    """Every endpoint the service serves: the one table the router, the document and the role tests read."""
    return [*http.ROUTES, *approvals_http.ROUTES, *ROUTES, *takedown_http.ROUTES, *keys_http.ROUTES, *console_http.ROUTES]


def server_options(settings: Settings) -> dict[str, Any]:
    """How the HTTP server runs the app (``web.run_app``, ``web.AppRunner``, the tests' ``TestServer``):
    the idle keep-alive / header read limit, and an access log without query strings (evidence).
    aiohttp's own limits stay: request line and each header at most 8190 bytes, at most 128 headers."""
    return {"keepalive_timeout": settings.keepalive_timeout_s, "access_log_class": AccessLogger}


# -- scale (issue 16)
# Where each background context runs when ``hashguard serve --workers N`` runs several processes (hashguard/workers.py).
# Every worker: its own pool, hashing pool and index snapshot (the reloader must run in each). Once per replica
# (worker 0; a restarted worker 0 takes them up again): the jobs below. Each is also safe across replicas in the
# database (outbox, reports, DSA statements and evidence purge claim rows FOR UPDATE SKIP LOCKED with leases;
# exchanges fetch each source under an advisory lock; lease expiry and the retention deletes are idempotent),
# so running them once per replica only avoids N-fold polling and N audit rows of the settings per start.
# A context in neither set runs in worker 0 only (never once per worker by accident); tests/unit/test_workers.py
# fails until it is classified.
EVERY_WORKER: frozenset[str] = frozenset(
    {"hashguard.app._database", "hashguard.app._hash_pool", "hashguard.app._index", "hashguard.app._worker_upkeep"}
)
ONCE_PER_REPLICA: frozenset[str] = frozenset(
    {
        "hashguard.app._lookback_retention",
        "hashguard.app._takedown_jobs",
        "hashguard.app._report_filer",
        "hashguard.figures._dsa_submitter",
        "hashguard.exchange_jobs.exchanges_context",
    }
)


def context_name(ctx: Callable[..., Any]) -> str:
    return f"{getattr(ctx, '__module__', '?')}.{getattr(ctx, '__qualname__', repr(ctx))}"


async def _worker_upkeep(app: web.Application) -> AsyncIterator[None]:
    """In a worker of several: function gauges written to its metric files, and the sources' freshness for its
    /readyz (worker 0 fetches; any worker reads the database's figures)."""
    role = app[WORKER_ROLE]

    async def forever() -> None:
        while True:
            app[METRICS].refresh()
            if not role.replica_jobs and app[SETTINGS].exchanges == "on":
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await exchange_jobs.refresh(app)
            await asyncio.sleep(1.0)

    task = asyncio.create_task(forever(), name="hashguard-worker-upkeep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _worker_identity(app: web.Application, role: WorkerRole) -> None:
    """Say which worker answered (its index, never its pid): a header on every answer and a /readyz field."""

    async def stamp(_: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Hashguard-Worker"] = str(role.index)

    app.on_response_prepare.append(stamp)
    app[READY_DETAILS]["worker"] = lambda: {"index": role.index, "of": role.count}


# -- end scale


def create_app(settings: Settings, role: WorkerRole = SINGLE) -> web.Application:
    """Build the service. Resources (database pool, hashing threads, index) start with the app.

    ``role``: which worker of ``hashguard serve --workers N`` this is; the default, one process, runs everything."""
    app = web.Application(
        # Bodies are streamed with their own limits; this cap is a second line of defence.
        client_max_size=settings.max_upload_bytes + _MULTIPART_SLACK,
        middlewares=[errors_middleware],
    )
    app[SETTINGS] = settings
    app[WORKER_ROLE] = role
    app[METRICS] = Metrics(replica_dir=replica_dir() if role.supervised else None)
    app[TOOLS] = ToolRegistry.load(settings.tools)
    app[HOLDER] = SnapshotHolder()
    app[KEY_CACHE] = {}
    app[KEY_GUARD] = KeyGuard(controls=ControlsCache(ttl=settings.key_cache_s))
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_hash_pool)
    app.cleanup_ctx.append(_index)
    app.cleanup_ctx.append(_lookback_retention)
    if (problem := webhook_settings_problem(settings.webhook_url, settings.webhook_secret)) is not None:
        raise SettingsError(problem)
    app[takedown_http.CONFIG] = _takedown_config(settings)
    # Cross-context flow: a reviewer's verdict that a hash match was wrong becomes feedback on the
    # list entry for its issuer, in the decision's own transaction.
    app[takedown_http.DECISION_HOOKS] = (flows.wrong_match_feedback,)
    app[takedown_http.WAKER] = takedown_jobs.Waker()
    app.cleanup_ctx.append(_takedown_jobs)
    # -- reports (issue 12: NCMEC, NCA, hotline exports)
    # hashguard files CyberTipline reports itself (takedown.reports): the filing job runs beside the
    # outbox; the report endpoint answers 409 until HASHGUARD_NCMEC_* and HASHGUARD_REPORTER_EMAIL are set.
    ncmec_config = report_job.config_from_settings(settings)
    app[takedown_http.REPORTING] = takedown_http.Reporting(ncmec_problem=ncmec_config.problem(), waker=takedown_jobs.Waker())
    app.cleanup_ctx.append(_report_filer)
    # -- end reports
    # -- figures (issue 12: DSA database, transparency, monitoring)
    figures.install(app, settings)
    # -- end figures
    # -- console (issue 13)
    # The console's pages (HTML, outside the API document) and the lists' side of its evidence panel.
    console_admin.register(app, app[TOOLS])
    # -- end console
    # -- exchanges (issue 14)
    # A reviewer's verdict on a match of a hash-sharing source's entry goes back to the source
    # (queued in the decision's transaction); the fetch schedule runs where HASHGUARD_EXCHANGES=on.
    app[takedown_http.DECISION_HOOKS] = (*app[takedown_http.DECISION_HOOKS], flows.exchange_feedback)
    freshness: list[dict[str, Any]] = []
    app[exchange_jobs.FRESHNESS] = freshness
    app[READY_DETAILS] = {"exchanges": lambda: list(freshness)}
    if settings.exchanges == "on":
        app.cleanup_ctx.append(exchange_jobs.exchanges_context)
    # -- end exchanges
    # -- video (issue 15)
    # Videos: each decoded in its own worker process under these limits (detector.video_decode); vPDQ's
    # matching values reach the snapshot builder through VIDEO_PARAMS.
    app[VIDEO] = VideoScanner(
        VideoSettings(
            limits=VideoLimits(
                max_bytes=settings.video_max_bytes,
                max_duration_s=settings.video_max_seconds,
                max_frame_pixels=settings.video_max_frame_pixels,
                max_frames=settings.video_max_frames,
                wall_s=settings.video_wall_s,
                memory_bytes=settings.video_memory_mb << 20,
            ),
            workers=settings.video_workers,
            seconds_per_hash=settings.vpdq_seconds_per_hash,
            hashing=HashingPath(settings.hashing),
            queue_timeout_s=settings.scan_timeout_s,
            tmp_dir=settings.video_tmp_dir,
        ),
        app[METRICS],
    )
    app[VIDEO_PARAMS] = {
        "vpdq": MatchParams(
            distance=settings.vpdq_distance,
            quality=settings.vpdq_quality,
            query_share=settings.vpdq_query_share,
            index_share=settings.vpdq_index_share,
        )
    }
    # -- end video
    # -- scale (issue 16)
    if role.supervised:
        app.cleanup_ctx.append(_worker_upkeep)
        _worker_identity(app, role)
        if not role.replica_jobs:
            kept = [c for c in app.cleanup_ctx if context_name(c) in EVERY_WORKER]
            app.cleanup_ctx.clear()
            app.cleanup_ctx.extend(kept)
    # -- end scale
    # -- deploy (issue 16: deploy, backfill, batch lookups)
    # -- end deploy
    # -- evasion (issue 17)
    # -- end evasion
    routes = service_routes()
    register(app, routes)
    app[openapi.DOCUMENT] = openapi.openapi_document(routes)
    return app
