"""Where the app's background work runs with several workers, and how the replica's metrics combine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import Gauge as PlainGauge

from hashguard.app import EVERY_WORKER, ONCE_PER_REPLICA, context_name, create_app
from hashguard.workers import WorkerRole
from kernel.metrics import GAUGE_MODES, Metrics
from kernel.settings import Settings
from tests.metrics_reading import samples


def _contexts(role: WorkerRole, **settings: str) -> list[str]:
    return [context_name(c) for c in create_app(Settings.from_env({}, **settings), role=role).cleanup_ctx]


def test_every_background_context_is_placed_deliberately() -> None:
    every = _contexts(WorkerRole(), exchanges="on")
    assert set(every) <= EVERY_WORKER | ONCE_PER_REPLICA, set(every) - EVERY_WORKER - ONCE_PER_REPLICA
    assert not EVERY_WORKER & ONCE_PER_REPLICA


def test_worker_zero_runs_the_replica_jobs_and_the_others_only_their_own() -> None:
    single = _contexts(WorkerRole(), exchanges="on")
    zero = _contexts(WorkerRole(index=0, count=3), exchanges="on")
    other = _contexts(WorkerRole(index=2, count=3), exchanges="on")
    assert set(single) & ONCE_PER_REPLICA == set(zero) & ONCE_PER_REPLICA == ONCE_PER_REPLICA
    assert "hashguard.app._worker_upkeep" not in single  # one process: nothing added
    assert set(other) == EVERY_WORKER
    assert "hashguard.app._index" in other  # every worker reloads its own snapshot


def test_every_gauge_says_how_workers_combine() -> None:
    metrics = Metrics()
    gauges = {m._name for m in vars_of(metrics) if isinstance(m, PlainGauge)}
    assert gauges == set(GAUGE_MODES), (gauges - set(GAUGE_MODES), set(GAUGE_MODES) - gauges)


def vars_of(metrics: Metrics) -> list[object]:
    return [getattr(metrics, name) for name in metrics.__dataclass_fields__]


_WORKER = """
import sys
from pathlib import Path
from kernel.metrics import Metrics
m = Metrics(replica_dir=Path(sys.argv[1]))
n = int(sys.argv[2])
m.scans.labels(endpoint="lookup", verdict="no_match").inc(n)
m.decode_memory.set_function(lambda: 100 * n)
m.index_entries.labels(hashset="old", tool="pdq").set(5)
m.index_entries.clear()  # the list went away: a tombstone
m.index_entries.labels(hashset="new", tool="pdq").set(7)
"""


def test_a_replica_scrape_sums_counters_and_combines_gauges_over_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (1, 2):
        subprocess.run([sys.executable, "-c", _WORKER, str(tmp_path), str(n)], env=env, check=True, timeout=60)
    reader = (
        "import sys; from pathlib import Path; from kernel.metrics import Metrics; from prometheus_client import generate_latest;"
    )
    reader += " sys.stdout.write(generate_latest(Metrics(replica_dir=Path(sys.argv[1])).registry).decode())"
    out = subprocess.run(
        [sys.executable, "-c", reader, str(tmp_path)], env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    scraped = samples(out)
    assert scraped[("hashguard_scans_total", frozenset({("endpoint", "lookup"), ("verdict", "no_match")}))] == 3
    # livesum over the two writers plus the reader's own 0 (the writers' live files are kept: nobody marked them dead)
    assert scraped[("hashguard_decode_memory_bytes", frozenset())] == 300
    assert scraped[("hashguard_index_entries", frozenset({("hashset", "new"), ("tool", "pdq")}))] == 7
    assert ("hashguard_index_entries", frozenset({("hashset", "old"), ("tool", "pdq")})) not in scraped
