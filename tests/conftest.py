"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test
(empty, or cloned from one template migrated once per session), and the service as a real subprocess on a free loopback port.

The ``cli`` and ``start_service`` fixtures here run real processes (the acceptance tier);
tests/http/conftest.py overrides them with the app and the command line in this process.
Helpers both tiers share (loopback HTTP, drawn lists, ``scan``) are in tests/harness.py."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from kernel.db import embedded_url, migrate, stop_embedded
from tests.harness import HttpResult, free_port, http
from tests.waiting import wait_until


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, at most four; each worker starts its own embedded PostgreSQL."""
    return max(1, min(4, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the session's embedded PostgreSQL.

    Its folder is a private temporary one, not under pytest's numbered base folder: a second
    pytest run on the same machine prunes old numbered folders, which would pull the data
    directory from under a running server.
    """
    folder = Path(tempfile.mkdtemp(prefix="hashguard-test-pg-"))
    try:
        yield embedded_url(folder)
    finally:
        stop_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _new_database(server_url: str, template: str | None = None) -> tuple[str, str]:
    """Create a database (a copy of ``template`` if given); return its name and URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"{clone}'))
    return name, _with_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def migrated_template(pg_server: str) -> Iterator[str]:
    """Name of a database migrated once per session, the template every migrated test database is cloned from.

    Nothing stays connected to it: PostgreSQL refuses to copy a template that has open connections.
    """
    name, url = _new_database(pg_server)

    async def prepare() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(prepare())
    yield name
    _drop_database(pg_server, name)


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    """A new, empty database for one test (no schema at all); dropped afterwards."""
    name, url = _new_database(pg_server)
    yield url
    _drop_database(pg_server, name)


@pytest.fixture
def migrated_database_url(pg_server: str, migrated_template: str) -> Iterator[str]:
    """A new database for one test, already migrated (cloned from the session's template); dropped afterwards.

    Running ``migrate`` on it again applies nothing: every migration is recorded as applied.
    """
    name, url = _new_database(pg_server, template=migrated_template)
    yield url
    _drop_database(pg_server, name)


@pytest.fixture
async def pool(migrated_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's own, already migrated database (``migrated_database_url``)."""
    pool = await asyncpg.create_pool(migrated_database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@dataclass
class Cli:
    """Runs ``hashguard`` commands as real subprocesses against one database."""

    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "hashguard.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"hashguard {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def new_key(self, role: str = "platform") -> str:
        return self("keys", "create", "--role", role).stdout.strip()


@dataclass
class Service:
    """``hashguard serve`` running as a subprocess on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str, ready_timeout: float = 90, expect_ready: bool = True) -> Service:
        """Start and wait until /readyz says ready (or, with ``expect_ready=False``, until it answers at all)."""
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hashguard.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *extra],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"hashguard serve exited with {process.returncode}:\n{self.log()}")
            try:
                status = http("GET", self.url + "/readyz", timeout=2).status
            except OSError:
                return False
            return status == 200 or (not expect_ready and status == 503)

        try:
            wait_until(answers, ready_timeout, interval=0.2, what="hashguard serve being ready")
        except AssertionError as failed:
            if process.poll() is not None:
                raise
            raise AssertionError(f"{failed}:\n{self.log()}") from None
        return self

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method: str, path: str, body: bytes | None = None, key: str | None = None, **headers: str) -> HttpResult:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        return http(method, self.url + path, body, sent)

    def post_json(self, path: str, payload: Any, key: str | None) -> HttpResult:
        return self.request("POST", path, json.dumps(payload).encode(), key, Content_Type="application/json")


@pytest.fixture
def service_env(migrated_database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for ``hashguard`` subprocesses on the test's migrated database (their own migrate is a no-op)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(
        HASHGUARD_DATABASE_URL=migrated_database_url,
        HASHGUARD_DATA_DIR=str(tmp_path / "data"),
        HASHGUARD_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def cli(service_env: dict[str, str]) -> Cli:
    return Cli(service_env)


def allow_all_tools_locally(database_url: str) -> None:
    """What an admin of a fresh install does first: allow every installed tool locally (recorded as such)."""
    from detector.approvals import pg as approvals_pg
    from detector.tools.registry import ToolRegistry

    async def work() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)
            standing = {a.tool for a in await approvals_pg.standing_allowances(conn)}
            for name in ToolRegistry.load().names():
                if name not in standing:
                    await approvals_pg.allow_local(conn, tool=name, versions="*", reason="test fixture", actor="tests")
        finally:
            await conn.close()

    asyncio.run(work())


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start one or more services (``start_service(HASHGUARD_X="1")``); all are stopped after the test.

    Unless ``allow_tools=False``, every installed tool is first allowed locally on the test's
    database, so tests that are not about the approval policy scan with every tool as before.
    """
    started: list[Service] = []

    def start(*args: str, allow_tools: bool = True, expect_ready: bool = True, **env: str) -> Service:
        if allow_tools:
            allow_all_tools_locally(service_env["HASHGUARD_DATABASE_URL"])
        service = Service(env={**service_env, **env}, log_path=tmp_path / f"serve-{len(started)}.log")
        started.append(service)
        return service.start(*args, expect_ready=expect_ready)

    yield start
    for service in started:
        service.stop()


class FakePlatform:
    """A platform's takedown webhook on 127.0.0.1, in its own thread and event loop.

    It checks each request's HMAC signature, applies each ``Idempotency-Key`` at most once (as a
    correct receiver must), and misbehaves on request: per ``content_id``, a script of modes is
    consumed one request at a time, then ``default`` applies:
    ``ok`` apply and answer 200; ``fail`` answer 503; ``hang`` never answer (nothing applied);
    ``apply_then_hang`` apply, then never answer (the answer is lost: the sender must retry).
    """

    def __init__(self, secret: str = "test-webhook-secret-of-32-bytes-or-more") -> None:
        import threading

        self.secret = secret
        self.default = "ok"
        self.scripts: dict[str, list[str]] = {}
        self.requests: list[dict[str, Any]] = []  # every request received, in order
        self.applied: dict[str, dict[str, Any]] = {}  # idempotency key -> body, applied once
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-platform", daemon=True)
        self.port = free_port()
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the fake platform did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/takedown"

    def script(self, content_id: str, *modes: str) -> None:
        with self._lock:
            self.scripts[content_id] = list(modes)

    def set_default(self, mode: str) -> None:
        with self._lock:
            self.default = mode

    def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        with self._lock:
            return list(self.requests), dict(self.applied)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60, what: str = "the condition") -> None:
        try:
            wait_until(predicate, timeout, what=what)
        except AssertionError as failed:
            requests, applied = self.snapshot()
            raise AssertionError(f"{failed}; requests: {requests}; applied: {list(applied)}") from None

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        from takedown.webhooks import verify_signature

        payload = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        signed = verify_signature(
            self.secret,
            request.headers.get("X-Hashguard-Timestamp", ""),
            payload,
            request.headers.get("X-Hashguard-Signature", ""),
        )
        body = json.loads(payload) if signed else {}
        content_id = body.get("content_id", "")
        with self._lock:
            script = self.scripts.get(content_id)
            mode = script.pop(0) if script else self.default
            if not signed:
                mode = "unsigned"
            duplicate = key in self.applied
            self.requests.append({"key": key, "mode": mode, "body": body, "duplicate": duplicate, "raw": payload})
            if mode in ("ok", "apply_then_hang") and not duplicate:
                self.applied[key] = body
        if mode == "unsigned":
            return web.json_response({"error": "bad signature"}, status=401)
        if mode == "fail":
            return web.json_response({"error": "try later"}, status=503)
        if mode in ("hang", "apply_then_hang"):
            assert self._release is not None
            await self._release.wait()
            return web.json_response({"late": True})
        return web.json_response({"ok": True, "duplicate": duplicate})

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self._loop)
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/takedown", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            assert self._release is not None
            self._release.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture
def fake_platform() -> Iterator[FakePlatform]:
    """A local takedown webhook receiver that can fail, hang and recover, and dedupes on the idempotency key."""
    platform = FakePlatform()
    yield platform
    platform.close()
