"""``hashguard serve --workers 2`` as a real process tree: both workers answer on the one port, /metrics speaks for
the replica, a once-per-replica job (the outbox) delivers once, a SIGKILLed worker is restarted while the other
keeps answering, and SIGTERM drains everything to exit 0 with no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cli, FakePlatform, Service
from tests.harness import HttpResult, import_test_list
from tests.harness import ok as _ok
from tests.metrics_reading import samples
from tests.waiting import wait_until


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _worker(result: HttpResult) -> int:
    return int(result.headers["X-Hashguard-Worker"])


def _lookups_counted(service: Service) -> float:
    scraped = samples(service.request("GET", "/metrics").body)
    return sum(v for (name, labels), v in scraped.items() if name == "hashguard_scans_total" and ("endpoint", "lookup") in labels)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_two_workers_share_the_port_metrics_and_jobs_and_survive_a_killed_worker(
    cli: Cli, start_service: Callable[..., Service], fake_platform: FakePlatform, tmp_path: Path
) -> None:
    hashes = import_test_list(cli, tmp_path / "list")
    env = {
        "HASHGUARD_WEBHOOK_URL": fake_platform.url,
        "HASHGUARD_WEBHOOK_SECRET": fake_platform.secret,
        "HASHGUARD_OUTBOX_POLL_S": "0.1",
        "HASHGUARD_HASH_WORKERS": "1",
        "HASHGUARD_METRICS_DIR": str(tmp_path / "metrics"),
    }
    service = start_service("--workers", "2", **env)
    assert service.process is not None
    parent = service.process.pid
    workers = _children(parent)
    assert len(workers) == 2
    platform, reviewer = cli.new_key(), cli.new_key("reviewer")

    # Both workers answer (the one backlog is shared), and each counts its lookups: /metrics sums them.
    seen: dict[int, int] = {}
    sent = 0
    # Every bit of a listed hash flipped: as far from the list as a hash can be (no match, so no ticket either).
    unlisted = format(int(hashes[11], 16) ^ ((1 << 256) - 1), "064x")

    def both_answered() -> bool:
        nonlocal sent
        result = service.post_json("/v1/lookup", {"content_id": f"c-{sent}", "hashes": {"pdq": unlisted}}, platform)
        assert _ok(result)["verdict"] == "no_match"
        sent += 1
        seen[_worker(result)] = seen.get(_worker(result), 0) + 1
        return len(seen) == 2 and sent >= 20

    wait_until(both_answered, 60, interval=0.01, what="lookups answered by both workers")
    assert set(seen) == {0, 1}
    # Any worker's /metrics counts every worker's lookups (each scrape may reach either worker).
    for _ in range(6):
        assert _lookups_counted(service) == sent
    assert "======== Running on" in service.log() and service.log().count("======== Running on") == 1

    # A once-per-replica job: a decision's platform action is delivered exactly once.
    ticket = _ok(
        service.post_json("/v1/notices", {"source": "user_report", "content_id": "w-1", "explanation": "x"}, platform), 201
    )["ticket_id"]
    assert _ok(service.post_json("/v1/queue/claim", {}, reviewer))["ticket"]["id"] == ticket
    _ok(service.post_json(f"/v1/tickets/{ticket}/decision", {"decision": "actioned", "explanation": "illegal"}, reviewer))
    fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 1, what="the action delivered")
    time.sleep(1.0)  # ten outbox polls: a second deliverer would have sent it again by now
    requests, applied = fake_platform.snapshot()
    assert len(requests) == 1 and len(applied) == 1
    scraped = samples(service.request("GET", "/metrics").body)
    assert scraped[("hashguard_webhook_deliveries_total", frozenset({("action", "remove"), ("result", "delivered")}))] == 1

    # SIGKILL one worker: it is logged and restarted; the other keeps answering meanwhile.
    victim = workers[1]
    os.kill(victim, signal.SIGKILL)
    for _ in range(20):
        assert service.request("GET", "/healthz").status == 200
    wait_until(lambda: len(_children(parent)) == 2 and victim not in _children(parent), 60, what="the killed worker restarted")
    assert "was killed by SIGKILL" in service.log()
    restarted = [pid for pid in _children(parent) if pid not in workers]
    assert len(restarted) == 1
    wait_until(lambda: "is serving" in service.log().split("was killed by SIGKILL")[-1], 60, what="the new worker serving")
    answered = {_worker(service.request("GET", "/healthz")) for _ in range(60)}
    assert answered == {0, 1}
    # The dead worker's counts stay in the replica's figures.
    assert _lookups_counted(service) == sent

    # SIGTERM: every worker drains, the parent exits 0, nothing is left running.
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=40) == 0
    wait_until(lambda: not any(_alive(pid) for pid in [*workers, *restarted]), 10, what="every worker gone")
    assert list((tmp_path / "metrics").iterdir()) == []  # the replica's metric files are removed


@pytest.mark.slow
def test_one_worker_is_the_single_process_of_before(start_service: Callable[..., Service]) -> None:
    service = start_service("--workers", "1")
    assert service.process is not None
    result = service.request("GET", "/readyz")
    assert result.status == 200
    assert "X-Hashguard-Worker" not in result.headers and "worker" not in result.json()
    assert "worker 0 started" not in service.log()  # no supervisor: the process serves itself
    assert service.log().count("======== Running on") == 1
    assert service.stop() == 0
