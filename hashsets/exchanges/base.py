"""What a hash-sharing connector is: a class that declares itself and fetches pages from a checkpoint.

Pure code (no web framework, no database driver): a connector's I/O goes through the HTTP session
it is handed, and the fetcher owns storage. The design decisions a connector author relies on:

- A **checkpoint** is a small JSON object the connector alone understands. The fetcher stores the
  checkpoint after each page in the same transaction as the page's changes, so a crash resumes at
  the first page not applied, and a page is never applied twice. ``fetch(None)`` starts from the
  beginning of the source.
- A **page** carries updates (additions, changes and deletions, in any order) and the checkpoint
  after it. A page or an entry the connector cannot read is *reported* (``PageFailure``,
  ``EntryProblem``) and the fetch goes on past it; the fetcher quarantines it with its position and
  reason and asks the connector to read a failed page again later (``refetch``). Problems never
  carry hash values.
- The fetcher applies updates last-writer-wins on ``updated_at`` per entry, so a page read again
  (a retry, a restarted time window) changes nothing that a newer update has already decided.
- **Credentials** never reach the database: a secret setting holds where to read it
  (``env:VARIABLE`` or ``file:/run/secrets/name``), resolved at each fetch by ``resolve_secret``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import aiohttp

Checkpoint = Mapping[str, Any]

# Connector and setting names appear in CLI flags, metric labels and list names: keep them plain.
CONNECTOR_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
SETTING_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_ENTRY_ID = 200
MAX_REASON = 500


class ExchangeError(Exception):
    """A hash-sharing source could not be fetched."""

    kind = "error"


class SourceUnavailable(ExchangeError):
    """The source did not answer (connection refused, timeout, a 5xx): tried again at the next run."""

    kind = "unavailable"


class CredentialRejected(ExchangeError):
    """The source refused the credential (401/403): revoked or wrong; nothing is fetched until it is fixed."""

    kind = "auth"


class ProtocolError(ExchangeError):
    """The source answered something the connector cannot continue from (no way past it)."""

    kind = "protocol"


class SettingsProblem(ExchangeError):
    """A source's settings are missing, malformed, or name a secret that cannot be read."""

    kind = "settings"


class Vote(StrEnum):
    UP = "up"  # a reviewer confirmed the match (the content was actioned)
    DOWN = "down"  # a reviewer dismissed the match, or the content was reinstated


@dataclass(frozen=True, kw_only=True, slots=True)
class Setting:
    """One setting a connector needs. ``secret`` settings are given as ``env:NAME`` or ``file:PATH`` only."""

    name: str
    help: str
    required: bool = True
    secret: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Update:
    """One entry as the source has it now. ``fingerprints``: hash type (hashguard tool name) -> text value.

    ``entry_id`` is the source's own id (NCMEC: member id and entry id), unique within the source;
    ``member`` is who contributed it (for the per-source member filter); a deletion has no fingerprints.
    """

    entry_id: str
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    member: str | None = None
    classification: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryProblem:
    """An entry the connector could not read: where (``position``), which (``entry_id`` if known) and why."""

    position: str
    reason: str
    entry_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PageFailure:
    """A whole page that could not be read; ``position`` is what ``refetch`` needs to read it again."""

    position: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    updates: Sequence[Update]
    checkpoint: Checkpoint
    problems: Sequence[EntryProblem] = ()
    failure: PageFailure | None = None
    # How far into the source's history this page reaches (for the lag metric); None: unknown.
    source_time: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """A reviewer's verdict on a match of one source entry, sent back with ``send_feedback``."""

    entry_id: str
    hash_type: str
    vote: Vote
    reason: str = ""
    value: bytes | None = None  # the entry's hash, for a source that names entries by it (StopNCII)


class Connector:
    """Base class of every connector (built-in or a plug-in registered under ``hashguard.exchanges``).

    A subclass declares ``name``, ``hash_types`` (the hashguard tool names it delivers; a type no
    installed tool computes is kept as a coverage gap), ``settings``, and implements ``fetch``.
    ``supports_feedback``: whether ``send_feedback`` sends verdicts back to the source.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    hash_types: ClassVar[tuple[str, ...]]
    settings: ClassVar[tuple[Setting, ...]] = ()
    supports_feedback: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        """``config``: every declared setting, secrets already resolved (see ``resolve_settings``)."""
        self.config = dict(config)
        self.session = session

    def fetch(self, checkpoint: Checkpoint | None) -> AsyncIterator[Page]:
        """Pages from ``checkpoint`` (None: the beginning) to the source's present, in order."""
        raise NotImplementedError

    async def refetch(self, position: str) -> Page | None:
        """Read a page that failed again (``PageFailure.position``); None if it can no longer be read."""
        return None

    async def send_feedback(self, verdict: Verdict) -> None:
        """Send a reviewer's verdict to the source. Raises ``ExchangeError`` (retried) on failure."""
        raise ProtocolError(f"the {self.name} connector cannot send feedback")


def resolve_secret(reference: str) -> str:
    """The value a secret reference points at: ``env:NAME`` (an environment variable) or ``file:PATH``.

    The error names the reference, never a value.
    """
    how, _, where = reference.partition(":")
    if how == "env" and where:
        value = os.environ.get(where)
        if not value:
            raise SettingsProblem(f"the environment variable {where} is not set")
        return value
    if how == "file" and where:
        try:
            value = Path(where).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsProblem(f"cannot read the secret file {where}: {(exc.strerror or str(exc)).lower()}") from None
        if not value:
            raise SettingsProblem(f"the secret file {where} is empty")
        return value
    raise SettingsProblem("a secret is given as env:VARIABLE or file:/path/to/secret, never as the value itself")


def check_settings(connector: type[Connector], given: Mapping[str, str]) -> dict[str, str]:
    """Validate what an operator gave for a source (stored as is: secrets only as references)."""
    declared = {s.name: s for s in connector.settings}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise SettingsProblem(
            f"the {connector.name} connector has no setting {', '.join(unknown)} (it has: {', '.join(declared)})"
        )
    for name, text in given.items():  # a secret given as its value is refused before anything else is said
        how, _, where = text.partition(":")
        if declared[name].secret and (how not in ("env", "file") or not where):
            raise SettingsProblem(f"{name} is a secret: give env:VARIABLE or file:/path (the database stores only where it is)")
    checked: dict[str, str] = {}
    for setting in connector.settings:
        value: str | None = given.get(setting.name, setting.default)
        if value is None:
            if setting.required:
                raise SettingsProblem(f"the {connector.name} connector needs --set {setting.name}=... ({setting.help})")
            continue
        if (
            not setting.secret
            and setting.choices
            and value not in setting.choices
            and not value.startswith(("https://", "http://"))
        ):
            raise SettingsProblem(f"{setting.name} must be one of {', '.join(setting.choices)} or a URL")
        checked[setting.name] = value
    return checked


def resolve_settings(connector: type[Connector], stored: Mapping[str, str]) -> dict[str, str]:
    """The stored settings with every secret read from where its reference points."""
    return {
        name: resolve_secret(value) if _is_secret(connector, name) else value
        for name, value in check_settings(connector, stored).items()
    }


def _is_secret(connector: type[Connector], name: str) -> bool:
    return any(s.name == name and s.secret for s in connector.settings)


def clip(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
