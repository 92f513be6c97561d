"""Hash lists end to end: signed imports through the command line, and running services (real
processes on loopback, one database) that follow every change without a restart.

Lists are made from pictures drawn by ``detector.synthetic``; lookups send their PDQ hashes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from detector.decode import Media
from detector.synthetic import draw, encode
from detector.tools.pdq import PdqTool
from hashsets.manifest import Kind, build_manifest, sign_manifest
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until

PDQ = PdqTool()


@cache
def pdq(seed: int) -> str:
    return PDQ.hash(Media(data=encode(draw(seed)), max_pixels=10_000_000)).value.hex()


def near(seed: int, bits: int) -> str:
    """The picture's hash with ``bits`` low bits flipped: a stand-in for a re-encoded copy."""
    value = bytearray(bytes.fromhex(pdq(seed)))
    for i in range(bits):
        value[-1 - i // 8] ^= 1 << (i % 8)
    return value.hex()


def write_list(path: Path, seeds: list[int], *, ops: dict[int, str] | None = None) -> Path:
    if ops is None:
        rows = ["id,hash,category"] + [f"pic-{s},{pdq(s)},B" for s in seeds]
    else:
        rows = ["op,id,hash"] + [f"{ops[s]},pic-{s},{pdq(s) if ops[s] == 'add' else ''}" for s in seeds]
    path.write_text("\n".join(rows) + "\n")
    return path


def lookup(service: Service, key: str, value: str, content_id: str = "c") -> dict[str, Any]:
    result = service.post_json("/v1/lookup", {"content_id": content_id, "hashes": {"pdq": value}}, key)
    assert result.status == 200, result.body
    return result.json()  # type: ignore[no-any-return]


def verdict(service: Service, key: str, value: str) -> str:
    return str(lookup(service, key, value)["verdict"])


def loaded_versions(service: Service) -> dict[str, int]:
    body = service.request("GET", "/readyz").json()
    return {h["name"]: h["version"] for h in body["index"]["hashsets"]}


def query(migrated_database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(migrated_database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def issuer(cli: Cli, tmp_path: Path) -> Path:
    """A demo issuer key pair; its public key is trusted for 'Test Hotline'."""
    key = tmp_path / "issuer.pem"
    public = cli("hashsets", "sign", "keygen", str(key)).stdout.strip()
    assert "trusted" in cli("hashsets", "trust", "Test Hotline", public, "--actor", "admin-1").stdout
    return key


def signed(cli: Cli, issuer: Path, path: Path, version: str, *extra: str) -> Path:
    out = path.with_name(f"{path.stem}.{issuer.stem}.manifest.json")
    cli(
        "hashsets", "sign", "manifest", str(path), "--key", str(issuer), "--issuer", "Test Hotline",
        "--name", "hotline-pdq", "--tool", "pdq", "--version", version, "--out", str(out), *extra,
    )  # fmt: skip
    return out


def test_signed_imports_verify_and_failures_change_nothing(
    cli: Cli, issuer: Path, tmp_path: Path, migrated_database_url: str
) -> None:
    v1 = write_list(tmp_path / "v1.csv", [1, 2, 3])
    out = cli("hashsets", "import", str(v1), "--manifest", str(signed(cli, issuer, v1, "2026.1")), "--actor", "admin-1")
    assert "as version 1 (full, verified)" in out.stdout

    def state() -> list[tuple[Any, ...]]:
        return [
            tuple(r) for r in query(migrated_database_url, "SELECT version, entry_count FROM hashset_versions ORDER BY id")
        ] + [tuple(r) for r in query(migrated_database_url, "SELECT count(*) FROM hash_entries")]

    before = state()
    v2 = write_list(tmp_path / "v2.csv", [4], ops={4: "add"})
    manifest = signed(cli, issuer, v2, "2026.2", "--kind", "delta", "--base-version", "2026.1")
    outputs = []

    # The file altered after signing (one hex digit, same length): the checksum fails.
    tampered = tmp_path / "tampered.csv"
    text = v2.read_text()
    tampered.write_text(text[:-3] + ("0" if text[-3] != "0" else "1") + text[-2:])
    failed = cli("hashsets", "import", str(tampered), "--manifest", str(manifest), check=False)
    assert failed.returncode == 1 and "SHA-256 differs from the manifest's" in failed.stderr
    outputs.append(failed)

    # The manifest altered after signing: the signature fails.
    altered = json.loads(manifest.read_text())
    altered["entries"] = 2
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    failed = cli("hashsets", "import", str(v2), "--manifest", str(tmp_path / "altered.json"), check=False)
    assert failed.returncode == 1 and "signature does not verify" in failed.stderr
    outputs.append(failed)

    # A correctly signed manifest whose count is wrong.
    wrong_count = build_manifest(
        issuer="Test Hotline", list_name="hotline-pdq", tool="pdq", version="2026.2", kind=Kind.DELTA, base_version="2026.1",
        created=datetime.now(UTC),
        entries=5, sha256=bytes.fromhex(json.loads(manifest.read_text())["sha256"]),
    )  # fmt: skip
    (tmp_path / "count.json").write_text(json.dumps(sign_manifest(wrong_count, issuer.read_bytes())))
    failed = cli("hashsets", "import", str(v2), "--manifest", str(tmp_path / "count.json"), check=False)
    assert failed.returncode == 1 and "holds 1 entries, the manifest says 5" in failed.stderr
    outputs.append(failed)

    # Signed by a key nobody trusts.
    rogue = tmp_path / "rogue.pem"
    cli("hashsets", "sign", "keygen", str(rogue))
    failed = cli(
        "hashsets",
        "import",
        str(v2),
        "--manifest",
        str(signed(cli, rogue, v2, "2026.2", "--kind", "delta", "--base-version", "2026.1")),
        check=False,
    )
    assert failed.returncode == 1 and "does not verify" in failed.stderr
    outputs.append(failed)

    # No manifest and no --allow-unsigned.
    failed = cli("hashsets", "import", str(v2), "--name", "hotline-pdq", "--tool", "pdq", "--kind", "delta", check=False)
    assert failed.returncode == 1 and "--allow-unsigned" in failed.stderr
    outputs.append(failed)

    assert state() == before
    for result in outputs:
        assert all(pdq(s) not in result.stdout + result.stderr for s in (1, 2, 3, 4))

    # The genuine delta verifies; an unsigned one is accepted only when asked, and recorded so.
    assert (
        "as version 2 (delta, 1 added, 0 retracted, verified)"
        in cli("hashsets", "import", str(v2), "--manifest", str(manifest)).stdout
    )
    replay = cli("hashsets", "import", str(v2), "--manifest", str(manifest), check=False)
    assert replay.returncode == 1 and "was already imported" in replay.stderr
    v3 = write_list(tmp_path / "v3.csv", [2], ops={2: "retract"})
    out = cli(
        "hashsets",
        "import",
        str(v3),
        "--name",
        "hotline-pdq",
        "--tool",
        "pdq",
        "--kind",
        "delta",
        "--allow-unsigned",
        "--actor",
        "ops-2",
    )
    assert "as version 3 (delta, 0 added, 1 retracted, unsigned)" in out.stdout

    show = cli("hashsets", "show", "hotline-pdq").stdout
    assert "issuer:     Test Hotline" in show
    lines = {line.split("\t")[0]: line.split("\t") for line in show.splitlines() if "\t" in line}
    assert lines["1"][1:4] == ["full", "-", "2026.1"] and lines["1"][5] == "verified" and lines["1"][6].startswith("ed25519:")
    assert lines["2"][1:4] == ["delta", "1", "2026.2"] and lines["2"][9:] == ["4", "1", "0"]
    assert lines["3 *"][5] == "unsigned" and lines["3 *"][8] == "ops-2" and lines["3 *"][9] == "3"
    listing = cli("hashsets", "list").stdout
    assert "hotline-pdq\tpdq\tactive\t3\t3\tunsigned" in listing
    for text in (show, listing, cli("hashsets", "events").stdout):
        assert all(pdq(s) not in text for s in (1, 2, 3, 4))


def test_export_needs_an_admin_key_and_feedback_exports_per_entry(cli: Cli, tmp_path: Path, migrated_database_url: str) -> None:
    cli("hashsets", "import", str(write_list(tmp_path / "l.csv", [1, 2])), "--name", "l", "--tool", "pdq", "--allow-unsigned")
    refused = cli("hashsets", "export", "l", "--out", str(tmp_path / "x.csv"), check=False)
    assert refused.returncode == 1 and "needs an admin key" in refused.stderr
    cli.env["HASHGUARD_ADMIN_KEY"] = cli.new_key("reviewer")
    assert cli("hashsets", "export", "l", "--out", str(tmp_path / "x.csv"), check=False).returncode == 1
    cli.env["HASHGUARD_ADMIN_KEY"] = cli.new_key("admin")
    cli("hashsets", "export", "l", "--out", str(tmp_path / "x.csv"))
    exported = (tmp_path / "x.csv").read_text().splitlines()
    assert exported == ["id,hash,category,scheme", f"pic-1,{pdq(1)},B,iwf", f"pic-2,{pdq(2)},B,iwf"]
    assert (tmp_path / "x.csv").stat().st_mode & 0o777 == 0o600
    assert "export" in cli("hashsets", "events", "l").stdout

    [row] = query(migrated_database_url, "SELECT id FROM hash_entries WHERE entry_id = 'pic-2'")
    query(
        migrated_database_url,
        "INSERT INTO hash_entry_feedback (entry_row, reviewer, note) VALUES ($1, 'r1', 'a drawing of a cat')",
        row["id"],
    )
    assert cli("hashsets", "feedback", "l").stdout.splitlines()[1].startswith("l,pic-2,1,1,")


@pytest.mark.slow
def test_every_replica_picks_up_a_new_version_within_5_seconds(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    cli("hashsets", "import", str(write_list(tmp_path / "v1.csv", [1, 2])), "--name", "l", "--tool", "pdq", "--allow-unsigned")
    # The fallback poll is far away: only LISTEN/NOTIFY can explain a pickup within seconds.
    first = start_service(HASHGUARD_RELOAD_INTERVAL_S="300")
    second = start_service(HASHGUARD_RELOAD_INTERVAL_S="300")
    key = cli.new_key()
    assert verdict(second, key, pdq(5)) == "no_match"

    cli("hashsets", "import", str(write_list(tmp_path / "v2.csv", [5], ops={5: "add"})),
        "--name", "l", "--tool", "pdq", "--kind", "delta", "--allow-unsigned")  # fmt: skip
    took = wait_until(lambda: verdict(second, key, pdq(5)) == "match", timeout=5.0)
    assert took < 5.0
    wait_until(lambda: verdict(first, key, pdq(5)) == "match", timeout=5.0)
    assert loaded_versions(first) == loaded_versions(second) == {"l": 2}
    assert [m["hashset_version"] for m in lookup(second, key, pdq(1))["matches"]] == [2]


@pytest.mark.slow
def test_scans_never_fail_or_miss_while_versions_are_swapped(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    cli("hashsets", "import", str(write_list(tmp_path / "v1.csv", [1, 2, 3])), "--name", "l", "--tool", "pdq", "--allow-unsigned")
    service = start_service(HASHGUARD_RELOAD_INTERVAL_S="1")
    key = cli.new_key()
    image = encode(draw(1))  # entry pic-1 is in every version below
    stop = threading.Event()
    outcomes: list[tuple[int, str]] = []

    def scan_forever() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            if i % 5:
                result = service.post_json("/v1/lookup", {"content_id": f"c{i}", "hashes": {"pdq": near(1, 3)}}, key)
            else:
                result = service.request("POST", f"/v1/scan?content_id=s{i}", image, key, Content_Type="image/png")
            entry = "+".join(m["entry_id"] for m in result.json().get("matches", [])) if result.status == 200 else ""
            outcomes.append((result.status, entry))

    scanner = threading.Thread(target=scan_forever)
    scanner.start()
    try:
        changes: list[tuple[tuple[str, ...], int]] = [
            (("import", str(write_list(tmp_path / "d2.csv", [4], ops={4: "add"})), "--kind", "delta"), 2),
            (("import", str(write_list(tmp_path / "d3.csv", [2], ops={2: "retract"})), "--kind", "delta"), 3),
            (("rollback", "l", "1"), 1),
            (("import", str(write_list(tmp_path / "f4.csv", [1, 5, 6])), "--kind", "full"), 4),
        ]
        for args, version in changes:
            start = len(outcomes)
            extra = ("--name", "l", "--tool", "pdq", "--allow-unsigned") if args[0] == "import" else ()
            cli("hashsets", *args, *extra)
            wait_until(lambda v=version: loaded_versions(service) == {"l": v})  # type: ignore[misc]
            wait_until(lambda s=start: len(outcomes) > s + 3)  # type: ignore[misc]
        # Enough answers in all, however slow a loaded machine makes each (a count, not a time).
        wait_until(lambda: len(outcomes) >= 20)
    finally:
        stop.set()
        scanner.join(timeout=30)
    assert len(outcomes) >= 20
    assert [o for o in outcomes if o != (200, "pic-1")] == []


@pytest.mark.slow
def test_shadow_lists_thresholds_allow_list_disables_quarantine_and_coverage(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path, migrated_database_url: str
) -> None:
    cli(
        "hashsets",
        "import",
        str(write_list(tmp_path / "a.csv", [1, 2, 3])),
        "--name",
        "main",
        "--tool",
        "pdq",
        "--allow-unsigned",
    )
    cli("hashsets", "import", str(write_list(tmp_path / "s.csv", [4])), "--name", "trial", "--tool", "pdq", "--allow-unsigned")
    md5_list = tmp_path / "m.txt"
    md5_list.write_text("0" * 31 + "1\n" + "0" * 31 + "2\n")
    cli("hashsets", "import", str(md5_list), "--name", "md5-list", "--tool", "md5", "--allow-unsigned")
    cli("hashsets", "status", "trial", "shadow", "--reason", "trying a new source")
    service = start_service(HASHGUARD_TOOLS="pdq,phash", HASHGUARD_FLOOD_MAX_MATCHES="3", HASHGUARD_RELOAD_INTERVAL_S="1")
    key = cli.new_key()

    # Shadow: recorded and counted, never answered.
    shadow = lookup(service, key, pdq(4))
    assert (shadow["verdict"], shadow["matches"]) == ("no_match", [])
    [row] = query(migrated_database_url, "SELECT hashset, hashset_version, shadow, entry_id FROM scan_matches")
    assert tuple(row) == ("trial", 1, True, "pic-4")
    metrics = service.request("GET", "/metrics").body.decode()
    assert 'hashguard_shadow_matches_total{hashset="trial",tool="pdq"} 1.0' in metrics
    assert 'hashguard_coverage_gap_entries{hashset="md5-list",tool="md5"} 2.0' in metrics
    same_tools = Cli({**cli.env, "HASHGUARD_TOOLS": "pdq,phash"})
    assert "coverage gap: 2 md5 entries" in same_tools("hashsets", "show", "md5-list").stdout
    assert "(coverage gap: no enabled tool)" in same_tools("hashsets", "list").stdout
    index = service.request("GET", "/readyz").json()["index"]
    assert index["coverage_gaps"] == [{"name": "md5-list", "version": 1, "tool": "md5", "entries": 2}]
    readyz = index["hashsets"]
    assert {h["name"]: h["status"] for h in readyz} == {"main": "active", "trial": "shadow"}

    # Per-list threshold: 8 bits away matches at the default 31, not at 4.
    assert verdict(service, key, near(1, 8)) == "match"
    cli("hashsets", "threshold", "main", "4", "--reason", "tighter for this list")
    wait_until(lambda: verdict(service, key, near(1, 8)) == "no_match")
    assert verdict(service, key, near(1, 2)) == "match"

    # Allow-list: the benign picture's hash (read from stdin) stops its matches, and near copies'.
    cli("hashsets", "allow", "pdq", "-", "--reason", "a stock photo", input=pdq(2) + "\n")
    wait_until(lambda: verdict(service, key, pdq(2)) == "no_match")
    assert verdict(service, key, near(2, 3)) == "no_match"
    assert pdq(2) not in cli("hashsets", "allowed").stdout

    # Disabling one entry.
    cli("hashsets", "disable", "main", "pic-3", "--reason", "issuer confirmed a wrong entry")
    wait_until(lambda: verdict(service, key, pdq(3)) == "no_match")

    # Flood: more than 3 distinct contents within the window, at most 2 counted per tenant, quarantine
    # the entry; still a match, flagged for review. (This key, of the default tenant, already sent "c".)
    cli("tenants", "create", "second-platform")
    other = cli("keys", "create", "--role", "platform", "--tenant", "second-platform").stdout.strip()
    sent = [(key, "f-1"), (key, "f-2"), (other, "f-3"), (other, "f-4")]
    answers = [lookup(service, k, pdq(1), content_id) for k, content_id in sent]
    assert all(a["verdict"] == "match" and "quarantined" not in a["matches"][0] for a in answers)
    flags = [
        r["quarantined"]
        for r in query(migrated_database_url, "SELECT quarantined FROM scan_matches WHERE entry_id = 'pic-1' ORDER BY id")
    ]
    assert flags[-1] is True and flags.count(True) >= 1
    assert "hashguard_quarantined_entries 1.0" in service.request("GET", "/metrics").body.decode()
    assert "pic-1\tsince" in cli("hashsets", "show", "main").stdout


@pytest.mark.slow
def test_look_back_rechecks_recent_uploads_against_added_hashes_only_when_enabled(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path, migrated_database_url: str
) -> None:
    cli("hashsets", "import", str(write_list(tmp_path / "v1.csv", [1])), "--name", "l", "--tool", "pdq", "--allow-unsigned")
    service = start_service(HASHGUARD_LOOKBACK_DAYS="7")
    key = cli.new_key()
    assert verdict(service, key, near(6, 2)) == "no_match"
    assert (
        service.request("POST", "/v1/scan?content_id=upload-7", encode(draw(7)), key, Content_Type="image/png").json()["verdict"]
        == "no_match"
    )
    assert [r["content_id"] for r in query(migrated_database_url, "SELECT content_id FROM scan_hashes ORDER BY scanned_at")] == [
        "c",
        "upload-7",
    ]

    lookback = Cli({**cli.env, "HASHGUARD_LOOKBACK_DAYS": "7"})
    delta = write_list(tmp_path / "v2.csv", [6, 7], ops={6: "add", 7: "add"})
    out = lookback("hashsets", "import", str(delta), "--name", "l", "--tool", "pdq", "--kind", "delta", "--allow-unsigned")
    assert "look-back: 2 match(es) found on re-check" in out.stdout
    found = query(
        migrated_database_url,
        "SELECT content_id, entry_id, hashset_version, found_on_recheck FROM scan_matches ORDER BY entry_id",
    )
    assert [tuple(r) for r in found] == [("c", "pic-6", 2, True), ("upload-7", "pic-7", 2, True)]

    # Off (the default): nothing of the uploads is kept, and what was kept is purged.
    service.stop()
    plain = start_service()
    assert verdict(plain, key, near(6, 2)) == "match"
    wait_until(lambda: query(migrated_database_url, "SELECT count(*) AS n FROM scan_hashes")[0]["n"] == 0)


@pytest.mark.slow
def test_a_quarantined_entry_is_never_actioned_automatically(
    cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    cli(
        "hashsets",
        "import",
        str(write_list(tmp_path / "l.csv", [1, 2])),
        "--name",
        "auto-list",
        "--tool",
        "pdq",
        "--allow-unsigned",
    )
    assert "auto_action (remove)" in cli("takedown", "policy", "auto-list", "--auto-action", "--action", "remove").stdout
    service = start_service(HASHGUARD_FLOOD_MAX_MATCHES="1")
    cli("tenants", "create", "second-platform")
    key, reviewer = cli.new_key(), cli.new_key("reviewer")
    other = cli("keys", "create", "--role", "platform", "--tenant", "second-platform").stdout.strip()

    def ticket_state(content_id: str, key: str) -> str:
        answer = service.post_json("/v1/lookup", {"content_id": content_id, "hashes": {"pdq": pdq(1)}}, key).json()
        assert answer["verdict"] == "match"
        ticket = service.request("GET", f"/v1/tickets/{answer['ticket_id']}", key=reviewer)
        assert ticket.status == 200, ticket.body
        return str(ticket.json()["state"])

    assert ticket_state("first-upload", key) == "actioned"  # the list's policy acts automatically
    assert ticket_state("again-from-the-same-key", key) == "actioned"  # one tenant alone never floods
    assert ticket_state("second-upload", other) == "open"  # a second tenant: over the flood limit, a reviewer decides
    assert "pic-1\tsince" in cli("hashsets", "show", "auto-list").stdout
