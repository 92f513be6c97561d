"""The conformance kit: checks every hash-sharing connector must pass, built-in or third-party.

hashguard runs it on each built-in connector against that connector's loopback stand-in; a connector
author runs it in their own suite against theirs::

    from hashsets.exchanges.testing import assert_conforms
    async def test_my_connector_conforms(my_stand_in):
        await assert_conforms(lambda: MyConnector(config, session), expected=my_stand_in.content())

``make`` builds a fresh connector pointed at a source whose content is ``expected`` (entry id ->
hash type -> value, deleted entries absent) and which holds more than one page. Properties any
connector the fetcher can trust has, not one service's details: the declaration is valid, secrets
are refused as values, checkpoints survive JSON, a fetch from the start gives the content, a resume
from *any* page's checkpoint ends at the same content, a fetch from the last checkpoint brings
nothing new, and ids and problems never carry hash values.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hashsets.exchanges.base import MAX_ENTRY_ID, Checkpoint, Connector, Page, SettingsProblem, check_settings
from hashsets.exchanges.registry import check_declaration

Content = dict[str, dict[str, str]]
_EPOCH = datetime.min.replace(tzinfo=UTC)


class ConformanceError(AssertionError):
    """A connector failed a conformance check."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


async def pages_from(connector: Connector, checkpoint: Checkpoint | None) -> list[Page]:
    return [page async for page in connector.fetch(checkpoint)]


def fold(pages: list[Page], into: Content | None = None) -> Content:
    """The content the pages leave, applied as the fetcher does (last writer wins per entry)."""
    state: Content = {k: dict(v) for k, v in (into or {}).items()}
    seen: dict[str, datetime] = {}
    for page in pages:
        for update in page.updates:
            at = update.updated_at or _EPOCH
            if at < seen.get(update.entry_id, _EPOCH):
                continue
            seen[update.entry_id] = at
            if update.deleted:
                state.pop(update.entry_id, None)
            else:
                state[update.entry_id] = dict(update.fingerprints)
    return state


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: Callable[[Callable[[], Connector], Content], Awaitable[None]]

    def __str__(self) -> str:
        return self.name


async def check_declaration_is_valid(make: Callable[[], Connector], expected: Content) -> None:
    connector = make()
    try:
        check_declaration(type(connector), f"connector {type(connector).__qualname__}")
    except Exception as exc:
        raise ConformanceError(str(exc)) from exc
    for setting in type(connector).settings:
        if setting.secret:
            try:
                check_settings(type(connector), {setting.name: "the-secret-itself"})
            except SettingsProblem as exc:
                _require("the-secret-itself" not in str(exc), "an error about a secret repeats its value")
                continue
            raise ConformanceError(f"the secret setting {setting.name!r} accepts a plain value")


async def check_full_fetch_gives_the_content(make: Callable[[], Connector], expected: Content) -> None:
    pages = await pages_from(make(), None)
    _require(len(pages) > 1, "the kit needs a source holding more than one page")
    for page in pages:
        _require(json.loads(json.dumps(dict(page.checkpoint))) == dict(page.checkpoint), "a checkpoint must survive JSON")
    _require(fold(pages) == expected, "a fetch from the start does not give the source's content")


async def check_resume_from_every_checkpoint(make: Callable[[], Connector], expected: Content) -> None:
    pages = await pages_from(make(), None)
    for k in range(len(pages)):
        resumed = await pages_from(make(), json.loads(json.dumps(dict(pages[k].checkpoint))))
        _require(fold(resumed, fold(pages[: k + 1])) == expected, f"resuming after page {k + 1} does not end at the content")


async def check_nothing_new_after_the_last_checkpoint(make: Callable[[], Connector], expected: Content) -> None:
    pages = await pages_from(make(), None)
    again = await pages_from(make(), pages[-1].checkpoint)
    _require(not any(p.updates for p in again), "a fetch from the last checkpoint of an unchanged source brings updates")


async def check_ids_and_problems_hold_no_hash(make: Callable[[], Connector], expected: Content) -> None:
    connector = make()
    pages = await pages_from(connector, None)
    values = {v.lower() for fingerprints in expected.values() for v in fingerprints.values()}
    declared = set(type(connector).hash_types)
    for page in pages:
        for update in page.updates:
            _require(0 < len(update.entry_id) <= MAX_ENTRY_ID, f"entry ids are 1 to {MAX_ENTRY_ID} characters")
            _require(update.entry_id.lower() not in values, "an entry id repeats a hash value")
            _require(set(update.fingerprints) <= declared, f"hash types {set(update.fingerprints) - declared} are not declared")
            _require(not update.deleted or not update.fingerprints, "a deletion carries fingerprints")
        text = json.dumps([[p.position, p.reason, p.entry_id] for p in page.problems]).lower()
        _require(not any(v in text for v in values), "a problem report repeats a hash value")


CHECKS: tuple[Check, ...] = tuple(
    Check(f.__name__, f)
    for f in (
        check_declaration_is_valid,
        check_full_fetch_gives_the_content,
        check_resume_from_every_checkpoint,
        check_nothing_new_after_the_last_checkpoint,
        check_ids_and_problems_hold_no_hash,
    )
)


async def assert_conforms(make: Callable[[], Connector], expected: Mapping[str, Mapping[str, str]]) -> None:
    content = {k: dict(v) for k, v in expected.items()}
    for check in CHECKS:
        await check.run(make, content)
