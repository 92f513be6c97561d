"""The alert rules for hash-sharing sources are valid Prometheus rules, fire on a source that stopped, and
name only metrics hashguard exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernel.metrics import METRIC_NAMES

RULES = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "rules" / "exchanges.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def test_rules_check_and_name_exported_metrics() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    used = set(re.findall(r"hashguard_[a-z_]+", RULES.read_text()))
    assert used and used <= set(METRIC_NAMES), used - set(METRIC_NAMES)


def test_a_source_that_stops_advancing_fires_and_a_fresh_one_does_not(tmp_path: Path) -> None:
    # Two sources fetched every 5 minutes: "stuck" applied its last page at t=0, "fresh" keeps applying.
    tests = tmp_path / "tests.yml"
    tests.write_text(
        f"""
rule_files: [{RULES}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hashguard_exchange_last_page_timestamp_seconds{{source="stuck"}}'
        values: '0x60'
      - series: 'hashguard_exchange_last_page_timestamp_seconds{{source="fresh"}}'
        values: '0+60x60'
      - series: 'hashguard_exchange_interval_seconds{{source="stuck"}}'
        values: '300x60'
      - series: 'hashguard_exchange_interval_seconds{{source="fresh"}}'
        values: '300x60'
    alert_rule_test:
      - eval_time: 10m
        alertname: HashguardExchangeNotAdvancing
        exp_alerts: []
      - eval_time: 40m
        alertname: HashguardExchangeNotAdvancing
        exp_alerts:
          - exp_labels: {{severity: warning, source: stuck}}
            exp_annotations:
              summary: "Hash-sharing source stuck has not advanced for three fetch intervals"
              description: "No page of stuck applied for 40m 0s; see hashguard exchanges show stuck."
"""
    )
    result = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(autouse=True)
def _promtool() -> None:
    assert Path(PROMTOOL).exists(), "promtool is needed (apt-get install prometheus)"
