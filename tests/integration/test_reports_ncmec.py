"""Filing CyberTipline reports against a local stand-in of the hotline that fails on request: through
every fault and a kill of the job between each pair of calls, exactly one finished report per
confirmed item, the evidence fetched signed, checked and streamed, nothing half-filed left behind."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import pytest
from lxml import etree
from prometheus_client import CollectorRegistry, Counter, Gauge

from detector.match import Match
from kernel import keystore
from kernel.keys import DEFAULT_TENANT_ID, Role, new_key
from takedown import decision_store, matching, outbox_store
from takedown.config import TakedownConfig
from takedown.reports import job, ncmec, store
from takedown.reports.case import Reporter, Review, Uploader
from takedown.reports.records import OPEN, ReportRecord, Status
from takedown.tickets import Actor, DecisionInput
from takedown.workflow import Action, State
from tests.metrics_reading import sample_value
from tests.standins.ncmec import PASSWORD, USERNAME, NcmecStandIn, PlatformStandIn
from tests.waiting import eventually

CONFIG = TakedownConfig()
SECRET = "platform-secret-of-at-least-32-bytes!!"
FILE = b"\x89PNG synthetic test bytes, drawn by the test, not media" * 40


class Killed(BaseException):
    """The job's process dying between two calls (a BaseException: nothing in the job catches it)."""


@pytest.fixture
def hotline() -> Iterator[NcmecStandIn]:
    standin = NcmecStandIn()
    yield standin
    standin.close()


@pytest.fixture
def platform() -> Iterator[PlatformStandIn]:
    standin = PlatformStandIn(SECRET)
    standin.files["item.png"] = FILE
    yield standin
    standin.close()


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def metrics() -> tuple[job.ReportMetrics, CollectorRegistry]:
    r = CollectorRegistry()
    m = job.ReportMetrics(
        submissions=Counter("hashguard_report_submissions", "s", ["hotline", "outcome"], registry=r),
        open=Gauge("hashguard_reports_open", "o", ["hotline"], registry=r),
        oldest_unfinished=Gauge("hashguard_report_oldest_unfinished_timestamp_seconds", "o", ["hotline"], registry=r),
        errors=Counter("hashguard_hotline_errors", "e", ["hotline", "code"], registry=r),
    )
    return m, r


def filer(
    pool: asyncpg.Pool,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    *,
    evidence: bool = False,
    checkpoint: job.Checkpoint | None = None,
    report_metrics: job.ReportMetrics | None = None,
    max_attempts: int = 12,
) -> job.NcmecFiler:
    config = job.NcmecConfig(
        url=hotline.url,
        username=USERNAME,
        password=PASSWORD,
        reporter=Reporter(email="safety@example.test", first_name="Pat", last_name="Lee"),
        evidence_hosts=("127.0.0.1",) if evidence else (),
        webhook_secret=SECRET,
        timeout_s=5.0,
        max_attempts=max_attempts,
        backoff_base_s=0.0,
        backoff_cap_s=0.0,
        lease_s=30.0,
    )
    return job.NcmecFiler(pool=pool, session=session, config=config, checkpoint=checkpoint, metrics=report_metrics)


async def reviewer(conn: asyncpg.Connection) -> Actor:
    made = new_key()
    return Actor(key_id=await keystore.insert_key(conn, made, Role.REVIEWER, "r"), name=made.prefix)


async def confirmed(
    conn: asyncpg.Connection,
    who: Actor,
    *,
    content_url: str | None = None,
    file: bytes = FILE,
    review: Review | None = None,
) -> uuid.UUID:
    """A hash-matched item a reviewer actioned: its upload hashes recorded at scan time."""
    hashes = {"md5": hashlib.md5(file).digest(), "sha256": hashlib.sha256(file).digest(), "pdq": bytes(range(32))}
    ticket = await matching.open_for_matches(
        conn,
        tenant_id=DEFAULT_TENANT_ID,
        scan_id=uuid.uuid4(),
        content_id=f"c-{uuid.uuid4()}",
        content_url=content_url,
        matches=[Match(entry_row=1, hashset="known", hashset_version=2, entry_id="e1", tool="pdq", tool_version="1", distance=3)],
        api_key_id=None,
        config=CONFIG,
        upload_hashes=hashes,
    )
    await conn.execute(
        "UPDATE tickets SET lease_key_id = $2, lease_key_prefix = $3, lease_expires_at = now() + interval '1 hour',"
        " state = 'in_review' WHERE id = $1",
        ticket.ticket_id,
        who.key_id,
        who.name,
    )
    await decision_store.decide(
        conn,
        ticket.ticket_id,
        who,
        DecisionInput(to=State.ACTIONED, action=Action.REMOVE, explanation="confirmed"),
        CONFIG,
        override=False,
        review=review,
    )
    return ticket.ticket_id


