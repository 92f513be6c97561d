"""The OpenAPI document is exactly as strict as the server: schemathesis sends generated requests, valid
and invalid, to every operation of the running service (real embedded PostgreSQL, loopback only) and
checks every answer is documented, fits its declared schema and content type, and is never a 5xx."""

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

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXAMPLES = 4  # per operation and generation mode: bounded, the whole test runs in seconds


@pytest.mark.slow
# Bounded by EXAMPLES, not by the clock: every role of every operation takes a few hundred requests,
# which on two busy cores can pass the suite's default 120 s.
@pytest.mark.timeout(300)
def test_every_operation_answers_as_documented(cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service()
    assert service.url.startswith(("http://127.0.0.1:", "http://localhost:"))
    keys = {role: cli.new_key(role) for role in ("platform", "reviewer", "lead", "admin", "auditor")}
    # The document the running service serves is the one generated from the route table.
    served = service.request("GET", "/openapi.json").json()
    assert served == openapi_document(service_routes())
    schema = schemathesis.openapi.from_dict(served)
    results = list(schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]  # every operation is well-formed
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == sum(1 for _ in service_routes())
    tried: dict[str, int] = {}
    for operation in operations:
        roles: list[str] = operation.definition.raw.get("x-roles", [])
        # A key of a role the route allows, so the work behind the role check is exercised too.
        headers = {"Authorization": f"Bearer {keys[roles[0]]}"} if roles else {}
        # Invalid requests only where the operation takes input to get wrong.
        takes_input = "parameters" in operation.definition.raw or "requestBody" in operation.definition.raw
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,):
            tried[f"{operation.method.upper()} {operation.path} {mode.value}"] = _run(operation, mode, service.url, headers)
    assert all(tried.values()), tried
    assert "Traceback" not in service.log()


def _run(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> int:
    """Send up to EXAMPLES generated requests to one operation; the number sent."""
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
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)
        sent += 1

    check()
    return sent
