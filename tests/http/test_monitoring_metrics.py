"""``promtool check metrics`` on the live /metrics of the service, after it has scanned, matched,
opened a ticket and queued a statement of reasons (so the labelled series exist too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from detector.synthetic import draw, encode
from kernel.metrics import METRIC_NAMES
from tests.harness import import_test_list, ok, scan
from tests.http.inprocess import Cli, Service
from tests.metrics_reading import samples
from tests.monitoring import metric_names, run_promtool


def test_the_live_metrics_pass_promtool_check_metrics(cli: Cli, start_service: Callable[..., Service], tmp_path: Path) -> None:
    import_test_list(cli, tmp_path / "list")
    cli("takedown", "policy", "test-list", "--auto-action")
    service = start_service()
    assert ok(scan(service, cli.new_key("platform"), encode(draw(12), "JPEG"), content_id="m-1"))["verdict"] == "match"
    exposition = service.request("GET", "/metrics").body
    result = run_promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    # Every hashguard series served is one METRIC_NAMES lists (the README's table is made from it).
    served = metric_names("\n".join(name for name, _ in samples(exposition)))
    assert served and served <= set(METRIC_NAMES), sorted(served - set(METRIC_NAMES))
    assert "hashguard_eu_detection_halted" in served and "hashguard_dsa_statements_pending" in served
