"""A local stand-in for the DSA Transparency Database API (aiohttp on loopback), speaking its
protocol as its published documentation and validation rules describe it: Bearer token,
``POST /api/v1/statements`` (1-100 statements; 201 with each created statement's ``uuid`` and
``puid``; 422 with ``errors`` per statement, or with ``existing_puids`` when some are held, and then
nothing stored), ``GET /api/v1/statement/existing-puid/{puid}`` (302 with the statement, 404).

Its validation is its own (a few of the database's rules, written independently of our schema), so
a statement our schema lets through can still be refused here, as the real database may.
It misbehaves on request: ``faults`` is a queue of what the next calls do.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "test-token-0123456789"
_PUID = re.compile(r"^[a-zA-Z0-9_-]{1,500}$")
_REQUIRED = (
    "decision_ground",
    "decision_facts",
    "content_type",
    "category",
    "content_date",
    "application_date",
    "source_type",
    "automated_detection",
    "automated_decision",
    "puid",
)


def _errors(statement: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in _REQUIRED:
        if statement.get(name) in (None, "", []):
            found[name] = [f"The {name.replace('_', ' ')} field is required."]
    if not any(statement.get(k) for k in ("decision_visibility", "decision_monetary", "decision_provision", "decision_account")):
        found["decision_visibility"] = ["The decision visibility field is required when none of the other decisions is present."]
    if statement.get("decision_ground") not in ("DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"):
        found.setdefault("decision_ground", []).append("The selected decision ground is invalid.")
    if not _PUID.match(str(statement.get("puid", ""))):
        found.setdefault("puid", []).append("The puid format is invalid.")
    content, applied = str(statement.get("content_date", "")), str(statement.get("application_date", ""))
    if content and applied and applied < content:
        found.setdefault("application_date", []).append("The application date must be a date after or equal to content date.")
    return found


@dataclass
class DsaStandIn:
    held: dict[str, dict[str, Any]] = field(default_factory=dict)  # puid -> stored statement
    # What the next calls do: "500", "429", "drop" (nothing stored), "lost" (stored, then a 500),
    # "slow" (stored, answered after slow_s).
    faults: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, statements in the call)
    slow_s: float = 2.0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posted(self) -> list[int]:
        return [n for method, _, n in self.calls if method == "POST"]

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        """Faults that strike before anything is stored: "500", "429" (Retry-After: 0), "drop"."""
        if not self.faults or self.faults[0] not in ("500", "429", "drop"):
            return None
        fault = self.faults.pop(0)
        if fault == "500":
            return web.json_response({"message": "Server Error"}, status=500)
        if fault == "429":
            return web.json_response({"message": "Too Many Attempts."}, status=429, headers={"Retry-After": "0"})
        assert request.transport is not None
        request.transport.close()  # a dropped connection: no answer at all
        return web.Response(status=500)

    async def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def statements(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        batch = payload.get("statements") if isinstance(payload, dict) else None
        self.calls.append(("POST", request.path, len(batch) if isinstance(batch, list) else 0))
        if not await self._authorised(request):
            return web.json_response({"message": "Unauthenticated."}, status=401)
        if (faulty := await self._fault(request)) is not None:
            return faulty
        if not isinstance(batch, list) or not 1 <= len(batch) <= 100:
            return web.json_response(
                {
                    "message": "The statements field must have between 1 and 100 items.",
                    "errors": {"statements": ["between 1 and 100"]},
                },
                status=422,
            )
        errors = {f"statement_{i}": e for i, s in enumerate(batch) if (e := _errors(s))}
        if errors:
            return web.json_response({"errors": errors}, status=422)
        puids = [s["puid"] for s in batch]
        if len(set(puids)) != len(puids):
            return web.json_response(
                {"message": "not all unique within this call", "errors": {"puid": ["not unique"]}}, status=422
            )
        existing = [p for p in puids if p in self.held]
        if existing:
            return web.json_response(
                {
                    "message": "not all unique within this platform",
                    "errors": {"puid": ["not unique"], "existing_puids": existing},
                },
                status=422,
            )
        created = []
        for s in batch:
            stored = {**s, "uuid": str(uuid.uuid4()), "platform_name": "Stand-in Platform"}
            self.held[s["puid"]] = stored
            created.append(stored)
        fault = self.faults[0] if self.faults else None
        if fault == "lost":  # stored, but the answer never arrives whole
            self.faults.pop(0)
            return web.json_response({"message": "Server Error"}, status=500)
        if fault == "slow":  # stored, answered too late for the client
            self.faults.pop(0)
            await asyncio.sleep(self.slow_s)
        return web.json_response({"statements": created}, status=201)

    async def existing(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(("GET", request.path, 0))
        if not await self._authorised(request):
            return web.json_response({"message": "Unauthenticated."}, status=401)
        if (faulty := await self._fault(request)) is not None:
            return faulty
        found = self.held.get(request.match_info["puid"])
        if found is None:
            return web.json_response({"message": "statement of reason not found"}, status=404)
        return web.json_response(found, status=302)

    async def start(self) -> DsaStandIn:
        app = web.Application()
        app.router.add_post("/api/v1/statements", self.statements)
        app.router.add_get("/api/v1/statement/existing-puid/{puid}", self.existing)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