async def requested(conn: asyncpg.Connection, ticket_id: uuid.UUID, who: Actor) -> ReportRecord:
    record, created = await store.request_report(conn, ticket_id, who, "ncmec", CONFIG)
    assert created
    return record


async def drain(f: job.NcmecFiler, conn: asyncpg.Connection, report_id: uuid.UUID, limit_s: float = 60) -> ReportRecord:
    """Run filing passes until the report is finished, failed or retracted."""

    async def done() -> bool:
        await conn.execute("UPDATE hotline_reports SET next_attempt_at = now() WHERE id = $1", report_id)
        await f.run_once()
        return (await store.get_report(conn, report_id)).status not in OPEN

    await eventually(done, limit_s, interval=0.01, what="the report reaching a final state")
    return await store.get_report(conn, report_id)


def assert_filed_once(hotline: NcmecStandIn, record: ReportRecord, *, files: int) -> None:
    finished = hotline.finished()
    assert len(finished) == 1, hotline.by_status()
    assert record.status is Status.FINISHED
    assert record.hotline_reference == str(finished[0].id)
    assert len(finished[0].files) == files
    assert len(finished[0].fileinfos) == files
    # Nothing else is left open at the hotline: every other report was retracted (or never existed).
    assert set(hotline.by_status()) <= {"finished", "retracted", "expired"}, hotline.by_status()


async def test_a_hash_only_report_is_filed_once_and_a_second_request_answers_the_same_record(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, hotline: NcmecStandIn
) -> None:
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url="https://photos.example/p/1")
    record = await requested(conn, ticket_id, who)
    again, created = await store.request_report(conn, ticket_id, who, "ncmec", CONFIG)
    assert not created and again.id == record.id
    m, registry = metrics()
    f = filer(pool, session, hotline, report_metrics=m)
    record = await drain(f, conn, record.id)
    assert_filed_once(hotline, record, files=0)
    assert record.evidence is not None and record.evidence.startswith("hash-only")
    doc = etree.fromstring(hotline.finished()[0].document)
    info = doc.findtext("additionalInfo") or ""
    assert hashlib.md5(FILE).hexdigest() in info and hashlib.sha256(FILE).hexdigest() in info
    assert "matched list 'known' version 2" in info
    assert doc.findtext("internetDetails/webPageIncident/url") == "https://photos.example/p/1"
    # The stand-in validated it against our schema; our own check agrees.
    ncmec.own_schema().check(hotline.finished()[0].document)
    # A third request, after the filing, still answers the one record.
    third, created = await store.request_report(conn, ticket_id, who, "ncmec", CONFIG)
    assert not created and third.status is Status.FINISHED
    # Every call's Request-ID is kept.
    calls = await store.report_calls(conn, record.id)
    assert [c["call"] for c in calls] == ["submit", "finish"]
    assert all(c["request_id"] for c in calls)
    await f.refresh_gauges()
    assert sample_value(registry, "hashguard_report_submissions_total", hotline="ncmec", outcome="finished") == 1
    assert sample_value(registry, "hashguard_reports_open", hotline="ncmec") == 0
    assert sample_value(registry, "hashguard_report_oldest_unfinished_timestamp_seconds", hotline="ncmec") == 0


