"""Screenshots of the console for the README: ``python -m tests.browser.screenshots [--out docs/screenshots]``.

Starts an embedded PostgreSQL in a temporary folder, stages a day of synthetic work
(tests/browser/stage.py: drawn pictures, synthetic lists, made-up accounts), and photographs the
queue, a ticket (with its action dialog open) and the auditor's figures at 1280×800 in the system's
headless Chromium. Nothing shown is, or was made from, real material.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from kernel.db import embedded_url, stop_embedded
from tests.browser.stage import AUDITOR, REVIEWER, Stage, browser_or_fail, staged
from tests.console_client import PASSWORD


def _sign_in(page: Page, stage: Stage, email: str) -> None:
    page.goto(stage.url + "/console/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/queue")


def shoot(stage: Stage, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_or_fail(), headless=True)
        reviewer = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        _sign_in(reviewer, stage, REVIEWER)
        reviewer.locator("a.ticket-link").first.focus()
        made.append(out / "queue.png")
        reviewer.screenshot(path=str(made[-1]))
        reviewer.keyboard.press("n")
        reviewer.wait_for_url("**/console/tickets/*")
        made.append(out / "ticket.png")
        reviewer.screenshot(path=str(made[-1]))
        reviewer.keyboard.press("a")
        reviewer.keyboard.press("1")
        made.append(out / "ticket-action.png")
        reviewer.screenshot(path=str(made[-1]))
        auditor = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        _sign_in(auditor, stage, AUDITOR)
        auditor.goto(stage.url + "/console/figures")
        made.append(out / "figures.png")
        auditor.screenshot(path=str(made[-1]), full_page=True)
        browser.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    browser_or_fail()
    folder = Path(tempfile.mkdtemp(prefix="hashguard-screenshots-"))
    try:
        url = embedded_url(folder / "pg")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
        env.update(HASHGUARD_DATABASE_URL=url, HASHGUARD_DATA_DIR=str(folder / "data"), PYTHONUNBUFFERED="1")
        with staged(env, folder) as stage:
            for path in shoot(stage, args.out):
                print(path)
    finally:
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
