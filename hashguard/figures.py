"""The root's wiring for the figures stream: the DSA Transparency Database submitter and the EU
legal-basis switch for voluntary detection. ``hashguard.app.create_app`` calls ``install``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from detector.tools.policy import EU_JURISDICTIONS, eu_detection_halt
from hashsets import lists as hashset_lists
from kernel.appkeys import METRICS, POOL, SETTINGS
from kernel.settings import Settings, SettingsError
from takedown import dsa_jobs, figures_cli, transparency
from takedown import http as takedown_http
from takedown.dsa_db import dsa_settings_problem

log = logging.getLogger(__name__)


def dsa_config(settings: Settings) -> dsa_jobs.DsaConfig | None:
    """The submitter's configuration, or None when HASHGUARD_DSA_DB_URL is unset (then statements wait, queued)."""
    if not settings.dsa_db_url or not settings.dsa_db_token:
        return None
    return dsa_jobs.DsaConfig(
        url=settings.dsa_db_url,
        token=settings.dsa_db_token,
        timeout_s=settings.dsa_db_timeout_s,
        rate_per_s=settings.dsa_db_rate_per_s,
        rate_per_min=settings.dsa_db_rate_per_min,
        backoff_base_s=settings.dsa_db_backoff_s,
        backoff_cap_s=settings.dsa_db_backoff_max_s,
        poll_s=settings.dsa_db_poll_s,
    )


async def _dsa_submitter(app: web.Application) -> AsyncIterator[None]:
    config = dsa_config(app[SETTINGS])
    if config is None:
        log.info("HASHGUARD_DSA_DB_URL is not set: statements of reasons are queued for the DSA Transparency Database, not sent")
        yield
        return
    metrics = app[METRICS]
    session = aiohttp.ClientSession()
    submitter = dsa_jobs.DsaSubmitter(
        pool=app[POOL],
        session=session,
        config=config,
        metrics=dsa_jobs.DsaMetrics(
            submissions=metrics.dsa_submissions,
            pending=metrics.dsa_pending,
            failed=metrics.dsa_failed,
            oldest_pending=metrics.dsa_oldest_pending,
        ),
    )
    task = asyncio.create_task(submitter.run(), name="hashguard-dsa-submitter")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await session.close()


def install(app: web.Application, settings: Settings) -> None:
    """Check the figures stream's settings and add its background work to ``app``."""
    if (problem := dsa_settings_problem(settings.dsa_db_url, settings.dsa_db_token)) is not None:
        raise SettingsError(problem)
    app[takedown_http.CONFIG] = dataclasses.replace(
        app[takedown_http.CONFIG], dsa_territorial_scope=settings.dsa_territorial_scope
    )
    halt = eu_detection_halt(settings.jurisdictions, settings.eu_voluntary_detection_basis)
    app[METRICS].eu_detection_halted.set(1 if halt else 0)
    if halt:
        log.error("ALERT: %s", halt)
    app[takedown_http.FIGURES_CONTEXT] = figures_context(settings)
    app[takedown_http.LISTS_IN_FORCE] = lists_in_force
    app.cleanup_ctx.append(_dsa_submitter)


async def lists_in_force(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """The list versions in force now, for the transparency figures (names, versions, sizes: never entries)."""
    return [
        {"hashset": v.name, "tool": v.tool, "version": v.version, "entries": v.entry_count, "status": v.status}
        for v in await hashset_lists.active_versions(conn)
    ]


def figures_context(settings: Settings) -> transparency.Context:
    serves_eu = bool({j.upper() for j in settings.jurisdictions} & EU_JURISDICTIONS)
    return transparency.Context(
        eu=transparency.EuBasis(
            serves_eu=serves_eu,
            basis=settings.eu_voluntary_detection_basis,
            halted=eu_detection_halt(settings.jurisdictions, settings.eu_voluntary_detection_basis),
        ),
        retention_days=settings.retention_days,
        appeal_window_days=settings.appeal_window_days,
    )


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser], run: Any) -> None:
    """``hashguard transparency`` and ``hashguard dsa``, with the root's collaborators."""
    figures_cli.register(sub, run, context=lambda: figures_context(Settings.from_env()), lists_in_force=lists_in_force)
