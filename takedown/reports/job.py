"""The durable job that files CyberTipline reports: submit → upload (when evidence) → fileinfo per
file → finish, as one unit per report. An I/O edge (aiohttp's client, the reports store).

Exactly once, across crashes and replicas:
- A report row is claimed with a lease (``FOR UPDATE SKIP LOCKED``); every step that persists
  progress checks the lease token, so a replica that lost its lease stops before its next call.
- The CyberTipline report id is written the moment ``/submit`` answers. A run that finds one
  already written (the previous run died, or failed retryably, between two calls) first retracts
  it: ``0``/``5101``/``5001`` mean nothing of it will be filed and the report is filed afresh;
  ``5102 Report already finished`` means the previous run's ``/finish`` landed, and the row is
  marked finished without filing again. An open report is never continued by a later run: its
  uploads may have landed unanswered, and a retract is the only answer that is certain.
- The one window this cannot close is a process killed after ``/submit`` reached NCMEC and before
  its answer was stored: that report id is unknown, the report stays unfinished and NCMEC deletes it
  (24 h after opening); it is never finished, so it is not a second filed report.

Retries: no answer, HTTP 5xx and 1xxx codes are retried with backoff (the whole unit, after the
retract above); 2000/3000/3100/3300 (and HTTP 401/403) stop with an ALERT in the log; 4xxx stop with
the hotline's message kept. A report that cannot be finished is retracted. Every call's
``Request-ID`` is logged and stored with the call.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from prometheus_client import Counter, Gauge

from kernel.settings import Settings
from takedown import webhooks
from takedown.jobs import Waker
from takedown.reports import evidence, ncmec, store
from takedown.reports.case import ReportCase, Reporter
from takedown.reports.ncmec import Answer, DocumentInvalid, Outcome, Schema
from takedown.reports.records import ReportRecord, Status

log = logging.getLogger(__name__)

HOTLINE = "ncmec"
_GAUGE_INTERVAL_S = 15.0
_SCHEMA_TTL_S = 24 * 3600.0
_CHUNK = 64 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class NcmecConfig:
    url: str | None
    username: str | None
    password: str | None
    reporter: Reporter | None
    evidence_hosts: tuple[str, ...] = ()
    mou_signed: bool = False
    webhook_secret: str | None = None  # the default tenant's signing secret (HASHGUARD_WEBHOOK_SECRET)
    timeout_s: float = 30.0
    max_attempts: int = 12
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 900.0
    lease_s: float = 600.0
    poll_s: float = 2.0
    batch: int = 5
    max_file_bytes: int = 256 << 20

    def problem(self) -> str | None:
        """Why hashguard cannot file with NCMEC; None when it can."""
        if not self.url:
            return "HASHGUARD_NCMEC_URL is not set (the test service is https://exttest.cybertip.org/ispws)"
        if not self.username or not self.password:
            return "HASHGUARD_NCMEC_USERNAME and HASHGUARD_NCMEC_PASSWORD must be set"
        if self.reporter is None:
            return "HASHGUARD_REPORTER_EMAIL is not set: NCMEC requires the reporting person's email"
        parts = urlsplit(self.url)
        if parts.scheme != "https" and not (parts.scheme == "http" and evidence.is_loopback(parts.hostname or "")):
            return "HASHGUARD_NCMEC_URL must use https (plain http only to a loopback stand-in): reports carry evidence and credentials"
        return None


def config_from_settings(settings: Settings) -> NcmecConfig:
    """The filing job's configuration (the service's and the command line's)."""
    reporter = (
        Reporter(
            email=settings.reporter_email,
            first_name=settings.reporter_first_name,
            last_name=settings.reporter_last_name,
            phone=settings.reporter_phone,
            company_template=settings.reporter_company,
            terms_of_service=settings.reporter_tos_url,
            legal_url=settings.reporter_legal_url,
        )
        if settings.reporter_email
        else None
    )
    return NcmecConfig(
        url=settings.ncmec_url,
        username=settings.ncmec_username,
        password=settings.ncmec_password,
        reporter=reporter,
        evidence_hosts=settings.evidence_hosts,
        mou_signed=settings.ncmec_mou_signed,
        webhook_secret=settings.webhook_secret,
        timeout_s=settings.ncmec_timeout_s,
        max_attempts=settings.ncmec_max_attempts,
        backoff_base_s=settings.ncmec_backoff_s,
        lease_s=settings.report_lease_s,
        max_file_bytes=settings.max_upload_bytes,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportMetrics:
    submissions: Counter  # labels: hotline, outcome (finished, retry, failed, retracted)
    open: Gauge  # labels: hotline
    oldest_unfinished: Gauge  # labels: hotline
    errors: Counter  # labels: hotline, code


class _Stop(Exception):
    """A call failed: what it means and what it said."""

    def __init__(self, outcome: Outcome, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.code = code


@dataclass(slots=True)
class _Evidence:
    file: IO[bytes] | None
    note: str
    md5: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class _Called:
    answer: Answer
    outcome: Outcome


Checkpoint = Callable[[str, ReportRecord], Awaitable[None]]
"""Called between two calls (after "submit", "upload", "fileinfo", "finish"): the tests' kill points."""


class NcmecFiler:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        config: NcmecConfig,
        metrics: ReportMetrics | None = None,
        waker: Waker | None = None,
        checkpoint: Checkpoint | None = None,
        categories: store.EntryCategories | None = None,
    ) -> None:
        self._pool = pool
        self._session = session
        self._config = config
        self._metrics = metrics
        self._waker = waker or Waker()
        self._checkpoint = checkpoint
        self._categories = categories
        self._schema: tuple[float, Schema] | None = None
        pair = f"{config.username or ''}:{config.password or ''}".encode()
        self._authorization = "Basic " + base64.b64encode(pair).decode()

    # ---------------------------------------------------------------- the loop

    async def run_once(self) -> int:
        """Claim due reports and file each; return how many were attempted."""
        if self._config.problem() is not None:
            return 0
        async with self._pool.acquire() as conn:
            claimed = await store.claim_reports(conn, self._config.batch, self._config.lease_s, HOTLINE)
        for report in claimed:
            await self._run(report)
        return len(claimed)

    async def run(self) -> None:
        last_gauges = 0.0
        while True:
            try:
                done = await self.run_once()
                if self._metrics is not None and time.monotonic() - last_gauges > _GAUGE_INTERVAL_S:
                    await self.refresh_gauges()
                    last_gauges = time.monotonic()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("hotline report pass failed, will retry: %s", exc)
                done = 0
            if done == 0:
                await self._waker.wait(self._config.poll_s)

    async def refresh_gauges(self) -> None:
        if self._metrics is None:
            return
        async with self._pool.acquire() as conn:
            gauges = await store.open_report_gauges(conn)
        for hotline in {HOTLINE, *gauges}:
            found = gauges.get(hotline)
            self._metrics.open.labels(hotline=hotline).set(found.count if found else 0)
            oldest = found.oldest.timestamp() if found and found.oldest else 0
            self._metrics.oldest_unfinished.labels(hotline=hotline).set(oldest)

    def _count_error(self, code: int | None, status: int | None) -> None:
        if self._metrics is not None:
            label = str(code) if code is not None else (f"http_{status}" if status else "network")
            self._metrics.errors.labels(hotline=HOTLINE, code=label).inc()

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.submissions.labels(hotline=HOTLINE, outcome=outcome).inc()

    # ---------------------------------------------------------------- one report

    async def _run(self, report: ReportRecord) -> None:
        token = report.lease_token
        assert token is not None
        try:
            await self._file(report, token)
        except _Stop as stop:
            await self._stopped(report, token, stop)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database or the disk failed mid-flow: the row keeps its lease and is taken up again
            # when the lease runs out, by this replica or another, through the retract-first resume.
            log.error("ncmec report %s interrupted: %s", report.id, exc)

    async def _stopped(self, report: ReportRecord, token: uuid.UUID, stop: _Stop) -> None:
        async with self._pool.acquire() as conn:
            current = await store.get_report(conn, report.id)
        if stop.outcome in (Outcome.RETRY, Outcome.EXPIRED) and current.attempts < self._config.max_attempts:
            delay = webhooks.backoff_s(current.attempts, self._config.backoff_base_s, self._config.backoff_cap_s)
            async with self._pool.acquire() as conn:
                await store.reschedule(conn, current, token, delay_s=delay, error=str(stop), code=stop.code)
            log.warning("ncmec report %s (ticket %s): %s; retry in %.1f s", report.id, report.ticket_id, stop, delay)
            self._count("retry")
            return
        if stop.outcome is Outcome.AUTH:
            log.error("ALERT: NCMEC refused hashguard's credentials or authorisation (%s): report %s stopped", stop, report.id)
        # Terminal: whatever is open at NCMEC is retracted, so nothing half-filed remains.
        status = Status.FAILED
        if current.hotline_reference is not None:
            with contextlib.suppress(_Stop):
                answer = await self._call(
                    current,
                    "retract",
                    form={"id": current.hotline_reference},
                    reference=current.hotline_reference,
                    accept=(Outcome.FINISHED, Outcome.RETRACTED, Outcome.EXPIRED),
                )
                if answer.outcome is Outcome.FINISHED:
                    async with self._pool.acquire() as conn:
                        await store.mark_finished(conn, current, token, current.hotline_reference)
                    self._count("finished")
                    return
                status = Status.RETRACTED
        async with self._pool.acquire() as conn:
            await store.mark_terminal(conn, current, token, status, error=str(stop), code=stop.code)
        log.error("ncmec report %s (ticket %s) %s: %s", report.id, report.ticket_id, status.value, stop)
        self._count(status.value)

    async def _file(self, report: ReportRecord, token: uuid.UUID) -> None:
        config = self._config
        assert config.reporter is not None
        if report.hotline_reference is not None:
            report = await self._resume(report, token)
            if report.status is Status.FINISHED:
                return
        async with self._pool.acquire() as conn:
            case = await store.load_case(conn, report.ticket_id, categories=self._categories)
            secret = await store.signing_secret(conn, report.ticket_id, config.webhook_secret)
        schema = await self._hotline_schema(report)
        found = await self._fetch_evidence(report, case, secret)
        try:
            now = datetime.now(UTC)
            document = ncmec.build_report(case, config.reporter, now=now, with_file=found.file is not None)
            self._check(schema, document, "report")
            submitted = await self._call(report, "submit", xml=document)
            reference = submitted.answer.report_id
            if not reference or not reference.isdigit():
                raise _Stop(Outcome.RETRY, "the hotline's /submit answer carried no report id")
            await self._save(report, token, reference, [], found.note)
            await self._step("submit", report)
            file_ids: list[str] = []
            if found.file is not None:
                found.file.seek(0)
                uploaded = await self._call(
                    report, "upload", form={"id": reference}, file=found.file, reference=reference, filename=found.name
                )
                file_id = uploaded.answer.file_id
                if not file_id:
                    raise _Stop(Outcome.RETRY, "the hotline's /upload answer carried no file id")
                file_ids.append(file_id)
                await self._save(report, token, reference, file_ids, None)
                if uploaded.answer.md5 != found.md5:
                    # (No digest in the message: an upload's MD5 can equal an exact-match list's entry.)
                    raise _Stop(Outcome.RETRY, "the MD5 the hotline computed differs from the file sent: the upload was damaged")
                await self._step("upload", report)
                for file_id in file_ids:
                    details = ncmec.build_file_details(
                        case, report_id=reference, file_id=file_id, now=datetime.now(UTC), mou_signed=config.mou_signed
                    )
                    self._check(schema, details, "fileDetails")
                    await self._call(report, "fileinfo", xml=details, reference=reference)
                await self._step("fileinfo", report)
            finished = await self._call(report, "finish", form={"id": reference}, reference=reference, accept=(Outcome.FINISHED,))
            await self._step("finish", report)
        finally:
            if found.file is not None:
                found.file.close()  # the spooled copy is deleted here; only its hashes were kept
        async with self._pool.acquire() as conn:
            await store.mark_finished(conn, report, token, finished.answer.report_id or reference)
        log.info("ncmec report %s (ticket %s) finished: CyberTipline report %s", report.id, report.ticket_id, reference)
        self._count("finished")

    async def _resume(self, report: ReportRecord, token: uuid.UUID) -> ReportRecord:
        """A previous run left a CyberTipline report open: retract it, or learn that it was finished."""
        reference = report.hotline_reference
        assert reference is not None
        answer = await self._call(
            report,
            "retract",
            form={"id": reference},
            reference=reference,
            accept=(Outcome.FINISHED, Outcome.RETRACTED, Outcome.EXPIRED),
        )
        async with self._pool.acquire() as conn:
            if answer.outcome is Outcome.FINISHED:
                await store.mark_finished(conn, report, token, reference)
                log.info("ncmec report %s: CyberTipline report %s had been finished before a restart", report.id, reference)
                self._count("finished")
                return await store.get_report(conn, report.id)
            log.info("ncmec report %s: retracted unfinished CyberTipline report %s; filing again", report.id, reference)
            if not await store.save_progress(conn, report, token, reference=None, file_ids=[], lease_s=self._config.lease_s):
                raise _Stop(Outcome.RETRY, "the report's lease was lost")
            return await store.get_report(conn, report.id)

    async def _save(self, report: ReportRecord, token: uuid.UUID, reference: str, file_ids: list[str], note: str | None) -> None:
        async with self._pool.acquire() as conn:
            kept = await store.save_progress(
                conn, report, token, reference=reference, file_ids=file_ids, lease_s=self._config.lease_s, evidence=note
            )
        if not kept:
            # Another replica holds the report now (this run outlived its lease): leave nothing open behind.
            with contextlib.suppress(_Stop):
                await self._call(report, "retract", form={"id": reference}, reference=reference)
            raise _Stop(Outcome.RETRY, "the report's lease was lost; its CyberTipline report was retracted")

    async def _step(self, name: str, report: ReportRecord) -> None:
        if self._checkpoint is not None:
            await self._checkpoint(name, report)

    def _check(self, schema: Schema, document: bytes, what: str) -> None:
        try:
            schema.check(document)
        except DocumentInvalid as exc:
            raise _Stop(Outcome.INVALID, f"the {what} document does not validate against the hotline's schema: {exc}") from None

    # ---------------------------------------------------------------- calls

    async def _hotline_schema(self, report: ReportRecord) -> Schema:
        """NCMEC's own XSD (``GET /xsd``), fetched once a day and kept in memory."""
        if self._schema is not None and time.monotonic() - self._schema[0] < _SCHEMA_TTL_S:
            return self._schema[1]
        assert self._config.url is not None
        status, body, request_id, error = await self._request("GET", self._config.url.rstrip("/") + "/xsd")
        log.info("ncmec xsd (report %s): HTTP %s, Request-ID %s", report.id, status, request_id)
        if status != 200 or body is None:
            answer = ncmec.parse_answer(body) if body is not None else Answer(code=None, description=error)
            outcome = ncmec.classify(status, answer.code)
            what = f"GET /xsd: {answer.description or error or 'no schema'} (HTTP {status}, code {answer.code}, Request-ID {request_id})"
            async with self._pool.acquire() as conn:
                await store.log_call(
                    conn,
                    report.id,
                    "xsd",
                    reference=None,
                    http_status=status,
                    code=answer.code,
                    request_id=request_id,
                    error=what,
                )
            self._count_error(answer.code, status)
            raise _Stop(outcome if outcome is not Outcome.OK else Outcome.RETRY, what, answer.code)
        try:
            schema = Schema(body)
        except DocumentInvalid as exc:
            raise _Stop(Outcome.RETRY, f"the hotline's schema could not be read: {exc}") from None
        self._schema = (time.monotonic(), schema)
        return schema

    async def _request(self, method: str, url: str, **kwargs: Any) -> tuple[int | None, bytes | None, str | None, str | None]:
        try:
            headers = {"Authorization": self._authorization, **kwargs.pop("headers", {})}
            async with self._session.request(
                method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=self._config.timeout_s), **kwargs
            ) as response:
                body = await response.read()
                return response.status, body, response.headers.get("Request-ID"), None
        except TimeoutError:
            return None, None, None, f"no answer within {self._config.timeout_s} s"
        except aiohttp.ClientError as exc:
            return None, None, None, f"{type(exc).__name__}: {exc}"

    async def _call(
        self,
        report: ReportRecord,
        name: str,
        *,
        xml: bytes | None = None,
        form: dict[str, str] | None = None,
        file: IO[bytes] | None = None,
        filename: str | None = None,
        reference: str | None = None,
        accept: Collection[Outcome] = (),
    ) -> _Called:
        """One CyberTipline call; raises ``_Stop`` unless it answered success (or one of ``accept``)."""
        assert self._config.url is not None
        url = self._config.url.rstrip("/") + "/" + name
        kwargs: dict[str, Any] = {}
        if xml is not None:
            kwargs = {"data": xml, "headers": {"Content-Type": "text/xml; charset=utf-8"}}
        elif file is not None:
            data = aiohttp.FormData()
            for k, v in (form or {}).items():
                data.add_field(k, v)
            data.add_field("file", file, filename=filename or "evidence", content_type="application/octet-stream")
            kwargs = {"data": data}
        elif form is not None:
            kwargs = {"data": form}
        status, body, request_id, error = await self._request("POST", url, **kwargs)
        answer = ncmec.parse_answer(body) if body is not None else Answer(code=None, description=error)
        outcome = ncmec.classify(status, answer.code)
        log.info(
            "ncmec %s (report %s, CyberTipline %s): HTTP %s, code %s, Request-ID %s",
            name,
            report.id,
            reference or answer.report_id,
            status,
            answer.code,
            request_id,
        )
        ok = outcome is Outcome.OK or outcome in accept
        async with self._pool.acquire() as conn:
            await store.log_call(
                conn,
                report.id,
                name,
                reference=reference or answer.report_id,
                http_status=status,
                code=answer.code,
                request_id=request_id,
                error=None if ok else (answer.description or error or f"HTTP {status}"),
            )
        if not ok:
            self._count_error(answer.code, status)
            what = answer.description or error or f"HTTP {status}"
            raise _Stop(outcome, f"/{name}: {what} (HTTP {status}, code {answer.code}, Request-ID {request_id})", answer.code)
        return _Called(answer=answer, outcome=outcome)

    # ---------------------------------------------------------------- evidence

    async def _fetch_evidence(self, report: ReportRecord, case: ReportCase, secret: str | None) -> _Evidence:
        """The file from the platform, checked against the scan's hashes, in a temporary file that is
        deleted when the report's calls are done; or why the report is hash-only."""
        refusal = evidence.fetch_refusal(case.content_url, self._config.evidence_hosts)
        if refusal is not None:
            return _Evidence(file=None, note=f"hash-only: {refusal}")
        if secret is None:
            return _Evidence(file=None, note="hash-only: the platform has no webhook secret to verify a fetch with")
        assert case.content_url is not None
        headers = evidence.signed_headers(secret, int(time.time()), case.content_url)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed by the caller
        digests = evidence.Digests()
        try:
            async with self._session.get(
                case.content_url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
                allow_redirects=False,
            ) as response:
                if response.status >= 500:
                    raise _Stop(Outcome.RETRY, f"the platform answered HTTP {response.status} to the evidence fetch")
                if response.status != 200:
                    spool.close()
                    return _Evidence(
                        file=None, note=f"hash-only: the platform answered HTTP {response.status} to the evidence fetch"
                    )
                async for chunk in response.content.iter_chunked(_CHUNK):
                    digests.update(chunk)
                    if digests.size > self._config.max_file_bytes:
                        spool.close()
                        return _Evidence(file=None, note="hash-only: the file is larger than HASHGUARD_MAX_UPLOAD_BYTES")
                    spool.write(chunk)
        except (TimeoutError, aiohttp.ClientError) as exc:
            spool.close()
            if report.attempts < 3:
                raise _Stop(Outcome.RETRY, f"the evidence fetch failed: {type(exc).__name__}: {exc}") from None
            return _Evidence(file=None, note=f"hash-only: the evidence fetch failed {report.attempts} times")
        except BaseException:
            spool.close()
            raise
        wrong = evidence.mismatch(case.file_hashes, digests.values())
        if wrong is not None:
            spool.close()
            log.warning("ncmec report %s: %s; not uploaded, the report is hash-only", report.id, wrong)
            return _Evidence(file=None, note=f"hash-only: {wrong}")
        name = hashlib.sha256(case.content_id.encode()).hexdigest()[:16]
        return _Evidence(file=spool, note="file", md5=digests.md5.hexdigest(), name=name)
