"""``hashguard tools ...``: list the installed tools and why each scans or not; record approvals,
suspensions, withdrawals and local allowances. Every change is written with its event."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from detector.approvals import pg as approvals_pg
from detector.tools.policy import (
    ApprovalStatus,
    NewApproval,
    activation_record,
    allowance_record,
    approval_record,
    decide_all,
)
from detector.tools.registry import ToolRegistry, describe
from kernel.api import parse_moment
from kernel.commandline import invoking_user, run_with_connection
from kernel.errors import BadRequest
from kernel.settings import Settings

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

T = TypeVar("T")


_run = run_with_connection


def _actor(args: argparse.Namespace) -> str:
    return invoking_user(args.actor)


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    # A bare date means midnight UTC: approvals are compared in UTC everywhere. The range is the
    # timestamp rule every API field keeps (kernel.api).
    try:
        return parse_moment(f"--{name}", text, naive_is_utc=True)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def _decisions(conn: asyncpg.Connection, registry: ToolRegistry) -> dict[str, Any]:
    approvals, allowances = await approvals_pg.policy_inputs(conn)
    return decide_all(
        {t.name: t.version for t in registry},
        approvals=approvals,
        allowances=allowances,
        jurisdictions=Settings.from_env().jurisdictions,
        now=datetime.now(UTC),
    )


def cmd_list(args: argparse.Namespace) -> int:
    registry = ToolRegistry.load(Settings.from_env().tools)
    decisions = _run(lambda conn: _decisions(conn, registry))
    print("tool\tversion\tkind\tbits\tthreshold\tactive\treason\tapproval\tdetail")
    for tool in registry:
        d = decisions[tool.name]
        approval = d.approval_id if d.approval_id is not None else (f"local#{d.allowance_id}" if d.allowance_id else "-")
        active = "yes" if d.active else "no"
        print(
            f"{tool.name}\t{tool.version}\t{tool.kind}\t{tool.bits}\t{tool.threshold()}\t{active}\t{d.reason}\t{approval}\t{d.detail}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    registry = ToolRegistry.load()
    tool = registry.get(args.tool)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        decisions = await _decisions(conn, registry)
        return {
            **describe(tool),
            "activation": activation_record(decisions[tool.name]),
            "approvals": [approval_record(a) for a in await approvals_pg.list_approvals(conn, tool.name)],
            "local_allowances": [
                allowance_record(a) for a in await approvals_pg.standing_allowances(conn) if a.tool == tool.name
            ],
            "events": [
                {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "approval_id": e.approval_id}
                for e in await approvals_pg.list_events(conn, tool.name, 20)
            ],
        }

    print(json.dumps(_run(work), indent=2))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    registry = ToolRegistry.load()
    new = NewApproval.checked(
        tool=args.tool,
        authority=args.authority,
        jurisdiction=args.jurisdiction,
        instrument=args.instrument,
        status=args.status,
        versions=args.versions,
        scope=args.scope or [],
        valid_from=_moment(args.valid_from, "valid-from"),
        valid_until=_moment(args.valid_until, "valid-until"),
        accuracy_statement=args.accuracy,
        accuracy_reference=args.accuracy_ref,
        evidence_url=args.evidence_url,
    )
    approval = _run(lambda conn: approvals_pg.create_approval(conn, new, actor=_actor(args)))
    print(approval.id)
    note = "" if new.tool in registry else f"; note: no tool named {new.tool!r} is installed here"
    print(
        f"(recorded approval {approval.id}: {new.tool} {new.versions} {new.status} by {new.authority} in {new.jurisdiction}{note})"
    )
    return 0


def _status_command(status: ApprovalStatus) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        target = ApprovalStatus(args.status) if status is ApprovalStatus.APPROVED else status
        approval = _run(lambda conn: approvals_pg.set_status(conn, args.approval_id, target, actor=_actor(args), note=args.note))
        print(f"approval {approval.id} ({approval.tool}, {approval.authority}, {approval.jurisdiction}) is now {approval.status}")
        return 0

    return command


def cmd_allow_local(args: argparse.Namespace) -> int:
    registry = ToolRegistry.load()
    tool = registry.get(args.tool)
    allowance = _run(
        lambda conn: approvals_pg.allow_local(
            conn, tool=tool.name, versions=args.versions, reason=args.reason, actor=_actor(args)
        )
    )
    print(
        f"allowed {tool.name} {allowance.versions} locally (allowance {allowance.id}); recorded as a local allowance, not an approval"
    )
    return 0


def cmd_disallow_local(args: argparse.Namespace) -> int:
    allowance = _run(lambda conn: approvals_pg.revoke_allowance(conn, tool=args.tool, actor=_actor(args), note=args.note))
    print(f"revoked the local allowance {allowance.id} of {allowance.tool}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    for e in _run(lambda conn: approvals_pg.list_events(conn, args.tool, args.limit)):
        print(json.dumps(e.record()))
    return 0


def register(sub: Any) -> None:
    """Add ``hashguard tools ...`` to the main parser's subcommands."""
    tools = sub.add_parser("tools", help="detection tools: approvals per jurisdiction and local allowances").add_subparsers(
        dest="tools_command", required=True
    )
    actor = argparse.ArgumentParser(add_help=False)
    actor.add_argument("--actor", help="who makes the change, for the record (default: cli:<login name>)")

    tools.add_parser("list", help="installed tools and whether each may scan here, and why").set_defaults(func=cmd_list)
    show = tools.add_parser("show", help="one tool: its interface, approvals, allowance and recent events (JSON)")
    show.add_argument("tool")
    show.set_defaults(func=cmd_show)

    approve = tools.add_parser("approve", parents=[actor], help="record an authority's approval of a tool; prints its id")
    approve.add_argument("tool")
    approve.add_argument("--authority", required=True, help="e.g. Ofcom, eSafety")
    approve.add_argument("--jurisdiction", required=True, help="e.g. GB, AU, EU (compared with HASHGUARD_JURISDICTIONS)")
    approve.add_argument("--instrument", required=True, help="the notice, code or decision, e.g. 'OSA s.121 accreditation'")
    approve.add_argument(
        "--status",
        default="approved",
        choices=[s.value for s in ApprovalStatus if s not in (ApprovalStatus.SUSPENDED, ApprovalStatus.WITHDRAWN)],
    )
    approve.add_argument("--versions", default="*", help="'*' or a PEP 440 range of the tool's release, e.g. '>=0.2,<0.3'")
    approve.add_argument("--scope", action="append", help="content category covered, e.g. csam_known (repeatable)")
    approve.add_argument("--valid-from", help="ISO 8601 date or date-time (default: now)")
    approve.add_argument("--valid-until", help="ISO 8601 date or date-time (default: open-ended)")
    approve.add_argument("--accuracy", default="", help="the accuracy statement, as published")
    approve.add_argument("--accuracy-ref", default="", help="where the accuracy statement comes from")
    approve.add_argument("--evidence-url", default="", help="link to the approval itself")
    approve.set_defaults(func=cmd_approve)

    for name, status, text in (
        ("suspend", ApprovalStatus.SUSPENDED, "suspend an approval: the tool stops scanning everywhere within seconds"),
        (
            "withdraw",
            ApprovalStatus.WITHDRAWN,
            "withdraw an approval for good: the tool stops scanning everywhere within seconds",
        ),
        ("reinstate", ApprovalStatus.APPROVED, "lift a suspension (or confirm a proposed approval)"),
    ):
        command = tools.add_parser(name, parents=[actor], help=text)
        command.add_argument("approval_id", type=int)
        command.add_argument("--note", default="", help="why, for the record")
        if status is ApprovalStatus.APPROVED:
            command.add_argument("--status", default="approved", choices=["approved", "recommended", "permitted"])
        command.set_defaults(func=_status_command(status))

    allow = tools.add_parser("allow-local", parents=[actor], help="let a tool scan here without an approval (recorded as such)")
    allow.add_argument("tool")
    allow.add_argument("--reason", required=True, help="why this tool may scan here without an approval")
    allow.add_argument("--versions", default="*")
    allow.set_defaults(func=cmd_allow_local)
    disallow = tools.add_parser("disallow-local", parents=[actor], help="revoke a tool's local allowance")
    disallow.add_argument("tool")
    disallow.add_argument("--note", default="")
    disallow.set_defaults(func=cmd_disallow_local)

    events = tools.add_parser("events", help="the history of approval and allowance changes, newest first (JSON lines)")
    events.add_argument("--tool")
    events.add_argument("--limit", type=int, default=100)
    events.set_defaults(func=cmd_events)
