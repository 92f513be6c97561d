"""The figures stream end to end in the service: a scan actioned by list policy issues a statement
that reaches the DSA Transparency Database stand-in; /v1/transparency and ``hashguard
transparency`` report it with the lists in force; a deployment serving the EU without a recorded
legal basis scans nothing and says so."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detector.synthetic import draw, encode
from tests.dsa_standin import TOKEN, DsaStandIn
from tests.harness import import_test_list, ok, scan
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until


@pytest.fixture
def dsa_db() -> Iterator[DsaStandIn]:
    """The stand-in on its own event loop in a thread (the in-process service runs on another)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    standin = asyncio.run_coroutine_threadsafe(DsaStandIn().start(), loop).result(10)
    yield standin
    asyncio.run_coroutine_threadsafe(standin.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_a_restriction_reaches_the_dsa_database_and_the_figures(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path, dsa_db: DsaStandIn
) -> None:
    import_test_list(cli, tmp_path / "list")
    cli("takedown", "policy", "test-list", "--auto-action")
    service = start_service(
        HASHGUARD_DSA_DB_URL=dsa_db.url,
        HASHGUARD_DSA_DB_TOKEN=TOKEN,
        HASHGUARD_DSA_DB_POLL_S="0.05",
        HASHGUARD_JURISDICTIONS="GB",
    )
    platform = cli.new_key("platform")
    assert ok(scan(service, platform, encode(draw(11), "JPEG"), content_id="upload-1"))["verdict"] == "match"
    wait_until(lambda: len(dsa_db.held) == 1, 30, what="the statement reaching the Transparency Database")
    (held,) = dsa_db.held.values()
    assert held["source_type"] == "SOURCE_VOLUNTARY" and held["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert "test-list" not in json.dumps(held)  # the statement never names the list that matched
    wait_until(
        lambda: (
            'hashguard_dsa_statements_submitted_total{outcome="submitted"} 1.0'
            in service.request("GET", "/metrics").body.decode()
        ),
        30,
        what="the submission counted",
    )
    auditor = cli.new_key("auditor")
    figures = ok(service.request("GET", "/v1/transparency", key=auditor))
    assert figures["actions"]["total"] == 1 and figures["actions"]["automated_share"] == {"detection": 1.0, "decision": 1.0}
    assert [(v["hashset"], v["version"]) for v in figures["lists"]["in_force"]] == [("test-list", 1)]
    assert figures["lists"]["matched"] == [{"hashset": "test-list", "version": 1, "tickets": 1}]
    assert figures["eu_voluntary_detection"]["serves_eu"] is False
    assert figures["retention"]["evidence_days"] == 365
    table = cli("transparency", "--format", "dsa-2024-2835").stdout
    rows = {(r["section"], r["quantity"], r["breakdown"]): r["value"] for r in csv.DictReader(io.StringIO(table))}
    assert (
        rows[
            (
                "1.4",
                "own_initiative_measures",
                "category=STATEMENT_CATEGORY_PROTECTION_OF_MINORS;detection=automated_hash_matching;restriction=remove",
            )
        ]
        == "1"
    )
    audit = ok(service.request("GET", "/v1/audit?subject=settings", key=auditor))
    assert audit["entries"][0]["after"]["HASHGUARD_DSA_DB_TOKEN"] == "(set)" and TOKEN not in json.dumps(audit)
    listed = [json.loads(line) for line in cli("dsa", "list").stdout.splitlines()]
    assert [(r["state"], r["db_uuid"]) for r in listed] == [("submitted", held["uuid"])]


def test_serving_the_eu_without_a_legal_basis_stops_detection_and_the_figures_say_so(
    cli: Cli, start_service: Callable[..., Service], service_env: dict[str, str]
) -> None:
    service = start_service(HASHGUARD_JURISDICTIONS="EU,GB", expect_ready=False)
    wait_until(lambda: service.request("GET", "/readyz").status == 503, 30, what="not ready")
    metrics = service.request("GET", "/metrics").body.decode()
    assert "hashguard_eu_detection_halted 1.0" in metrics
    assert 'hashguard_tool_active{reason="no_legal_basis",tool="pdq"} 0.0' in metrics  # allowed locally, stopped all the same
    assert 'reason="local_allowance"' not in metrics
    scanned = scan(service, cli.new_key("platform"), encode(draw(11), "JPEG"))
    assert scanned.status == 503  # fail closed: never an unchecked no_match
    auditor = cli.new_key("auditor")
    eu = ok(service.request("GET", "/v1/transparency", key=auditor))["eu_voluntary_detection"]
    assert eu["serves_eu"] is True and eu["detection_halted"] is True and "2021/1232" in eu["detail"]
    report = Cli({**service_env, "HASHGUARD_JURISDICTIONS": "EU,GB"})("transparency", "--format", "eu-2021-1232").stdout
    assert "legal_basis,detection_halted_for_eu,,True" in report
    served = service.request("GET", "/v1/transparency/export?format=eu-2021-1232", key=auditor)
    assert served.status == 200 and served.headers["Content-Type"].startswith("text/csv")
    assert "legal_basis,detection_halted_for_eu,,True" in served.body.decode()
    refused = service.request("GET", "/v1/transparency/export?format=xlsx", key=auditor)
    assert refused.status == 400 and refused.json()["error"]["code"]
