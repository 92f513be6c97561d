"""Every built-in connector passes the conformance kit (``hashsets.exchanges.testing``) against its loopback stand-in."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
import pytest

from hashsets.exchanges import registry
from hashsets.exchanges.base import Connector, resolve_settings
from hashsets.exchanges.testing import CHECKS, Check, Content
from tests.standins import ncmec_hashsharing as ncmec
from tests.standins import stopncii, threatexchange


@dataclass
class Subject:
    make: Callable[[], Connector]
    expected: Content


async def _ncmec(stack: AsyncExitStack, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> Subject:
    stand_in = ncmec.NcmecStandIn(page_size=4)
    url = await stack.enter_async_context(ncmec.serving(stand_in))
    rng = random.Random(9)
    now = int(time.time())
    for i in range(11):
        stand_in.put(ncmec.Entry(member="42", id=f"e{i}", at=now - 60 + (i % 3), fingerprints={"pdq": rng.randbytes(32).hex()}))
    stand_in.put(ncmec.Entry(member="42", id="gone", at=now - 50, deleted=True))
    monkeypatch.setenv("KIT_NCMEC_USER", ncmec.USER)
    monkeypatch.setenv("KIT_NCMEC_PASSWORD", ncmec.PASSWORD)
    cls = registry.connector_class("ncmec")
    stored = {"environment": url, "username": "env:KIT_NCMEC_USER", "password": "env:KIT_NCMEC_PASSWORD", "settle_s": "0"}
    expected = {e.key: {"pdq": e.fingerprints["pdq"]} for e in stand_in.entries.values() if not e.deleted}
    return Subject(make=lambda: cls(resolve_settings(cls, stored), session), expected=expected)


async def _stopncii(stack: AsyncExitStack, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> Subject:
    from hashsets.exchanges.stopncii import entry_id

    stand_in = stopncii.StopNciiStandIn()
    url = await stack.enter_async_context(stopncii.serving(stand_in))
    rng = random.Random(10)
    for i in range(9):
        stand_in.put(stopncii.Record("ImagePDQ", rng.randbytes(32).hex(), 1000 + i % 4))
    stand_in.put(stopncii.Record("ImagePDQ", rng.randbytes(32).hex(), 1001, status="Withdrawn"))
    monkeypatch.setenv("KIT_SNCII_SUB", stopncii.SUBSCRIPTION)
    monkeypatch.setenv("KIT_SNCII_FETCH", stopncii.FETCH_KEY)
    cls = registry.connector_class("stopncii")
    stored = {"base_url": url, "subscription_key": "env:KIT_SNCII_SUB", "fetch_key": "env:KIT_SNCII_FETCH", "page_size": "4"}
    expected = {entry_id("ImagePDQ", v): {"pdq": v} for v in stand_in.content()}
    return Subject(make=lambda: cls(resolve_settings(cls, stored), session), expected=expected)


async def _threatexchange(stack: AsyncExitStack, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> Subject:
    stand_in = threatexchange.ThreatExchangeStandIn()
    url = await stack.enter_async_context(threatexchange.serving(stand_in))
    rng = random.Random(15)
    now = int(time.time())
    for i in range(9):
        stand_in.put(
            threatexchange.Update(id=1000 + i, type="HASH_PDQ", indicator=rng.randbytes(32).hex(), last_updated=now - 100 + i)
        )
    stand_in.put(threatexchange.Update(id=2000, type="HASH_PDQ", indicator="", last_updated=now - 50, should_delete=True))
    monkeypatch.setenv("KIT_TE_TOKEN", threatexchange.TOKEN)
    cls = registry.connector_class("threatexchange")
    stored = {"base_url": url, "access_token": "env:KIT_TE_TOKEN", "privacy_group": stand_in.group, "page_size": "4"}
    return Subject(
        make=lambda: cls(resolve_settings(cls, stored), session), expected={k: {"pdq": v} for k, v in stand_in.content().items()}
    )


BUILT_INS = {"ncmec": _ncmec, "stopncii": _stopncii, "threatexchange": _threatexchange}


@pytest.fixture(params=sorted(BUILT_INS))
async def subject(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Subject]:
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield await BUILT_INS[request.param](stack, session, monkeypatch)


def test_every_installed_connector_is_covered() -> None:
    assert set(registry.discover()) == set(BUILT_INS)


@pytest.mark.parametrize("check", CHECKS, ids=str)
async def test_built_in_connectors_conform(subject: Subject, check: Check) -> None:
    await check.run(subject.make, subject.expected)


async def test_the_kit_catches_a_naive_time_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connector that checkpoints the window's end after every page (HMA #1744's bug) loses entries on resume."""
    from hashsets.exchanges.base import Checkpoint, Page
    from hashsets.exchanges.ncmec import NcmecConnector
    from hashsets.exchanges.testing import ConformanceError, check_resume_from_every_checkpoint

    class Naive(NcmecConnector):
        async def fetch(self, checkpoint: Checkpoint | None) -> AsyncIterator[Page]:
            async for page in super().fetch(checkpoint):
                end = page.checkpoint.get("paging", {}).get("to", page.checkpoint.get("from"))
                yield Page(updates=page.updates, checkpoint={"from": end})

    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        good = await _ncmec(stack, session, monkeypatch)
        made = good.make()

        def naive() -> Connector:
            return Naive(made.config, session)

        with pytest.raises(ConformanceError, match="resuming after page 1"):
            await check_resume_from_every_checkpoint(naive, good.expected)
