"""``hashguard serve`` on a port that is taken: one clear line and a failing exit status, not a
traceback (finding 13 of issue 11). Refused before the database or the index start, so it is quick."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import free_port


# With several workers the parent binds the port before it starts the database or any worker.
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_and_a_failing_exit(tmp_path: Path, workers: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(HASHGUARD_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "hashguard.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", workers],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [f"hashguard: error: cannot listen on 127.0.0.1:{port}: address already in use"]
    assert result.stdout == ""
    # Refused before anything started: no embedded database was created for it.
    assert not (tmp_path / "data" / "postgres").exists()
