"""What a benchmark ran on, printed at the top of every result so figures are never read without it."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

from PIL import features

_REPO = Path(__file__).parents[1]


def describe() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram = "?"
    try:
        with open("/proc/meminfo") as info:
            kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
            ram = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    packages = ", ".join(f"{p} {version(p)}" for p in ("pillow", "numpy", "pdqhash", "imagehash"))
    jpeg = features.version("libjpeg_turbo") or "?"
    load = "?"
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {cores} cores available, {ram} RAM; Python {platform.python_version()} on {platform.system()}; "
        f"{packages}; libjpeg-turbo {jpeg}; load average at start {load}"
    )


def commit() -> str:
    """The git commit the benchmark ran at, marked when the work tree had changes outside results/."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)benchmarks/results"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" plus uncommitted changes" if status.strip() else "")
