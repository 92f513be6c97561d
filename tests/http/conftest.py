"""The http tier: the app and the command line in this process (tests/http/inprocess.py), on the
test's own database cloned from the session's migrated template, reached over loopback HTTP.

The ``cli`` and ``start_service`` fixtures here stand in for the subprocess ones of
tests/conftest.py with the same interface, so a test reads the same in either tier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import allow_all_tools_locally
from tests.http.inprocess import Cli, Service


@pytest.fixture(autouse=True)
def _log_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """Record INFO and above, as ``hashguard serve`` does with HASHGUARD_LOG_LEVEL=INFO: ``service.log()`` sees it all."""
    caplog.set_level(logging.INFO)


@pytest.fixture
def cli(service_env: dict[str, str]) -> Cli:
    return Cli(service_env)


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start one or more in-process services (``start_service(HASHGUARD_X="1")``); all are stopped after the test.

    Unless ``allow_tools=False``, every installed tool is first allowed locally on the test's
    database, so tests that are not about the approval policy scan with every tool as before.
    """
    started: list[Service] = []

    def start(*, allow_tools: bool = True, expect_ready: bool = True, **env: str) -> Service:
        if allow_tools:
            allow_all_tools_locally(service_env["HASHGUARD_DATABASE_URL"])
        service = Service(env={**service_env, **env}, log_path=tmp_path / f"serve-{len(started)}.log")
        started.append(service)
        return service.start(expect_ready=expect_ready)

    yield start
    for service in started:
        service.stop()
