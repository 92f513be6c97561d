"""A takedown webhook round trip through a real ``hashguard serve`` process, and a SIGKILL between
a decision and its delivery losing nothing and sending nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from tests.conftest import Cli, FakePlatform, Service
from tests.harness import ok as _ok


@pytest.mark.slow
def test_a_kill_between_decision_and_delivery_loses_nothing_and_sends_nothing_twice(
    cli: Cli, start_service: Callable[..., Service], fake_platform: FakePlatform, migrated_database_url: str
) -> None:
    env = {
        "HASHGUARD_WEBHOOK_URL": fake_platform.url,
        "HASHGUARD_WEBHOOK_SECRET": fake_platform.secret,
        "HASHGUARD_WEBHOOK_TIMEOUT_S": "3",
        "HASHGUARD_WEBHOOK_BACKOFF_S": "0.05",
        "HASHGUARD_WEBHOOK_BACKOFF_MAX_S": "0.2",
        "HASHGUARD_OUTBOX_POLL_S": "0.1",
    }
    service = start_service(**env)
    platform, reviewer = cli.new_key(), cli.new_key("reviewer")
    fake_platform.set_default("fail")  # the platform is down...
    fake_platform.script("kill-a", "apply_then_hang")  # ...except that it applies A and never answers

    def decide(content_id: str) -> str:
        ticket = _ok(
            service.post_json("/v1/notices", {"source": "user_report", "content_id": content_id, "explanation": "x"}, platform),
            201,
        )["ticket_id"]
        assert _ok(service.post_json("/v1/queue/claim", {}, reviewer))["ticket"]["id"] == ticket
        _ok(service.post_json(f"/v1/tickets/{ticket}/decision", {"decision": "actioned", "explanation": "illegal"}, reviewer))
        return str(ticket)

    ticket_b = decide("kill-b")
    fake_platform.wait_for(
        lambda: any(r["body"].get("content_id") == "kill-b" for r in fake_platform.snapshot()[0]), what="B's first attempt"
    )
    ticket_a = decide("kill-a")
    fake_platform.wait_for(lambda: len(fake_platform.snapshot()[1]) == 1, what="A applied by the platform")
    assert service.process is not None
    service.process.kill()  # SIGKILL: A's answer is lost, B is still undelivered
    service.process.wait(timeout=30)

    async def outbox() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(migrated_database_url)
        try:
            return list(
                await conn.fetch("SELECT ticket_id::text, state::text, idempotency_key::text FROM takedown_outbox ORDER BY id")
            )
        finally:
            await conn.close()

    rows = asyncio.run(outbox())
    assert [(r["ticket_id"], r["state"]) for r in rows] == [(ticket_b, "pending"), (ticket_a, "pending")]  # nothing lost
    fake_platform.set_default("ok")  # the platform recovers
    start_service(**env)
    fake_platform.wait_for(
        lambda: all(r["state"] == "delivered" for r in asyncio.run(outbox())),
        timeout=90,
        what="every action delivered after the restart",
    )
    requests, applied = fake_platform.snapshot()
    keys = {r["ticket_id"]: r["idempotency_key"] for r in rows}
    assert set(applied) == set(keys.values())  # each action applied, exactly once
    a_requests = [r for r in requests if r["key"] == keys[ticket_a]]
    assert len(a_requests) >= 2 and all(r["duplicate"] for r in a_requests[1:])
    assert len({r["raw"] for r in a_requests}) == 1  # the retry is the same request
    assert [applied[keys[t]]["action"] for t in (ticket_a, ticket_b)] == ["remove", "remove"]
