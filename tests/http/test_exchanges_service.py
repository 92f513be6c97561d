"""``hashguard exchanges`` end to end: a source added on the command line against the NCMEC stand-in fills
a list that the running service matches within seconds, a new source entry reaches a match, freshness
shows on /readyz and /metrics, and a reviewer's dismissal goes back to the source as a downvote."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from detector.synthetic import draw, encode
from tests.harness import make_list, ok, scan
from tests.http.inprocess import Cli, Service
from tests.standins.ncmec_hashsharing import PASSWORD, USER, Entry, InThread, NcmecStandIn
from tests.waiting import wait_until


@pytest.mark.slow
def test_exchanges_add_fills_a_list_that_scans_match_and_verdicts_flow_back(
    cli: Cli, start_service: Callable[..., Service], tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_NCMEC_USER", USER)
    monkeypatch.setenv("E2E_NCMEC_PASSWORD", PASSWORD)
    hashes = make_list(cli, tmp_path / "pictures")  # type: ignore[operator]
    seeds = sorted(hashes)
    stand_in = NcmecStandIn()
    threaded = InThread(stand_in)
    with threaded:
        now = int(time.time())

        def first_three() -> None:
            for seed in seeds[:3]:
                stand_in.put(Entry(member="42", id=f"pic{seed}", at=now - 30, fingerprints={"pdq": hashes[seed]}))

        threaded.call(first_three)
        service = start_service(HASHGUARD_EXCHANGES_POLL_S="0.2")
        platform, reviewer = cli.new_key(), cli.new_key("reviewer")
        refused = cli("exchanges", "add", "ncmec", "--kind", "ncmec", "--set", "password=plain-text", check=False)
        assert refused.returncode == 1 and "env:VARIABLE or file:/path" in refused.stderr
        out = cli(
            "exchanges", "add", "ncmec", "--kind", "ncmec", "--interval", "10s",
            "--set", f"environment={stand_in.url}", "--set", "username=env:E2E_NCMEC_USER",
            "--set", "password=env:E2E_NCMEC_PASSWORD", "--set", "settle_s=0",
        ).stdout  # fmt: skip
        assert "added source ncmec" in out
        took = wait_until(lambda: scan(service, platform, encode(draw(seeds[0]))).json()["verdict"] == "match", timeout=30)
        assert took < 30
        assert scan(service, platform, encode(draw(seeds[4]))).json()["verdict"] == "no_match"
        # A new entry at the source reaches a match after the next fetch.
        threaded.call(
            lambda: stand_in.put(Entry(member="42", id="new", at=int(time.time()), fingerprints={"pdq": hashes[seeds[4]]}))
        )
        cli("exchanges", "fetch-now", "ncmec")
        wait_until(
            lambda: scan(service, platform, encode(draw(seeds[4])), content_id="item-new").json()["verdict"] == "match",
            timeout=30,
        )

        shown = cli("exchanges", "show", "ncmec").stdout
        assert "list ncmec-pdq (pdq)" in shown and PASSWORD not in shown and "env:E2E_NCMEC_PASSWORD" in shown
        assert "ncmec\tncmec\tevery 10 s\tok" in cli("exchanges", "list").stdout
        ready = ok(service.request("GET", "/readyz"))
        wait_until(lambda: ok(service.request("GET", "/readyz")).get("exchanges"), timeout=10)
        [fresh] = ok(service.request("GET", "/readyz"))["exchanges"]
        assert fresh["name"] == "ncmec" and fresh["entries_fetched"] >= 4 and fresh["quarantined"] == 0, ready
        metrics = service.request("GET", "/metrics").body.decode()
        assert 'hashguard_exchange_last_page_timestamp_seconds{source="ncmec"}' in metrics

        # The reviewer dismisses the match: a downvote goes back to NCMEC, with a reason, through the outbox.
        claimed = ok(service.post_json("/v1/queue/claim", {}, reviewer))["ticket"]
        ok(
            service.post_json(
                f"/v1/tickets/{claimed['id']}/decision", {"decision": "dismissed", "explanation": "not it"}, reviewer
            )
        )
        wait_until(lambda: bool(stand_in.feedback), timeout=20, what="the downvote reaching the stand-in")
        path, body = stand_in.feedback[0]
        assert path.startswith("/hashsharing/v2/entries/42/pic") and path.endswith("/PDQ/feedback")
        assert b"<negative><reasonIds><guid>" in body
        assert "feedback down on 42-pic" in cli("exchanges", "show", "ncmec").stdout
        assert "Traceback" not in service.log()