async def test_evidence_is_fetched_signed_checked_and_streamed_and_only_hashes_kept(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
) -> None:
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url=platform.url("item.png"), review=Review(file_viewed=True))
    await conn.execute(
        "INSERT INTO ticket_uploaders (ticket_id, account_id, upload_ip, upload_port) VALUES ($1, 'acct-9', '198.51.100.4', 4431)",
        ticket_id,
    )
    record = await drain(filer(pool, session, hotline, evidence=True), conn, (await requested(conn, ticket_id, who)).id)
    assert_filed_once(hotline, record, files=1)
    assert platform.fetches == [("item.png", True)]
    [(_, stored)] = hotline.finished()[0].files.items()
    assert stored == {"md5": hashlib.md5(FILE).hexdigest(), "size": len(FILE)}
    details = etree.fromstring(hotline.finished()[0].fileinfos[0])
    assert details.findtext("fileViewedByEsp") == "true" and details.findtext("exifViewedByEsp") == "false"
    hashes = {h.get("hashType"): h.text for h in details.findall("originalFileHash")}
    assert hashes == {"MD5": hashlib.md5(FILE).hexdigest(), "SHA256": hashlib.sha256(FILE).hexdigest()}
    assert details.findtext("details/nameValuePair/name") == "PDQ"
    assert details.findtext("ipCaptureEvent/ipAddress") == "198.51.100.4"
    report = etree.fromstring(hotline.finished()[0].document)
    assert report.findtext("personOrUserReported/espIdentifier") == "acct-9"
    assert record.evidence == "file"


async def test_a_file_whose_hash_differs_from_the_scan_is_not_uploaded(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
) -> None:
    platform.files["swapped.png"] = FILE + b"changed"
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url=platform.url("swapped.png"))
    record = await drain(filer(pool, session, hotline, evidence=True), conn, (await requested(conn, ticket_id, who)).id)
    assert_filed_once(hotline, record, files=0)
    assert [c for c, *_ in hotline.calls if c != "xsd"] == ["submit", "finish"]
    assert record.evidence is not None and "differs from the one recorded at scan time" in record.evidence


FAULTS = [
    ("submit", "http500"),
    ("submit", "code1000"),
    ("submit", "drop"),
    ("upload", "drop"),
    ("upload", "apply_drop"),
    ("upload", "code1000"),
    ("fileinfo", "http500"),
    ("fileinfo", "expired"),
    ("finish", "drop"),
    ("finish", "apply_drop"),
    ("finish", "expired"),
    ("finish", "code1000"),
]


@pytest.mark.parametrize(("call", "fault"), FAULTS)
async def test_every_fault_ends_in_exactly_one_finished_report(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
    call: str,
    fault: str,
) -> None:
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url=platform.url("item.png"))
    hotline.fail(call, fault)
    record = await drain(filer(pool, session, hotline, evidence=True), conn, (await requested(conn, ticket_id, who)).id)
    assert_filed_once(hotline, record, files=1)
    assert record.attempts >= 2 or (call, fault) == ("finish", "apply_drop")


@pytest.mark.parametrize("step", ["submit", "upload", "fileinfo", "finish"])
async def test_a_kill_between_any_two_calls_never_leaves_a_duplicate_or_an_orphan(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
    step: str,
) -> None:
    async def die(at: str, report: ReportRecord) -> None:
        if at == step:
            raise Killed(at)

    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url=platform.url("item.png"))
    record = await requested(conn, ticket_id, who)
    with pytest.raises(Killed):
        await filer(pool, session, hotline, evidence=True, checkpoint=die).run_once()
    # The dead process's row keeps its lease and the report id; once the lease runs out another
    # replica (a fresh filer) takes it up.
    left = await store.get_report(conn, record.id)
    assert left.status is Status.SUBMITTING and left.hotline_reference is not None
    await conn.execute("UPDATE hotline_reports SET lease_expires_at = now() - interval '1 second' WHERE id = $1", record.id)
    record = await drain(filer(pool, session, hotline, evidence=True), conn, record.id)
    assert_filed_once(hotline, record, files=1)
    # Before finish, the dead run's report was retracted; after it, the first report is the one filed.
    assert hotline.by_status() == ({"finished": 1} if step == "finish" else {"finished": 1, "retracted": 1})


async def test_two_replicas_never_run_one_report_twice(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
) -> None:
    who = await reviewer(conn)
    ids = [await confirmed(conn, who, content_url=platform.url("item.png")) for _ in range(3)]
    records = [await requested(conn, t, who) for t in ids]
    a, b = filer(pool, session, hotline, evidence=True), filer(pool, session, hotline, evidence=True)
    attempted = await asyncio.gather(a.run_once(), b.run_once())
    assert sum(attempted) == 3
    done = [await store.get_report(conn, r.id) for r in records]
    assert all(r.status is Status.FINISHED for r in done)
    assert hotline.by_status() == {"finished": 3}
    assert {r.hotline_reference for r in done} == {str(f.id) for f in hotline.finished()}


