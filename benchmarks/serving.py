"""What every benchmark that runs ``hashguard serve`` as its own process needs: a free loopback port,
the command line, and waiting for ``/readyz``."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hashguard_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``hashguard ARGS`` in its own process; its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "hashguard.cli", *args], env=env, check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float, *, poll_s: float = 0.3) -> None:
    """Poll ``url``/readyz until it answers 200; RuntimeError when the server exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            if response.status == 200:
                return
        if server.poll() is not None:
            raise RuntimeError(f"hashguard serve exited with {server.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"hashguard serve was not ready within {timeout_s:g} s")
        time.sleep(poll_s)
