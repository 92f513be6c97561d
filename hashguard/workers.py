"""``hashguard serve --workers N``: N worker processes serving one port, under a pre-fork parent.

Why a parent of our own that binds the socket and spawns the workers, rather than SO_REUSEPORT or gunicorn:

- **One listening socket, shared.** The parent binds and listens once, then passes the socket to every worker.
  A worker that is starting (or restarting) accepts nothing until its index is loaded, and a worker that dies
  leaves no queue behind: the live workers keep accepting from the one backlog. With SO_REUSEPORT the kernel
  hashes each new connection to one worker's own socket, so the connections queued on a dead or still-loading
  worker's socket wait (or are reset) and 1/N of the traffic stalls for a whole index load; and any other
  process of the same user setting SO_REUSEPORT could silently join the port, so a busy port is no longer
  reported in one line as today (``_can_listen``).
- **Once, before any worker.** The embedded PostgreSQL (pgserver) is started or located, the schema migrated
  and ``--demo`` seeded by the parent, before the first worker starts; the workers receive the database URL and
  never start or stop the server (pgserver stops it when the parent, its only user, exits).
- **Spawned, not forked.** Each worker is a fresh interpreter (``python -m hashguard.workers``) that inherits only
  the socket: no threads, event loop or numba state copied from the parent, PROMETHEUS_MULTIPROC_DIR set before
  prometheus_client is imported, and a restarted worker starts exactly as the first did.
- **gunicorn** with aiohttp's GunicornWebWorker would bring the socket and the restarts, but not the rest: no
  start-once hook that runs before the arbiter binds (the busy-port line), no stable worker index (worker 0 runs
  the once-per-replica jobs and a restarted worker 0 takes them up again), an arbiter that restarts a crashing
  worker at once instead of with a backoff, its own log and signal conventions, and one more dependency.

The parent supervises: a worker that dies is logged with its exit status or signal and restarted with the same
index after a backoff (0.5 s doubling to 30 s, back to 0.5 s once a worker has run a minute); SIGTERM or SIGINT
sends every worker SIGTERM (aiohttp drains its connections and runs the cleanups) and the parent exits 0 once all
have exited. Workers get PR_SET_PDEATHSIG, so a parent killed outright (SIGKILL) leaves no worker behind.

Roles (``WorkerRole``, app key ``WORKER_ROLE``): every worker runs the database pool, the hashing pool and the
index reloader (each holds its own snapshot); worker 0 alone runs the once-per-replica jobs (hashguard.app
``ONCE_PER_REPLICA``). ``--workers 1`` is today's single process, unsupervised, doing everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

# The parent hands each worker its role in this variable (JSON); nothing else reads it.
_ROLE_ENV = "HASHGUARD_INTERNAL_WORKER_ROLE"
_BACKOFF_FIRST_S = 0.5
_BACKOFF_CAP_S = 30.0
_HEALTHY_AFTER_S = 60.0
# How long the parent waits for draining workers after SIGTERM before it kills them.
_DRAIN_S = 30.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerRole:
    """Which worker of how many this process is. The default, one process, runs everything."""

    index: int = 0
    count: int = 1
    # Resolved and migrated by the parent: a worker connects to it and migrates nothing.
    database_url: str | None = None
    # The socket the parent listens on, inherited by the worker.
    fd: int | None = None
    # The pipe on which the worker tells the parent it is ready.
    ready_fd: int | None = None

    @property
    def replica_jobs(self) -> bool:
        """Whether this process runs the once-per-replica jobs (outbox, retention, filers, connectors)."""
        return self.index == 0

    @property
    def supervised(self) -> bool:
        return self.count > 1


SINGLE = WorkerRole()
WORKER_ROLE: web.AppKey[WorkerRole] = web.AppKey("worker_role", WorkerRole)


def available_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity, bounded by a cgroup v2 CPU quota rounded up (a container's
    CPU limit: ``docker --cpus``, a Kubernetes ``limits.cpu``), which the affinity alone does not show."""
    cpus = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def listening_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """Bind and listen as aiohttp would (SO_REUSEADDR, not SO_REUSEPORT); ``OSError`` when the port is taken."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def running_on(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"======== Running on http://{shown}:{port} ========\n(Press CTRL+C to quit)"


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    ready_r: int
    started: float
    ready: bool = False


class Supervisor:
    """The pre-fork parent: owns the socket, starts N workers, restarts the dead, drains on SIGTERM/SIGINT."""

    def __init__(
        self,
        *,
        sock: socket.socket,
        count: int,
        database_url: str,
        metrics_dir: Path,
        worker_args: list[str],
        on_first_ready: Callable[[], None],
    ) -> None:
        self._sock = sock
        self._count = count
        self._database_url = database_url
        self._metrics_dir = metrics_dir
        self._worker_args = worker_args
        self._on_first_ready = on_first_ready
        self._children: dict[int, _Child] = {}
        self._backoff: dict[int, float] = {}
        self._due: dict[int, float] = {}
        self._stopping = False
        self._any_ready = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def _spawn(self, index: int) -> None:
        ready_r, ready_w = os.pipe()
        role = WorkerRole(
            index=index, count=self._count, database_url=self._database_url, fd=self._sock.fileno(), ready_fd=ready_w
        )
        env = {
            **os.environ,
            _ROLE_ENV: json.dumps(dataclasses.asdict(role)),
            "HASHGUARD_INTERNAL_PARENT_PID": str(os.getpid()),
            "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "hashguard.workers", *self._worker_args],
            env=env,
            pass_fds=(self._sock.fileno(), ready_w),
            # Its own process group: a terminal's Ctrl-C reaches the parent, which drains the workers in order.
            start_new_session=True,
        )
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        child = _Child(index=index, process=process, ready_r=ready_r, started=time.monotonic())
        self._children[index] = child
        self._selector.register(ready_r, selectors.EVENT_READ, child)
        log.info("worker %d started (pid %d)", index, process.pid)

    def _signal(self, signum: int, _frame: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _child_exited(self, _signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"c")

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 once every worker has drained, 1 when no worker could start at all."""
        previous = {s: signal.signal(s, self._signal) for s in (signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGCHLD, self._child_exited)
        failed = False
        try:
            for index in range(self._count):
                self._spawn(index)
            while not self._stopping:
                self._poll(timeout=0.5)
                failed = self._reap()
                if failed:
                    break
                self._restart_due()
        finally:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self._drain()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return 1 if failed else 0

    def _poll(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                continue
            child: _Child = key.data
            try:
                data = os.read(child.ready_r, 64)
            except BlockingIOError:
                continue
            if data and not child.ready:
                child.ready = True
                log.info("worker %d (pid %d) is serving", child.index, child.process.pid)
                if not self._any_ready:
                    self._any_ready = True
                    self._on_first_ready()
            if not data:
                self._selector.unregister(child.ready_r)

    def _forget(self, child: _Child) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(child.ready_r)
        os.close(child.ready_r)
        from prometheus_client import multiprocess

        # Its live gauges leave the replica's figures; its counters stay (they still count what it did).
        multiprocess.mark_process_dead(child.process.pid, str(self._metrics_dir))

    def _reap(self) -> bool:
        """Log and schedule a restart for every dead worker; True when the replica cannot start at all."""
        for index, child in list(self._children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self._children[index]
            self._forget(child)
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            if not child.ready and not self._any_ready and code > 0:
                log.error("worker %d (pid %d) %s before it could serve; stopping", index, child.process.pid, how)
                return True
            lived = time.monotonic() - child.started
            delay = _BACKOFF_FIRST_S if lived >= _HEALTHY_AFTER_S else self._backoff.get(index, _BACKOFF_FIRST_S)
            self._backoff[index] = min(delay * 2, _BACKOFF_CAP_S)
            self._due[index] = time.monotonic() + delay
            log.error("worker %d (pid %d) %s after %.1f s; restarting it in %.1f s", index, child.process.pid, how, lived, delay)
        return False

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, due in list(self._due.items()):
            if due <= now:
                del self._due[index]
                self._spawn(index)

    def _drain(self) -> None:
        for child in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _DRAIN_S
        for child in self._children.values():
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not drain within %.0f s; killing it", child.index, child.process.pid, _DRAIN_S)
                child.process.kill()
                child.process.wait()
            self._forget(child)
        self._children.clear()
        self._sock.close()


def metrics_folder(base: Path | None) -> Path:
    """A fresh folder for this replica's per-process metric files."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="hashguard-metrics-", dir=base))


def remove_metrics_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prepare_database(database_url: str | None, data_dir: Path) -> str:
    """Start or locate the embedded PostgreSQL (or take the URL) and migrate, once, in the parent."""
    from kernel.db import create_pool, migrate, resolve_url

    async def work() -> str:
        url = await resolve_url(database_url, data_dir)
        pool = await create_pool(url, 1)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        finally:
            await pool.close()
        return url

    return asyncio.run(work())


def _die_with_parent() -> None:
    """SIGKILL this worker when the parent dies, however it dies (Linux; elsewhere the parent's drain must do)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get("HASHGUARD_INTERNAL_PARENT_PID")
    if parent and os.getppid() != int(parent):  # the parent died before the line above
        os._exit(1)


def worker_main() -> int:
    """One worker: the app with its role, served on the inherited socket."""
    _die_with_parent()
    import argparse

    import asyncpg

    from hashguard.app import create_app, server_options
    from kernel.db import DatabaseError
    from kernel.settings import Settings

    parser = argparse.ArgumentParser(prog="hashguard-worker")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    role = WorkerRole(**json.loads(os.environ.pop(_ROLE_ENV)))
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format=f"%(asctime)s %(levelname)s [worker {role.index}] %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, logging.getLogger().level))
    assert role.fd is not None and role.ready_fd is not None
    sock = socket.socket(fileno=role.fd)
    app = create_app(settings, role=role)
    ready_fd = role.ready_fd

    async def tell_parent(_: web.Application) -> None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)

    app.on_startup.append(tell_parent)
    try:
        web.run_app(
            app,
            sock=sock,
            print=None,
            access_log=None if args.quiet else logging.getLogger("aiohttp.access"),
            **server_options(settings),
        )
    except (DatabaseError, OSError, asyncpg.PostgresError) as exc:
        # A worker (re)started while PostgreSQL is away cannot start its pool: one line, not a
        # traceback; the parent restarts it with backoff and the other workers keep answering 503.
        logging.getLogger(__name__).error("worker %d cannot start: %s; the parent restarts it", role.index, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
