"""Tenants: platform keys belong to one, staff keys may be limited to some, and what a platform's
calls leave behind (evidence, tickets, notices, statements, appeals) stays in its tenant."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from detector.synthetic import draw, variant
from tests.harness import make_list, scan
from tests.harness import ok as _ok
from tests.http.inprocess import Cli, Service


def _query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _key(cli: Cli, role: str, *scope: str) -> str:
    return cli("keys", "create", "--role", role, *scope).stdout.strip()


@pytest.fixture
def listed(cli: Cli, tmp_path: Path) -> dict[int, str]:
    hashes = make_list(cli, tmp_path / "pictures")
    cli("hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "test-list", "--tool", "pdq", "--allow-unsigned")
    return hashes


def test_tenants_are_created_listed_and_audited_and_keys_name_theirs(cli: Cli, service_env: dict[str, str]) -> None:
    assert cli("tenants", "list").stdout.split("\t")[0] == "default"
    cli("tenants", "create", "alpha")
    cli("tenants", "create", "beta")
    assert [line.split("\t")[0] for line in cli("tenants", "list").stdout.splitlines()] == ["default", "alpha", "beta"]
    again = cli("tenants", "create", "alpha", check=False)
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = cli("tenants", "create", "Not A Name", check=False)
    assert bad.returncode == 1 and "tenant name" in bad.stderr

    _key(cli, "platform", "--tenant", "alpha")
    _key(cli, "platform")  # no --tenant: the default tenant, as before tenants existed
    _key(cli, "reviewer", "--tenants", "alpha,beta")
    _key(cli, "lead")
    listing = [line.split("\t") for line in cli("keys", "list").stdout.splitlines()]
    assert [(row[1], row[2]) for row in listing] == [
        ("platform", "alpha"),
        ("platform", "default"),
        ("reviewer", "alpha,beta"),
        ("lead", "*"),
    ]
    unknown = cli("keys", "create", "--role", "platform", "--tenant", "gamma", check=False)
    assert unknown.returncode == 1 and "no tenant named gamma" in unknown.stderr
    mixed = cli("keys", "create", "--role", "platform", "--tenants", "alpha", check=False)
    assert mixed.returncode == 1 and "--tenant NAME" in mixed.stderr
    staff_owner = cli("keys", "create", "--role", "reviewer", "--tenant", "alpha", check=False)
    assert staff_owner.returncode == 1 and "--tenants" in staff_owner.stderr

    url = service_env["HASHGUARD_DATABASE_URL"]
    audit = {(r["action"], r["subject"]): r["entry"] for r in _query(url, "SELECT action, subject, entry::text FROM audit_log")}
    assert ("tenant.created", "tenant:alpha") in audit and ("tenant.created", "tenant:beta") in audit
    created = [json.loads(entry)["after"] for (action, _), entry in audit.items() if action == "key.created"]
    assert {"role": "platform", "label": "", "tenant": "alpha"} in created
    assert {"role": "reviewer", "label": "", "tenants": ["alpha", "beta"]} in created


def test_a_scan_records_its_evidence_in_the_key_s_tenant(
    listed: dict[int, str], cli: Cli, start_service: Callable[..., Service], service_env: dict[str, str]
) -> None:
    cli("tenants", "create", "alpha")
    service = start_service()
    alpha, default = _key(cli, "platform", "--tenant", "alpha"), _key(cli, "platform")
    assert _ok(scan(service, alpha, variant(draw(13), scale=0.5), content_id="upload-13"))["verdict"] == "match"
    assert _ok(scan(service, default, variant(draw(13), scale=0.5), content_id="upload-13"))["verdict"] == "match"
    rows = _query(
        service_env["HASHGUARD_DATABASE_URL"],
        "SELECT t.name FROM scan_matches m JOIN tenants t ON t.id = m.tenant_id WHERE m.content_id = 'upload-13' ORDER BY m.id",
    )
    assert [r["name"] for r in rows] == ["alpha", "default"]
