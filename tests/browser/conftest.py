"""The browser tier: one ``hashguard serve`` per test module with a staged day of synthetic work
(tests/browser/stage.py), driven by Playwright through the system's Chromium, headless.

Never skipped: without Chromium the tests fail with the command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.stage import Stage, browser_or_fail, staged
from tests.conftest import _drop_database, _new_database

VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def stage(pg_server: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    executable = browser_or_fail()  # before minutes of seeding, not after
    assert executable
    name, url = _new_database(pg_server, template=migrated_template)
    folder = tmp_path_factory.mktemp("console")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(
        HASHGUARD_DATABASE_URL=url, HASHGUARD_DATA_DIR=str(folder / "data"), HASHGUARD_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1"
    )
    try:
        with staged(env, Path(folder), HASHGUARD_EXPOSURE_LIMIT="1") as ready:
            yield ready
    finally:
        _drop_database(pg_server, name)


@pytest.fixture(scope="module")
def browser(stage: Stage) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=browser_or_fail(), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    yield context.new_page()
    context.close()
