"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test,
and the service as a real subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from detector.db import embedded_url, migrate


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the session's embedded PostgreSQL.

    (Fix applied by the lead to every worktree:) its folder is a private temporary one, not under
    pytest's /tmp/pytest-of-root: every new pytest run chmods that folder back to 0700, and the
    embedded server (running as the unprivileged user 'pgserver') then loses access to its own
    data directory and dies mid-run whenever two pytest sessions overlap on this machine.
    """
    import tempfile as _tempfile
    import warnings as _warnings

    folder = Path(_tempfile.mkdtemp(prefix="hashguard-test-pg-"))
    folder.chmod(0o755)
    try:
        yield embedded_url(folder)
    finally:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            import pgserver

        pgserver.get_server(folder / "postgres", cleanup_mode="stop").cleanup()
        import shutil as _shutil

        _shutil.rmtree(folder, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield _with_database(pg_server, name)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A migrated pool on the test's own database."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> HttpResult:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpResult(error.code, dict(error.headers), error.read())


@dataclass
class Cli:
    """Runs ``hashguard`` commands as real subprocesses against one database."""

    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "detector.cli", *args],
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

    def start(self, *extra: str, ready_timeout: float = 90) -> Service:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "detector.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *extra],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hashguard serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if http("GET", self.url + "/readyz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"hashguard serve was not ready within {ready_timeout} s:\n{self.log()}")

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
def service_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(
        HASHGUARD_DATABASE_URL=database_url,
        HASHGUARD_DATA_DIR=str(tmp_path / "data"),
        HASHGUARD_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def cli(service_env: dict[str, str]) -> Cli:
    return Cli(service_env)


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start one or more services (``start_service(HASHGUARD_X="1")``); all are stopped after the test."""
    started: list[Service] = []

    def start(*args: str, **env: str) -> Service:
        service = Service(env={**service_env, **env}, log_path=tmp_path / f"serve-{len(started)}.log")
        started.append(service)
        return service.start(*args)

    yield start
    for service in started:
        service.stop()
