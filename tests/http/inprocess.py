"""The service and the command line in this process: what the http tier drives instead of subprocesses.

``Service`` is ``hashguard.app.create_app(settings)`` served by aiohttp's ``TestServer`` on a free
127.0.0.1 port, in a thread with its own event loop, so a test talks to it over real loopback
HTTP with the same blocking calls it would make to ``hashguard serve`` (and a test can run
several, like replicas). ``Cli`` calls ``hashguard.cli.main`` here, with the test's
``HASHGUARD_*`` variables, its stdin, stdout and stderr swapped in for the call. Neither pays
for a Python start-up and the numba import again, which is what made the acceptance tier slow;
both reach the test's own real PostgreSQL database.

What only a real process can show stays in tests/acceptance/: the ``serve`` command itself,
the embedded database, signals and a kill, and tools installed on another ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from hashguard.app import create_app, server_options
from hashguard.cli import main
from kernel.settings import Settings
from tests.harness import HttpResult, http
from tests.waiting import wait_until

# One command at a time: a command reads os.environ and sys.std* of the whole process.
_COMMAND = threading.Lock()


@contextlib.contextmanager
def _hashguard_environment(env: dict[str, str]) -> Iterator[None]:
    """Exactly ``env``'s HASHGUARD_* variables in os.environ for the duration (the rest is untouched)."""
    if env.get("PYTHONPATH", "") != os.environ.get("PYTHONPATH", ""):
        raise AssertionError("an in-process command cannot use another PYTHONPATH: run it as a subprocess (tests/conftest.py)")
    saved = {k: v for k, v in os.environ.items() if k.startswith("HASHGUARD_")}
    wanted = {k: v for k, v in env.items() if k.startswith("HASHGUARD_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name in wanted:
            os.environ.pop(name, None)
        os.environ.update(saved)


@dataclass
class Cli:
    """Runs ``hashguard`` commands by calling ``hashguard.cli.main`` in this process, against one database.

    Call it from synchronous code only: ``main`` runs its own event loop (``asyncio.run``).
    """

    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with _COMMAND, _hashguard_environment(self.env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            stdin, sys.stdin = sys.stdin, io.StringIO(input or "")
            try:
                code = main(list(args))
            except SystemExit as exit:  # argparse refusing the arguments
                code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
            finally:
                sys.stdin = stdin
        result = subprocess.CompletedProcess(["hashguard", *args], code, out.getvalue(), err.getvalue())
        if check and result.returncode != 0:
            raise AssertionError(f"hashguard {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def new_key(self, role: str = "platform") -> str:
        return self("keys", "create", "--role", role).stdout.strip()


class _Log(logging.Handler):
    """Every log record of this process while the service runs, formatted as the service would write it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self.lines.append(line)

    def text(self) -> str:
        with self._guard:
            return "\n".join(self.lines)


@dataclass
class Service:
    """``create_app(Settings.from_env(env))`` served on 127.0.0.1 by aiohttp's TestServer, in its own thread and loop."""

    env: dict[str, str]
    log_path: Path  # unused here; the same signature as the subprocess ``Service``
    _server: TestServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _log: _Log = field(default_factory=_Log)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.port is not None
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, coroutine: Any, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, ready_timeout: float = 90, expect_ready: bool = True) -> Service:
        """Start and wait until /readyz says ready (or, with ``expect_ready=False``, until it answers at all)."""
        settings = Settings.from_env(self.env)
        logging.getLogger().addHandler(self._log)
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="hashguard-service", daemon=True)
        self._thread.start()

        async def serve() -> TestServer:
            server = TestServer(create_app(settings), host="127.0.0.1")
            await server.start_server(**server_options(settings))  # as `hashguard serve` runs it
            return server

        self._server = self._run(serve(), ready_timeout)

        def answers() -> bool:
            status = http("GET", self.url + "/readyz", timeout=2).status
            return status == 200 or (not expect_ready and status == 503)

        try:
            wait_until(answers, ready_timeout, interval=0.05, what="the service being ready")
        except AssertionError as failed:
            raise AssertionError(f"{failed}:\n{self.log()}") from None
        return self

    def stop(self) -> int:
        """Shut the app down as ``hashguard serve`` does on SIGINT (its cleanup runs); 0 as its exit status."""
        if self._loop is None:
            return 0
        try:
            if self._server is not None:
                self._run(self._server.close(), 60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(timeout=30)
            self._loop.close()
            self._loop = None
            logging.getLogger().removeHandler(self._log)
        return 0

    def log(self) -> str:
        return self._log.text()

    def request(self, method: str, path: str, body: bytes | None = None, key: str | None = None, **headers: str) -> HttpResult:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        return http(method, self.url + path, body, sent)

    def post_json(self, path: str, payload: Any, key: str | None) -> HttpResult:
        return self.request("POST", path, json.dumps(payload).encode(), key, Content_Type="application/json")
