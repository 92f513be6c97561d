"""Faults survived by a real ``hashguard serve`` process under a bounded loopback load: PostgreSQL
stopped and started again, the process killed with SIGKILL, the takedown webhook receiver down.

The load is a client in a thread of its own (``Load``): a few loops, each sending its next request
and pausing a little, recording every answer with its send and receive times, so a test can say
what was answered while the fault lasted. Only 127.0.0.1 is used.

Time is scaled where a fault lasts "minutes" in production: see ``test_a_webhook_receiver_down_*``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from detector.synthetic import draw, variant
from tests.conftest import Cli, FakePlatform, Service, allow_all_tools_locally
from tests.harness import SEEDS, free_port, http, import_test_list
from tests.http.inprocess import Cli as InProcessCli
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


# --- a PostgreSQL the test can stop and start -------------------------------------------------------


class ControlledPostgres:
    """A PostgreSQL server of this test's own (pgserver's build, a private data dir), which the test
    stops and starts with ``pg_ctl``; it comes back on the same socket, so URLs stay valid."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver warns about XDG_RUNTIME_DIR on import
            import pgserver

        # A short path: the server's Unix socket lives in it.
        self.folder = Path(tempfile.mkdtemp(prefix="hgf-"))
        self.pgdata = self.folder / "pg"
        self.pgdata.mkdir()
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self._user = server.system_user  # when run as root, the server runs as its own user
        info = server.get_postmaster_info()
        assert info.socket_dir is not None
        self._socket_dir = info.socket_dir
        self.url = server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args]
        # Output to files, not pipes: the server started by pg_ctl keeps its descriptors open.
        with tempfile.TemporaryFile() as out:
            done = subprocess.run(command, user=self._user, stdout=out, stderr=out, timeout=60, check=False)
            out.seek(0)
            assert done.returncode == 0, f"pg_ctl {args[-1]} failed: {out.read().decode(errors='replace')}"

    def stop(self) -> None:
        """Stop the server the way an operator or a crash-restart would: sessions are cut at once."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def close(self) -> None:
        try:
            self._pg_ctl("-w", "-m", "immediate", "stop")
        except AssertionError:  # already stopped
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def controlled_pg() -> Iterator[ControlledPostgres]:
    server = ControlledPostgres()
    yield server
    server.close()


def _env(database_url: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(
        HASHGUARD_DATABASE_URL=database_url,
        HASHGUARD_DATA_DIR=str(folder / "data"),
        HASHGUARD_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- the load ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    kind: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Answer:
    call: Call
    sent: float  # time.monotonic()
    done: float
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    retry_after: str | None
    body: Any

    @property
    def kind(self) -> str:
        return self.call.kind


class Load:
    """``workers`` loops on 127.0.0.1, each sending ``make(n)`` for the next n and pausing ``pause_s``."""

    def __init__(self, url: str, make: Callable[[int], Call], *, workers: int = 3, pause_s: float = 0.02) -> None:
        self._url = url
        self._make = make
        self._workers = workers
        self._pause_s = pause_s
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._answers: list[Answer] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="fault-load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def stop(self) -> list[Answer]:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the load did not stop"
        return self.answers()

    async def _main(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._workers)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(self._workers)))

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            call = self._make(next(self._numbers))
            sent = time.monotonic()
            status, retry_after, body = 0, None, None
            try:
                async with session.request(call.method, self._url + call.path, data=call.body, headers=dict(call.headers)) as r:
                    status, retry_after = r.status, r.headers.get("Retry-After")
                    raw = await r.read()
                    body = json.loads(raw) if raw else None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                body = repr(exc)
            with self._lock:
                self._answers.append(Answer(call, sent, time.monotonic(), status, retry_after, body))
            await asyncio.sleep(self._pause_s)


def _bearer(key: str, **more: str) -> tuple[tuple[str, str], ...]:
    return (("Authorization", f"Bearer {key}"), *more.items())


def _scan_call(kind: str, key: str, image: bytes, content_id: str) -> Call:
    return Call(kind, "POST", f"/v1/scan?content_id={content_id}", image, _bearer(key, **{"Content-Type": "image/jpeg"}))


def _json_call(kind: str, key: str, path: str, payload: Any) -> Call:
    return Call(kind, "POST", path, json.dumps(payload).encode(), _bearer(key, **{"Content-Type": "application/json"}))


def _status(url: str, path: str = "/readyz") -> int:
    try:
        return http("GET", url + path, timeout=3).status
    except OSError:
        return 0


# --- PostgreSQL stopped and started under load ------------------------------------------------------


def test_postgres_stopped_under_load_answers_503_with_retry_after_never_no_match_and_recovers_by_itself(
    controlled_pg: ControlledPostgres, tmp_path: Path
) -> None:
    env = _env(controlled_pg.url, tmp_path)
    cli = InProcessCli(env)  # set-up commands in this process; the service is a real process
    listed = import_test_list(cli, tmp_path / "pictures")
    allow_all_tools_locally(controlled_pg.url)
    platform = cli.new_key()
    unlisted_hash = hashlib.sha256(b"far from every listed picture").hexdigest()  # ~128 bits from each entry
    listed_jpeg, unlisted_jpeg = variant(draw(13), scale=0.5, quality=60), variant(draw(999))
    service = Service(env=env, log_path=tmp_path / "serve.log").start()

    def make(n: int) -> Call:
        return [
            _scan_call("scan_listed", platform, listed_jpeg, f"pg-{n}"),
            _scan_call("scan_unlisted", platform, unlisted_jpeg, f"pg-{n}"),
            _json_call("lookup_listed", platform, "/v1/lookup", {"content_id": f"pg-{n}", "hashes": {"pdq": listed[13]}}),
            _json_call("lookup_unlisted", platform, "/v1/lookup", {"content_id": f"pg-{n}", "hashes": {"pdq": unlisted_hash}}),
            _json_call(
                "notice", platform, "/v1/notices", {"source": "user_report", "content_id": f"pg-n{n}", "explanation": "x"}
            ),
        ][n % 5]

    load = Load(service.url, make).start()
    try:
        wait_until(lambda: sum(a.status in (200, 201) for a in load.answers()) >= 10, 30, what="the load being answered")
        controlled_pg.stop()
        wait_until(lambda: _status(service.url) == 503, 10, what="/readyz answering 503 with the database down")
        down_seen = time.monotonic()
        wait_until(
            lambda: time.monotonic() - down_seen > 4 and sum(a.sent > down_seen for a in load.answers()) >= 25,
            20,
            what="the load running for 4 s with the database down",
        )
        assert _status(service.url) == 503
        restarting = time.monotonic()
        controlled_pg.start()
        started = time.monotonic()
        recovered_s = wait_until(lambda: _status(service.url) == 200, 10, since=started, what="/readyz ready again")
        wait_until(
            lambda: any(a.kind == "scan_listed" and a.sent > started and a.status == 200 for a in load.answers()),
            10,
            since=started,
            what="a listed picture matching again",
        )
    finally:
        answers = load.stop()
        service.stop()

    assert recovered_s <= 10
    assert not [a for a in answers if a.status == 0 or (a.status >= 500 and a.status != 503)], "a dropped call or a 5xx"
    refused = [a for a in answers if a.status == 503]
    assert refused and all(a.retry_after and int(a.retry_after) > 0 for a in refused)
    assert {a.body["error"]["code"] for a in refused} == {"not_ready"}
    # Something checked against a list that matched is a match or a 503, never a no_match.
    for a in answers:
        if a.kind in ("scan_listed", "lookup_listed") and a.status == 200:
            assert a.body["verdict"] == "match", a
    # While the database was known down, every /v1/ call of every kind was refused, the unlisted ones too.
    during = [a for a in answers if a.sent >= down_seen and a.done <= restarting]
    assert {a.kind for a in during} == {"scan_listed", "scan_unlisted", "lookup_listed", "lookup_unlisted", "notice"}
    assert all(a.status == 503 for a in during), [(a.kind, a.status) for a in during if a.status != 503]
    # After the restart everything is answered again with nothing restarted by hand.
    after = [a for a in answers if a.sent > started + recovered_s + 1]
    assert all(a.status in (200, 201) for a in after), [(a.kind, a.status) for a in after if a.status not in (200, 201)]
    log = service.log()
    assert "Traceback" not in log and "unhandled error" not in log
    warned = [line for line in log.splitlines() if "the database is unreachable" in line]
    assert 1 <= len(warned) <= 2, warned  # rate-limited: one line per 30 s while it lasts
    assert "the database is reachable again" in log


# --- SIGKILL under load -----------------------------------------------------------------------------

_WEBHOOK_FAST = {
    "HASHGUARD_WEBHOOK_TIMEOUT_S": "2",
    "HASHGUARD_WEBHOOK_BACKOFF_S": "0.05",
    "HASHGUARD_WEBHOOK_BACKOFF_MAX_S": "0.3",
    "HASHGUARD_OUTBOX_POLL_S": "0.1",
    # Every scan here matches the same few entries; the flood quarantine would hold the later ones for review.
    "HASHGUARD_FLOOD_MAX_MATCHES": "0",
}


async def _query(url: str, sql: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    return asyncio.run(_query(url, sql))


_OUTBOX = "SELECT ticket_id::text AS ticket, idempotency_key::text AS key, state::text AS state FROM takedown_outbox"


def test_sigkill_under_load_loses_no_acknowledged_notice_ticket_or_pending_action(
    cli: Cli, start_service: Callable[..., Service], fake_platform: FakePlatform, migrated_database_url: str, tmp_path: Path
) -> None:
    commands = InProcessCli(cli.env)  # set-up commands in this process; the service is a real process
    import_test_list(commands, tmp_path / "pictures")
    commands("takedown", "policy", "test-list", "--auto-action")  # every match is actioned: a platform action per ticket
    platform = commands.new_key()
    env = {"HASHGUARD_WEBHOOK_URL": fake_platform.url, "HASHGUARD_WEBHOOK_SECRET": fake_platform.secret, **_WEBHOOK_FAST}
    service = start_service(**env)
    copies = [variant(draw(seed), scale=0.5, quality=60) for seed in SEEDS]

    def make(n: int) -> Call:
        if n % 2:
            return _scan_call("scan", platform, copies[n % len(copies)], f"kill-s-{n}")
        payload = {"source": "user_report", "content_id": f"kill-n-{n}", "explanation": "x"}
        return _json_call("notice", platform, "/v1/notices", payload)

    def acknowledged() -> list[Answer]:
        return [a for a in load.answers() if a.status in (200, 201)]

    load = Load(service.url, make, workers=4, pause_s=0.01).start()
    try:
        # Mid-run: notices and matches acknowledged, some actions delivered...
        wait_until(lambda: len(acknowledged()) >= 20 and fake_platform.snapshot()[1], 60, what="a run under way")
        # ...then the platform applies each action but its answer is lost: those stay pending, and must
        # not be applied twice when the restarted service sends them again.
        fake_platform.set_default("apply_then_hang")
        seen = len(acknowledged())
        wait_until(
            lambda: len(acknowledged()) >= seen + 6 and any(r["mode"] == "apply_then_hang" for r in fake_platform.snapshot()[0]),
            60,
            what="actions applied with their answers lost",
        )
        assert service.process is not None
        service.process.kill()  # SIGKILL: no shutdown, no flush
        service.process.wait(timeout=30)
        killed = time.monotonic()
        wait_until(lambda: any(a.sent > killed for a in load.answers()), 10, what="the load meeting the dead process")
    finally:
        answers = load.stop()
    notices = {a.body["ticket"]["content_id"]: a.body["ticket_id"] for a in answers if a.kind == "notice" and a.status == 201}
    matches = [a.body for a in answers if a.kind == "scan" and a.status == 200]
    assert notices and matches and all(m["verdict"] == "match" for m in matches)
    pending = [r for r in _rows(migrated_database_url, _OUTBOX) if r["state"] == "pending"]

    fake_platform.set_default("ok")
    start_service(**env)  # the same database: the restarted process picks up what the dead one left
    wait_until(
        lambda: all(r["state"] == "delivered" for r in _rows(migrated_database_url, _OUTBOX)),
        30,
        what="every action delivered after the restart",
    )
    tickets = {r["id"]: r for r in _rows(migrated_database_url, "SELECT id::text, content_id, source::text FROM tickets")}
    evidence = {
        r["scan"]: r["ticket"]
        for r in _rows(migrated_database_url, "SELECT scan_id::text AS scan, ticket_id::text AS ticket FROM ticket_evidence")
    }
    outbox = _rows(migrated_database_url, _OUTBOX)
    # Every acknowledged notice has its ticket, every acknowledged match its evidence on its ticket.
    for content_id, ticket in notices.items():
        assert tickets[ticket]["content_id"] == content_id
    for m in matches:
        assert evidence[m["scan_id"]] == m["ticket_id"] and tickets[m["ticket_id"]]["content_id"] == m["content_id"]
    # Every hash-match ticket (acknowledged or cut off by the kill) has exactly one action, and nothing else has one.
    by_ticket: dict[str, int] = {}
    for r in outbox:
        by_ticket[r["ticket"]] = by_ticket.get(r["ticket"], 0) + 1
    assert by_ticket == {t: 1 for t, r in tickets.items() if r["source"] == "hash_match"}
    # Each action was applied by the platform exactly once, signed, the pending ones included.
    requests, applied = fake_platform.snapshot()
    assert set(applied) == {r["key"] for r in outbox}
    assert pending and {r["key"] for r in pending} <= set(applied)
    assert all(r["mode"] != "unsigned" for r in requests)
    assert any(r["duplicate"] for r in requests)  # a lost answer was retried with the same key...
    assert {applied[r["key"]]["ticket_id"] for r in outbox} == set(by_ticket)  # ...and applied once


# --- the webhook receiver down ----------------------------------------------------------------------


class _ReceiverOn(FakePlatform):
    """The fake platform on a port chosen beforehand, so it can come up where the service already sends."""

    def __init__(self, port: int) -> None:
        self._fixed_port = port
        super().__init__()

    @property
    def port(self) -> int:
        return self._fixed_port

    @port.setter
    def port(self, value: int) -> None:  # FakePlatform picks a free port; this one is fixed
        pass


def test_a_webhook_receiver_down_for_minutes_gets_every_action_once_it_returns_signed(
    cli: Cli, start_service: Callable[..., Service], migrated_database_url: str, tmp_path: Path
) -> None:
    """Time is scaled by 200: backoff 0.01 s (default 2 s), cap 4.5 s (default 900 s), so the ~12 s outage
    here takes as many attempts per action as ~40 minutes would at the defaults, and stays well inside
    HASHGUARD_WEBHOOK_MAX_ATTEMPTS (20, the default, which at the defaults spans about 2.5 hours)."""
    commands = InProcessCli(cli.env)  # set-up commands in this process; the service is a real process
    import_test_list(commands, tmp_path / "pictures")
    commands("takedown", "policy", "test-list", "--auto-action")
    platform = commands.new_key()
    port = free_port()
    secret = "test-webhook-secret-receiver-down"
    env = {
        "HASHGUARD_WEBHOOK_URL": f"http://127.0.0.1:{port}/takedown",
        "HASHGUARD_WEBHOOK_SECRET": secret,
        "HASHGUARD_WEBHOOK_TIMEOUT_S": "0.5",
        "HASHGUARD_WEBHOOK_BACKOFF_S": "0.01",
        "HASHGUARD_WEBHOOK_BACKOFF_MAX_S": "4.5",
        "HASHGUARD_OUTBOX_POLL_S": "0.1",
        "HASHGUARD_FLOOD_MAX_MATCHES": "0",
    }
    service = start_service(**env)
    for n, seed in enumerate(SEEDS * 2):  # ten matches, ten tickets, ten actions, while nothing listens
        answer = service.request(
            "POST",
            f"/v1/scan?content_id=down-{n}",
            variant(draw(seed), scale=0.5, quality=60),
            platform,
            Content_Type="image/jpeg",
        )
        assert answer.status == 200 and answer.json()["verdict"] == "match", answer.body

    def attempts() -> int:
        return sum(r["attempts"] for r in _rows(migrated_database_url, "SELECT attempts FROM takedown_outbox"))

    outage = time.monotonic()
    # Refused connections first (nothing listens), then a receiver that answers 503, then one that hangs.
    wait_until(lambda: attempts() >= 40, 20, what="retries against a receiver that is not there")
    receiver = _ReceiverOn(port)
    receiver.secret = secret
    try:
        receiver.set_default("fail")
        wait_until(lambda: len(receiver.snapshot()[0]) >= 10, 20, what="retries answered 503")
        receiver.set_default("hang")
        wait_until(lambda: sum(r["mode"] == "hang" for r in receiver.snapshot()[0]) >= 5, 20, what="retries timing out")
        assert all(r["state"] == "pending" for r in _rows(migrated_database_url, _OUTBOX))
        down_s = time.monotonic() - outage
        receiver.set_default("ok")  # the platform is back
        wait_until(
            lambda: all(r["state"] == "delivered" for r in _rows(migrated_database_url, _OUTBOX)),
            20,
            what="every action delivered once the receiver is back",
        )
        requests, applied = receiver.snapshot()
    finally:
        receiver.close()
    outbox = _rows(migrated_database_url, _OUTBOX)
    assert len(outbox) == 10 and set(applied) == {r["key"] for r in outbox}  # each action applied, once
    assert all(r["mode"] != "unsigned" for r in requests)  # every request carried a valid signature
    assert {body["ticket_id"] for body in applied.values()} == {r["ticket"] for r in outbox}
    assert down_s < 30
