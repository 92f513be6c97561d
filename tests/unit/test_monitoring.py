"""The alert rules and the dashboard in deploy/monitoring/: valid for promtool, their main alerts
unit-tested with ``promtool test rules``, and every metric they name one hashguard exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kernel.metrics import METRIC_NAMES
from tests.monitoring import MONITORING, metric_names, run_promtool


def test_every_rule_file_passes_promtool_check_rules() -> None:
    files = sorted((MONITORING / "rules").glob("*.y*ml"))
    assert files, "no rule files in deploy/monitoring/rules"
    for path in files:
        result = run_promtool("check", "rules", str(path))
        assert result.returncode == 0, f"{path.name}: {result.stdout.decode()}{result.stderr.decode()}"


def test_the_main_alerts_fire_when_they_should_and_not_before() -> None:
    tests = sorted((MONITORING / "tests").glob("*_test.yml"))
    assert tests
    for path in tests:
        result = run_promtool("test", "rules", path.name, cwd=path.parent)
        assert result.returncode == 0, f"{path.name}: {result.stdout.decode()}{result.stderr.decode()}"


def test_a_wrong_expectation_fails_the_rule_tests(tmp_path: Path) -> None:
    """The rule tests can fail: an alert expected at a moment it cannot fire is reported."""
    folder = tmp_path
    (folder / "rules").mkdir()
    (folder / "rules" / "hashguard.yml").write_text((MONITORING / "rules" / "hashguard.yml").read_text())
    (folder / "tests").mkdir()
    wrong = (MONITORING / "tests" / "hashguard_test.yml").read_text().replace("eval_time: 10m", "eval_time: 30m", 1)
    (folder / "tests" / "wrong_test.yml").write_text(wrong)
    assert run_promtool("test", "rules", "wrong_test.yml", cwd=folder / "tests").returncode != 0


def _rule_exprs() -> str:
    # Our rules keep each expression on its one line (promtool has parsed the file by now).
    exprs = []
    for path in sorted((MONITORING / "rules").glob("hashguard*.y*ml")):
        exprs += re.findall(r"^\s*expr:\s*(.+)$", path.read_text(), flags=re.MULTILINE)
    assert len(exprs) >= 10
    return "\n".join(exprs)


def _dashboard_exprs() -> str:
    dashboard = json.loads((MONITORING / "grafana" / "hashguard.json").read_text())
    return "\n".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))


def test_every_metric_the_rules_and_the_dashboard_name_is_exported() -> None:
    known = set(METRIC_NAMES)
    for where, text in (("rules", _rule_exprs()), ("dashboard", _dashboard_exprs())):
        named = metric_names(text)
        assert named, where
        assert named <= known, f"{where} name metrics hashguard does not export: {sorted(named - known)}"


def test_the_dashboard_covers_every_alerted_metric() -> None:
    assert metric_names(_rule_exprs()) <= metric_names(_dashboard_exprs())
