"""The ``hashguard`` command line: serve, keys, hash, hashsets."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from detector.approvals.cli import register as register_tools
from detector.decode import HashingPath, Media
from detector.tools.registry import ToolRegistry, ToolRegistryError
from hashguard import backfill, figures, flows
from hashguard.workers import (
    Supervisor,
    available_cpus,
    listening_socket,
    metrics_folder,
    prepare_database,
    remove_metrics_folder,
    running_on,
)
from hashsets import cli as hashsets_cli
from hashsets.entries import entry_classifications
from hashsets.errors import HashsetError
from hashsets.exchanges import cli as exchanges_cli
from hashsets.exchanges.base import ExchangeError
from kernel import auditlog, keycontrols, keystore, staff_cli
from kernel.commandline import run_with_connection
from kernel.db import DatabaseError
from kernel.errors import ServiceError
from kernel.keys import DEFAULT_TENANT, TENANT_NAME, Role, new_key
from kernel.settings import Settings, SettingsError
from takedown import cli as takedown_cli
from takedown import outbox_store, webhooks
from takedown.reports import cli as reports_cli


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env()


def _can_listen(host: str, port: int) -> None:
    """Refuse a busy or unusable address in one line, before the database and the index start."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            probe.bind(address)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}") from None


def _announce_demo(demo: Any, host: str, port: int) -> None:
    from hashguard.demo import curl_command

    print("\nDemo ready: a list of synthetic drawings (not real material) and a demo key.", flush=True)
    if demo.created:
        print(f"The demo key was created now and written to {demo.key_file} (readable by you only).", flush=True)
    else:
        print(f"The demo key is in {demo.key_file} (readable by you only).", flush=True)
    print('Scan a resized, re-encoded copy of one drawing (expect "verdict": "match"):\n', flush=True)
    print("  " + curl_command(demo, host, port) + "\n", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from hashguard.app import create_app, server_options
    from hashguard.demo import seed

    settings = _settings(args)
    workers = args.workers if args.workers is not None else settings.workers
    workers = workers or available_cpus()
    if workers < 1:
        raise CommandError("--workers must be at least 1")
    if workers > 1:
        return _serve_workers(args, settings, workers)
    _can_listen(args.host, args.port)
    app = create_app(settings)
    if args.demo:
        demo = run_with_connection(lambda conn: seed(conn, settings.data_dir), settings)

        async def announce(_: web.Application) -> None:
            _announce_demo(demo, args.host, args.port)

        app.on_startup.append(announce)
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=lambda text: print(text, flush=True),
            access_log=None if args.quiet else logging.getLogger("aiohttp.access"),
            **server_options(settings),
        )
    except OSError as exc:  # the address was taken between the check and the start
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {(exc.strerror or str(exc)).lower()}") from None
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings, count: int) -> int:
    """``--workers N`` (N > 1): the pre-fork parent of hashguard/workers.py; once-only work happens here first."""
    from hashguard.app import create_app
    from hashguard.demo import seed

    # The port is bound (and refused in one line) before the database starts, as in one process.
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        create_app(settings)  # settings problems are refused here, in one line, not once per worker
        url = prepare_database(settings.database_url, settings.data_dir)
        demo = run_with_connection(lambda conn: seed(conn, settings.data_dir), settings) if args.demo else None
    except BaseException:
        sock.close()
        raise
    metrics_dir = metrics_folder(settings.metrics_dir)

    def first_ready() -> None:
        print(running_on(args.host, args.port), flush=True)
        if demo is not None:
            _announce_demo(demo, args.host, args.port)

    supervisor = Supervisor(
        sock=sock,
        count=count,
        database_url=url,
        metrics_dir=metrics_dir,
        worker_args=["--quiet"] if args.quiet else [],
        on_first_ready=first_ready,
    )
    try:
        code = supervisor.run()
    finally:
        remove_metrics_folder(metrics_dir)
    if code:
        raise CommandError("no worker could start (see the first error above)")
    return 0


def _tenant_names(text: str) -> list[str]:
    names = sorted({n.strip() for n in text.split(",") if n.strip()})
    if not names:
        raise CommandError("--tenants needs at least one tenant name")
    return names


