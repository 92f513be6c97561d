"""promtool for the monitoring tests: found, or a failure that says how to get it (never a skip)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"


def promtool() -> str:
    """The promtool binary. Missing, the test fails with the fix: CI sets HASHGUARD_REQUIRE_PROMTOOL=1 and
    installs it, and a developer's run may not skip these checks either."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: the alert rules and /metrics cannot be checked. "
            "Install it with `apt-get install prometheus` (Debian's package ships /usr/bin/promtool). "
            "These tests never skip, with or without HASHGUARD_REQUIRE_PROMTOOL=1 (which CI sets)."
        )
    return found


def run_promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([promtool(), *args], input=stdin, capture_output=True, cwd=cwd, timeout=60, check=False)


_NAME = re.compile(r"\bhashguard_[a-z0-9_]+")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def metric_names(text: str) -> set[str]:
    """Every hashguard metric a PromQL text names (a histogram's _bucket/_sum/_count as the histogram)."""
    names = set()
    for name in _NAME.findall(text):
        for part in _HISTOGRAM_PARTS:
            if name.endswith(part) and name.removesuffix(part).endswith("_seconds"):
                name = name.removesuffix(part)
        names.add(name)
    return names