async def test_an_authentication_failure_stops_with_an_alert_and_retracts_what_it_opened(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url=platform.url("item.png"))
    hotline.fail("upload", "auth")
    m, registry = metrics()
    with caplog.at_level(logging.ERROR, logger="takedown.reports.job"):
        record = await drain(
            filer(pool, session, hotline, evidence=True, report_metrics=m), conn, (await requested(conn, ticket_id, who)).id
        )
    assert record.status is Status.RETRACTED and record.last_code == 2000
    assert hotline.by_status() == {"retracted": 1}
    assert any("ALERT" in r.getMessage() for r in caplog.records)
    assert sample_value(registry, "hashguard_hotline_errors_total", hotline="ncmec", code="2000") == 1
    assert sample_value(registry, "hashguard_report_submissions_total", hotline="ncmec", outcome="retracted") == 1
    # An operator fixes the credentials and queues it again: it is filed once.
    again = await store.retry_report(conn, record.id, who)
    assert again.status is Status.QUEUED
    record = await drain(filer(pool, session, hotline, evidence=True), conn, record.id)
    assert record.status is Status.FINISHED and len(hotline.finished()) == 1


async def test_retries_run_out_into_a_retracted_report_with_the_last_error(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, hotline: NcmecStandIn
) -> None:
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who)
    hotline.fail("finish", *["code1000"] * 3)
    record = await drain(filer(pool, session, hotline, max_attempts=3), conn, (await requested(conn, ticket_id, who)).id)
    assert record.status is Status.RETRACTED and record.last_code == 1000 and record.attempts == 3
    assert "Request-ID" in (record.last_error or "")
    assert hotline.by_status() == {"retracted": 3}


async def test_the_report_reads_the_uploader_the_platform_sent_and_never_claims_a_view(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, hotline: NcmecStandIn
) -> None:
    """An unreviewed item (no review flags) says fileViewedByEsp false; the notice's uploader is the reported user."""
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who)
    from takedown.reports import evidence_store

    await evidence_store.record_uploader(
        conn, ticket_id, Uploader(account_id="acct-1", screen_name="someone", ip="2001:db8::7", port=443)
    )
    case = await store.load_case(conn, ticket_id)
    assert case.review.file_viewed is False
    details = etree.fromstring(ncmec.build_file_details(case, report_id="1", file_id="f", now=case.detected_at, mou_signed=False))
    assert details.findtext("fileViewedByEsp") == "false" and details.findtext("exifViewedByEsp") == "false"
    assert details.findtext("ipCaptureEvent/ipAddress") == "2001:db8::7"
    # The outbox action of the decision is independent of the report.
    assert (await outbox_store.outbox_counts(conn)).pending == 1


async def test_the_one_window_left_an_unanswered_submit_is_never_finished(
    pool: asyncpg.Pool, conn: asyncpg.Connection, session: aiohttp.ClientSession, hotline: NcmecStandIn
) -> None:
    """/submit lands but its answer is lost: hashguard never learns that report's id, so it stays
    unfinished at the hotline (which deletes unfinished reports); the item is still filed exactly once."""
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who)
    hotline.fail("submit", "apply_drop")
    record = await drain(filer(pool, session, hotline), conn, (await requested(conn, ticket_id, who)).id)
    assert record.status is Status.FINISHED
    assert hotline.by_status() == {"finished": 1, "open": 1}


async def test_a_viral_item_is_filed_in_the_batched_form(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    session: aiohttp.ClientSession,
    hotline: NcmecStandIn,
    platform: PlatformStandIn,
) -> None:
    who = await reviewer(conn)
    ticket_id = await confirmed(conn, who, content_url=platform.url("item.png"), review=Review(viral=True, file_viewed=True))
    await conn.execute("INSERT INTO ticket_uploaders (ticket_id, account_id) VALUES ($1, 'acct-viral')", ticket_id)
    record = await drain(filer(pool, session, hotline, evidence=True), conn, (await requested(conn, ticket_id, who)).id)
    assert_filed_once(hotline, record, files=1)
    report = etree.fromstring(hotline.finished()[0].document)
    assert report.find("batchedReport") is not None and report.find("internetDetails") is None
    assert [str(c.tag) for c in report.find("personOrUserReported")] == ["espIdentifier"]  # type: ignore[union-attr]
    details = etree.fromstring(hotline.finished()[0].fileinfos[0])
    assert details.find("originalFileHash") is None and details.find("fileAnnotations/viral") is not None
