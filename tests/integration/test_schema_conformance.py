"""The OpenAPI document is exactly as strict as the server: schemathesis sends generated requests, valid
and invalid, to every operation of the running service (real embedded PostgreSQL, loopback only) and
checks every answer is documented, fits its declared schema and content type, and is never a 5xx.

Every role: each generated request is sent with a key of every role the route allows (the cases are
generated once per operation and sent once per role, so the run stays bounded), and one valid
request with a key of every other role, which must get the documented 403 (and none at all, 401)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from hashguard.app import service_routes
from hashguard.openapi import openapi_document
from tests.conftest import Cli, Service
from tests.http.inprocess import Cli as InProcessCli

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXAMPLES = 4  # per operation and generation mode: bounded, the whole test runs in seconds


ROLES = ("platform", "reviewer", "lead", "admin", "auditor")


@pytest.mark.slow
# Bounded by EXAMPLES, not by the clock: every role of every operation takes a few hundred requests,
# which on two busy cores can pass the suite's default 120 s.
@pytest.mark.timeout(300)
def test_every_operation_answers_as_documented_for_every_role(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    assert service.url.startswith(("http://127.0.0.1:", "http://localhost:"))
    commands = InProcessCli(cli.env)  # `hashguard keys create` in this process: five starts of Python saved
    keys = {role: commands.new_key(role) for role in ROLES}
    # The document the running service serves is the one generated from the route table.
    served = service.request("GET", "/openapi.json").json()
    assert served == openapi_document(service_routes())
    schema = schemathesis.openapi.from_dict(served)
    results = list(schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]  # every operation is well-formed
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == sum(1 for _ in service_routes())
    tried: dict[str, int] = {}
    refused: dict[str, list[int]] = {}
    for operation in operations:
        roles: list[str] = operation.definition.raw.get("x-roles", [])
        assert set(roles) <= set(ROLES), roles
        # Keys of every role the route allows, so the work behind the role check is exercised for each.
        allowed = [{"Authorization": f"Bearer {keys[role]}"} for role in roles] or [{}]
        # Invalid requests only where the operation takes input to get wrong.
        takes_input = "parameters" in operation.definition.raw or "requestBody" in operation.definition.raw
        name = f"{operation.method.upper()} {operation.path}"
        first: list[Any] = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,):
            tried[f"{name} {mode.value}"] = _run(operation, mode, service.url, allowed, first)
        if not roles:
            continue
        # A valid request with a key of a role the route does not allow: 403 forbidden, as documented; no key: 401.
        assert first, name
        others = [{"Authorization": f"Bearer {keys[role]}"} for role in ROLES if role not in roles]
        for headers, status in [*((h, 403) for h in others), ({}, 401)]:
            response = first[0].call(base_url=service.url, headers=headers, timeout=30)
            assert response.status_code == status, (name, headers, response.text)
            assert response.json()["error"]["code"] == ("forbidden" if status == 403 else "unauthorized")
            first[0].validate_response(response, checks=CHECKS)
            refused.setdefault(name, []).append(status)
    assert all(tried.values()), tried
    assert sum(map(len, refused.values())) == sum(len(ROLES) - len(r.roles) + 1 for r in service_routes() if r.roles)
    assert "Traceback" not in service.log()
    # Bounded by the work (the example count), not by the clock of a shared machine.
    assert sum(tried.values()) <= EXAMPLES * 2 * len(operations)


def _run(operation: Any, mode: GenerationMode, base_url: str, allowed: list[dict[str, str]], first: list[Any]) -> int:
    """Generate up to EXAMPLES requests to one operation and send each with every key in ``allowed``;
    the number of cases sent. The first valid case is kept in ``first`` for the forbidden roles."""
    sent = 0

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    def check(case: Any) -> None:
        nonlocal sent
        for headers in allowed:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)
        if mode is GenerationMode.POSITIVE and not first:
            first.append(case)
        sent += 1

    check()
    return sent
