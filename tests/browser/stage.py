"""A hashguard with a day's synthetic work in it, for the browser tests and the screenshots.

``hashguard serve`` runs as a real process on loopback; lists, keys and accounts are made with the
command line, tickets through the API (scans of drawn pictures, notices, a lead's assignments and
a reviewer's decisions), previews point at a drawn picture served by a stand-in "platform" on
loopback. Nothing here is, or was made from, real material.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from detector.synthetic import draw, encode, variant
from tests.conftest import Service, allow_all_tools_locally
from tests.console_client import Person, make_user
from tests.harness import free_port, make_list, ok, scan
from tests.http.inprocess import Cli

CHROMIUM = os.environ.get("HASHGUARD_CHROMIUM", "/usr/bin/chromium")

REVIEWER, SECOND, LEAD, AUDITOR, ADMIN = (
    "rowan.reviewer@example.org",
    "sam.reviewer@example.org",
    "lee.lead@example.org",
    "ada.auditor@example.org",
    "max.admin@example.org",
)


def browser_or_fail() -> str:
    """The system Chromium the tests drive. Never skipped: without it the tests fail and say how to install it."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        which = shutil.which("chromium") or shutil.which("chromium-browser")
        if which is None:
            import pytest

            pytest.fail(
                f"the console's browser tests need Chromium at {CHROMIUM} (HASHGUARD_CHROMIUM to point elsewhere): "
                "install it with `apt-get install chromium` (Playwright drives it; nothing is downloaded)",
                pytrace=False,
            )
        return which
    return CHROMIUM


class _Pictures(http.server.BaseHTTPRequestHandler):
    """The platform's preview images: drawn pictures, only."""

    def do_GET(self) -> None:
        seed = int(self.path.strip("/").split(".")[0] or 0) if self.path.strip("/").split(".")[0].isdigit() else 0
        body = encode(draw(seed, (320, 240)))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class Stage:
    service: Service
    cli: Cli
    platform: str
    auditor_key: str
    lead_key: str
    reviewer_key: str
    exact: list[str] = field(default_factory=list)  # undecided exact known-hash matches
    previewed: list[str] = field(default_factory=list)  # notice tickets with a preview
    near: str = ""

    @property
    def url(self) -> str:
        return self.service.url

    def api(self, method: str, path: str, key: str, payload: object | None = None) -> object:
        if payload is None:
            return ok(self.service.request(method, path, key=key))
        answer = self.service.post_json(path, payload, key)
        return ok(answer, 201 if answer.status == 201 else 200)

    def audit(self, action: str) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = []
        after = 0
        while True:
            page = self.api("GET", f"/v1/audit?after={after}&limit=500", self.auditor_key)
            assert isinstance(page, dict)
            entries += [e for e in page["entries"] if e["action"] == action]
            if len(page["entries"]) < 500:
                return entries
            after = page["next_after"]


@contextlib.contextmanager
def staged(env: dict[str, str], folder: Path, **settings: str) -> Iterator[Stage]:
    """Seed the database named by ``env`` and run ``hashguard serve`` on it; stopped afterwards."""
    allow_all_tools_locally(env["HASHGUARD_DATABASE_URL"])
    cli = Cli(env)
    make_list(cli, folder / "exact", tool="sha256")
    cli("hashsets", "import", str(folder / "exact" / "list.csv"), "--name", "hotline-exact", "--tool", "sha256",
        "--source", "Synthetic Hotline (test data)", "--allow-unsigned")  # fmt: skip
    make_list(cli, folder / "near", tool="pdq")
    cli("hashsets", "import", str(folder / "near" / "list.csv"), "--name", "hotline-pdq", "--tool", "pdq",
        "--source", "Synthetic Hotline (test data)", "--allow-unsigned")  # fmt: skip
    # A list whose matches are actioned without a reviewer (one entry of the same pictures).
    (folder / "auto").mkdir()
    rows = (folder / "exact" / "list.csv").read_text().splitlines()
    (folder / "auto" / "list.csv").write_text("\n".join([rows[0], *[r for r in rows if r.startswith("entry-15,")]]) + "\n")
    cli("hashsets", "import", str(folder / "auto" / "list.csv"), "--name", "hotline-auto", "--tool", "sha256",
        "--source", "Synthetic Hotline (test data)", "--allow-unsigned")  # fmt: skip
    cli("takedown", "policy", "hotline-auto", "--auto-action")
    keys = {role: cli.new_key(role) for role in ("platform", "reviewer", "lead", "auditor")}
    make_user(cli, ADMIN, "admin")

    pictures = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Pictures)
    threading.Thread(target=pictures.serve_forever, daemon=True).start()
    service = Service(env={**env, **settings}, log_path=folder / "serve.log")
    try:
        service.start()
        admin = Person(service.url)
        assert admin.sign_in(ADMIN).status == 303
        admin.get("/console/admin")
        for email, role in ((REVIEWER, "reviewer"), (SECOND, "reviewer"), (LEAD, "lead"), (AUDITOR, "auditor")):
            made = admin.post(
                "/console/admin/users", {"do": "create", "email": email, "role": role, "password": "correct horse battery staple"}
            )
            assert made.status == 303, made.text
        stage = Stage(
            service=service,
            cli=cli,
            platform=keys["platform"],
            auditor_key=keys["auditor"],
            lead_key=keys["lead"],
            reviewer_key=keys["reviewer"],
        )
        platform = keys["platform"]
        # Two decided cases for the figures: one actioned and reported, one dismissed.
        for content, decision in (("post-5001", "actioned"), ("post-5002", "dismissed")):
            ticket = str(stage.api("POST", "/v1/notices", platform,
                                   {"source": "trusted_flagger", "content_id": content, "explanation": "synthetic flagger notice"})["ticket_id"])  # type: ignore[index]  # fmt: skip
            prefix = keys["reviewer"][:11]
            stage.api("POST", f"/v1/tickets/{ticket}/assign", keys["lead"], {"key_prefix": prefix})
            stage.api(
                "POST",
                f"/v1/tickets/{ticket}/decision",
                keys["reviewer"],
                {"decision": decision, "explanation": "synthetic decision"},
            )
            if decision == "actioned":
                stage.api("POST", f"/v1/tickets/{ticket}/report", keys["reviewer"], {"hotline": "NCMEC", "reference": "SYN-0001"})
        automated = ok(scan(stage.service, platform, encode(draw(15)), content_id="upload-15", ctype="image/png"))
        assert automated["verdict"] == "match", automated
        # Exact known-hash matches (the pictures' own bytes) and a near one (resized, re-encoded).
        for seed in (11, 12, 13):
            result = ok(scan(stage.service, platform, encode(draw(seed)), content_id=f"upload-{seed}", ctype="image/png"))
            assert result["verdict"] == "match", result
            stage.exact.append(result["ticket_id"])
        stage.near = ok(scan(stage.service, platform, variant(draw(14), scale=0.5), content_id="upload-14"))["ticket_id"]
        # User reports whose platform offers a preview.
        for n, content in enumerate(("post-881", "post-882")):
            ticket = str(stage.api("POST", "/v1/notices", platform,
                                   {"source": "user_report", "content_id": content, "explanation": "a user reported this image"})["ticket_id"])  # type: ignore[index]  # fmt: skip
            stage.api(
                "POST",
                f"/v1/tickets/{ticket}/previews",
                platform,
                {"url": f"http://127.0.0.1:{pictures.server_port}/{21 + n}.png"},
            )
            stage.previewed.append(ticket)
        yield stage
    finally:
        service.stop()
        pictures.shutdown()
        pictures.server_close()