def cmd_keys_create(args: argparse.Namespace) -> int:
    made = new_key()
    role = Role(args.role)
    if role is Role.PLATFORM and args.tenants is not None:
        raise CommandError("a platform key belongs to one tenant: use --tenant NAME")
    if role is not Role.PLATFORM and args.tenant is not None:
        raise CommandError(f"only platform keys belong to a tenant; limit a {role} key with --tenants a,b")
    wanted = [args.tenant or DEFAULT_TENANT] if role is Role.PLATFORM else (_tenant_names(args.tenants) if args.tenants else [])

    async def work(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            ids = await keystore.tenant_ids(conn, wanted)
            missing = [n for n in wanted if n not in ids]
            if missing:
                raise CommandError(f"no tenant named {', '.join(missing)} (create it with: hashguard tenants create NAME)")
            if role is Role.PLATFORM:
                key_id = await keystore.insert_key(conn, made, role, args.label, tenant_id=ids[wanted[0]])
                scope: dict[str, object] = {"tenant": wanted[0]}
            else:
                key_id = await keystore.insert_key(conn, made, role, args.label, tenants=list(ids.values()))
                scope = {"tenants": wanted} if wanted else {}
            await auditlog.append_audit(
                conn,
                actor=takedown_cli.cli_actor().name,
                action="key.created",
                subject=f"key:{made.prefix}",
                after={"role": args.role, "label": args.label, **scope},
            )
            return key_id

    run_with_connection(work, _settings(args))
    print(made.secret)
    where = f"tenant {wanted[0]}" if role is Role.PLATFORM else (f"tenants {','.join(wanted)}" if wanted else "all tenants")
    print(f"(role {args.role}, {where}, id {made.prefix}; shown once, only its hash is stored)", file=sys.stderr)
    return 0


def cmd_tenants_create(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not TENANT_NAME.fullmatch(name):
        raise CommandError("a tenant name is 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")

    async def work(conn: asyncpg.Connection) -> keystore.Tenant | None:
        async with conn.transaction():
            tenant = await keystore.create_tenant(conn, name)
            if tenant is not None:
                await auditlog.append_audit(
                    conn,
                    actor=takedown_cli.cli_actor().name,
                    action="tenant.created",
                    subject=f"tenant:{name}",
                    after={"name": name, "id": tenant.id},
                )
            return tenant

    if run_with_connection(work, _settings(args)) is None:
        raise CommandError(f"a tenant named {name!r} exists already")
    print(f"created tenant {name}")
    return 0


def cmd_tenants_list(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> tuple[list[keystore.Tenant], dict[str, str]]:
        return await keystore.list_tenants(conn), {name: url for name, url, _ in await outbox_store.tenant_webhooks(conn)}

    tenants, hooks = run_with_connection(work, _settings(args))
    for tenant in tenants:
        hook = hooks.get(tenant.name) or ("(HASHGUARD_WEBHOOK_URL)" if tenant.name == DEFAULT_TENANT else "(no webhook)")
        print(f"{tenant.name}\t{tenant.created_at:%Y-%m-%d %H:%M}\t{hook}")
    return 0


def _check_webhook(url: str, secret: str) -> None:
    """A tenant's webhook meets the rule the global one does (``takedown.webhooks.webhook_settings_problem``):
    https outside loopback, and a signing secret of at least MIN_SECRET_BYTES."""
    problem = webhooks.webhook_settings_problem(url, secret)
    if problem is not None:
        raise CommandError(
            problem.replace("HASHGUARD_WEBHOOK_URL", "the tenant's webhook URL").replace("HASHGUARD_WEBHOOK_SECRET", "its secret")
        )


def cmd_tenants_webhook(args: argparse.Namespace) -> int:
    """Set (URL argument, secret on stdin) or clear a tenant's own webhook for platform actions."""
    secret = "" if args.clear else sys.stdin.readline().strip()
    if not args.clear:
        if not args.url:
            raise CommandError("give the webhook URL (and its secret on stdin), or --clear")
        _check_webhook(args.url, secret)
    actor = takedown_cli.cli_actor()

    async def work(conn: asyncpg.Connection) -> bool:
        ids = await keystore.tenant_ids(conn, [args.name])
        if args.name not in ids:
            raise CommandError(f"no tenant named {args.name}")
        if args.clear:
            return await outbox_store.clear_tenant_webhook(conn, ids[args.name], actor, args.name)
        await outbox_store.set_tenant_webhook(conn, ids[args.name], args.url, secret, actor, args.name)
        return True

    changed = run_with_connection(work, _settings(args))
    if args.clear:
        print(f"tenant {args.name}: own webhook cleared" if changed else f"tenant {args.name} had no webhook of its own")
    else:
        print(f"tenant {args.name}: platform actions go to {args.url}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = run_with_connection(keystore.list_keys, _settings(args))
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        scope = key.tenant if key.role is Role.PLATFORM else (",".join(key.tenants) or "*")
        print(f"{key.prefix}\t{key.role}\t{scope}\t{state}\t{key.created_at:%Y-%m-%d %H:%M}\t{key.label}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> bool:
        async with conn.transaction():
            revoked = await keystore.revoke_key(conn, args.prefix)
            if revoked:
                await auditlog.append_audit(
                    conn, actor=takedown_cli.cli_actor().name, action="key.revoked", subject=f"key:{args.prefix}"
                )
            return revoked

    if not run_with_connection(work, _settings(args)):
        raise CommandError(f"no active key starts with {args.prefix!r}")
    print(f"revoked {args.prefix}")
    return 0


def cmd_keys_distances(args: argparse.Namespace) -> int:
    """``grant-distances`` and ``withdraw-distances``: the subcommand sets ``args.granted``."""
    actor = takedown_cli.cli_actor().name
    run_with_connection(
        lambda conn: keycontrols.set_distances(conn, args.prefix, granted=args.granted, actor=actor, reason=args.reason),
        _settings(args),
    )
    print(
        f"{args.prefix}: scan and lookup answers now carry distances (recorded in the audit log)"
        if args.granted
        else f"{args.prefix}: distances withdrawn"
    )
    return 0


def cmd_keys_limit(args: argparse.Namespace) -> int:
    if args.default == (args.rate is not None or args.burst is not None):
        raise CommandError("give --rate and/or --burst, or --default (not both)")
    actor = takedown_cli.cli_actor().name
    run_with_connection(
        lambda conn: keycontrols.set_limit(
            conn, args.prefix, rate_per_s=args.rate, burst=args.burst, actor=actor, reason=args.reason
        ),
        _settings(args),
    )
    if args.default:
        print(f"{args.prefix}: back to the default rate limit (HASHGUARD_RATE_PER_S, HASHGUARD_RATE_BURST)")
    else:
        rate = "default" if args.rate is None else ("unlimited" if args.rate == 0 else f"{args.rate:g}/s")
        burst = "default" if args.burst is None else str(args.burst)
        print(f"{args.prefix}: rate {rate}, burst {burst}")
    return 0


def cmd_keys_release(args: argparse.Namespace) -> int:
    actor = takedown_cli.cli_actor().name
    run_with_connection(lambda conn: keycontrols.release(conn, args.prefix, actor=actor, reason=args.reason), _settings(args))
    print(f"released {args.prefix}")
    return 0


def cmd_keys_suspended(args: argparse.Namespace) -> int:
    for s in run_with_connection(keycontrols.suspended, _settings(args)):
        print(f"{s.prefix}\tsince {s.since:%Y-%m-%d %H:%M:%S}\tby {s.by}\t{s.reason}")
    return 0


def register_key_controls(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands over a key's controls: distances, its own rate limit, suspensions."""
    grant = keys.add_parser("grant-distances", help="let a key's scan and lookup answers carry distances (audited)")
    grant.add_argument("prefix")
    grant.add_argument("--reason", required=True, help="why this key may see how near its matches are")
    grant.set_defaults(func=cmd_keys_distances, granted=True)
    withdraw = keys.add_parser("withdraw-distances", help="answers of this key carry no distances again (the default)")
    withdraw.add_argument("prefix")
    withdraw.add_argument("--reason", required=True)
    withdraw.set_defaults(func=cmd_keys_distances, granted=False)
    limit = keys.add_parser("limit", help="give a key its own rate limit (tokens a second and bucket size)")
    limit.add_argument("prefix")
    limit.add_argument("--rate", type=float, help="tokens a second (a lookup item costs one); 0: unlimited")
    limit.add_argument("--burst", type=int, help="bucket size, at least the largest batch the key sends")
    limit.add_argument("--default", action="store_true", help="back to HASHGUARD_RATE_PER_S and HASHGUARD_RATE_BURST")
    limit.add_argument("--reason", required=True)
    limit.set_defaults(func=cmd_keys_limit)
    release = keys.add_parser("release", help="lift a key's suspension by the probing detector (audited)")
    release.add_argument("prefix")
    release.add_argument("--reason", required=True, help="what was found when the key's use was looked at")
    release.set_defaults(func=cmd_keys_release)
    keys.add_parser("suspended", help="list suspended keys").set_defaults(func=cmd_keys_suspended)


def _hash_videos(args: argparse.Namespace, settings: Settings) -> int:
    """``hashguard hash --tool vpdq FILE...``: each video's frames in the reference's hash-file format
    (``frame_number,quality,pdq_hex,timestamp_seconds``), decoded in a worker process under the video limits."""
    from detector.video_decode import VideoError, VideoJob, VideoLimits, run_isolated
    from detector.video_frames import format_lines

    limits = VideoLimits(
        max_bytes=settings.video_max_bytes,
        max_duration_s=settings.video_max_seconds,
        max_frame_pixels=settings.video_max_frame_pixels,
        max_frames=settings.video_max_frames,
        wall_s=settings.video_wall_s,
        memory_bytes=settings.video_memory_mb << 20,
    )
    failed = False
    for name in args.files:
        try:
            if not Path(name).is_file():
                raise VideoError(f"{name} is not a readable file")
            if Path(name).stat().st_size > limits.max_bytes:
                raise VideoError(f"{name} is larger than HASHGUARD_VIDEO_MAX_BYTES")
            job = VideoJob(
                path=name, limits=limits, seconds_per_hash=settings.vpdq_seconds_per_hash, hashing=HashingPath(settings.hashing)
            )
            result = run_isolated(job)
        except ServiceError as exc:
            print(json.dumps({"file": name, "error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
            failed = True
            continue
        if len(args.files) > 1:
            print(f"# {name}")
        for line in format_lines(result.value):
            print(line)
    return 1 if failed else 0


def cmd_hash(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.tool == ["vpdq"]:
        return _hash_videos(args, settings)
    registry = ToolRegistry.load(args.tool or settings.tools)
    failed = False
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            print(
                json.dumps({"file": name, "error": {"code": "unreadable", "message": exc.strerror or str(exc)}}), file=sys.stderr
            )
            failed = True
            continue
        media = Media(
            data=data,
            max_pixels=settings.max_pixels,
            hashing=HashingPath(settings.hashing),
            memory_budget=settings.decode_memory_mb << 20,
        )
        try:
            media.decode()
            for tool in registry:
                result = tool.hash_with_quality(media)
                print(json.dumps({"file": name, "tool": tool.name, "hash": tool.format(result.value), "quality": result.quality}))
        except ServiceError as exc:
            print(json.dumps({"file": name, "error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    run_with_connection(lambda conn: asyncio.sleep(0), _settings(args))
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashguard", description="Hash-matching detection of known CSAM and takedown.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--demo", action="store_true", help="seed a synthetic demo list and key, and print a curl to try")
    serve.add_argument("--quiet", action="store_true", help="no access log")
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes on the one port (default: HASHGUARD_WORKERS, else one per CPU available; 1: one process)",
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--label", default="", help="who or what the key is for")
    create.add_argument("--tenant", help=f"a platform key's tenant (default: {DEFAULT_TENANT})")
    create.add_argument("--tenants", help="limit a staff key to these tenants, comma-separated (default: all)")
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list keys (prefixes only)").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its printed prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(func=cmd_keys_revoke)
    register_key_controls(keys)

    tenants = sub.add_parser("tenants", help="manage tenants (the platforms one service keeps apart)").add_subparsers(
        dest="tenants_command", required=True
    )
    tcreate = tenants.add_parser("create", help="create a tenant")
    tcreate.add_argument("name")
    tcreate.set_defaults(func=cmd_tenants_create)
    tenants.add_parser("list", help="list tenants and where their platform actions go").set_defaults(func=cmd_tenants_list)
    thook = tenants.add_parser(
        "webhook", help="set a tenant's own webhook for platform actions (the signing secret is read from stdin)"
    )
    thook.add_argument("name")
    thook.add_argument("url", nargs="?")
    thook.add_argument("--clear", action="store_true", help="remove it (the default tenant falls back to HASHGUARD_WEBHOOK_URL)")
    thook.set_defaults(func=cmd_tenants_webhook)

    hash_ = sub.add_parser("hash", help="hash files with the detection tools; one JSON object per file and tool")
    hash_.add_argument("--tool", action="append", help="tool to use (repeatable; default: all enabled)")
    hash_.add_argument("files", nargs="+")
    hash_.set_defaults(func=cmd_hash)

    hashsets_cli.register(sub)
    exchanges_cli.register(sub)

    sub.add_parser("migrate", help="create or update the database schema").set_defaults(func=cmd_migrate)
    backfill.register(sub)
    register_tools(sub)
    takedown_cli.register(sub, run_with_connection, flows.DETECTOR_SCANS)
    # Hotline reports: the lists' context tells the reports how a matched entry is classified.
    reports_cli.register(sub, run_with_connection, entry_classifications)
    figures.register_cli(sub, run_with_connection)
    staff_cli.register(sub, run_with_connection)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # pgserver narrates every initdb and pg_ctl call at INFO; only its problems matter here.
        logging.getLogger("pgserver").setLevel(max(logging.WARNING, logging.getLogger().level))
        return int(args.func(args))
    except (
        CommandError,
        backfill.BackfillError,
        SettingsError,
        DatabaseError,
        HashsetError,
        ServiceError,
        ToolRegistryError,
        ExchangeError,
    ) as exc:
        print(f"hashguard: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
