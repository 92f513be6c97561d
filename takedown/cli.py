"""``hashguard audit ...`` and ``hashguard takedown ...``: registered by ``hashguard.cli``.

The caller passes ``run(work)``, which opens a migrated connection, awaits ``work(conn)`` and
returns its result, so this module needs nothing from the detector's command line; the
detector's match records come in as ``retention_store.ScanMatches``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kernel import auditlog
from kernel.commandline import invoking_user
from kernel.settings import Settings
from takedown import policy_store, retention_store
from takedown.rules import Policy
from takedown.tickets import Actor
from takedown.workflow import RESTRICTIONS, Action

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

Run = Callable[[Callable[["asyncpg.Connection"], Awaitable[Any]]], Any]


def cli_actor() -> Actor:
    """Command-line changes are attributed to the operating-system user who ran them."""
    return Actor(key_id=None, name=invoking_user())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], run: Run, scans: retention_store.ScanMatches) -> None:
    """Add ``audit`` and ``takedown``; ``scans`` is the detector's match records, which ``takedown purge`` clears too."""
    audit = sub.add_parser("audit", help="the tamper-evident audit trail").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="walk the hash chain; exit 1 and name the first broken link if any")
    verify.set_defaults(func=lambda args: _verify(run))
    show = audit.add_parser("show", help="print audit entries as JSON lines")
    show.add_argument("--subject", help="only entries about this subject, e.g. ticket:<id> or key:<prefix>")
    show.add_argument("--after", type=int, default=0, help="start after this sequence number")
    show.add_argument("--limit", type=int, default=100)
    show.set_defaults(func=lambda args: _show(run, args))

    takedown = sub.add_parser("takedown", help="takedown policies and jobs").add_subparsers(
        dest="takedown_command", required=True
    )
    policy = takedown.add_parser("policy", help="mark a hash list for automated action, or for human review")
    policy.add_argument("hashset", help="the list's name")
    policy.add_argument("--tool", default="*", help="only matches by this tool (default: any)")
    group = policy.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--auto-action", dest="auto", action="store_true", help="matches are actioned without waiting for a reviewer"
    )
    group.add_argument(
        "--review", dest="auto", action="store_false", help="matches wait for a reviewer (the default for every list)"
    )
    policy.add_argument("--action", default="remove", choices=sorted(a.value for a in RESTRICTIONS))
    policy.set_defaults(func=lambda args: _policy(run, args))
    takedown.add_parser("policies", help="list the policies").set_defaults(func=lambda args: _policies(run))
    takedown.add_parser("purge", help="purge evidence past its preservation deadline now").set_defaults(
        func=lambda args: _purge(run, scans)
    )


def _verify(run: Run) -> int:
    result = run(auditlog.verify_audit)
    if result.broken is not None:
        print(f"audit chain BROKEN at entry {result.broken.seq}: {result.broken.reason}", file=sys.stderr)
        print(f"({result.checked} entries before it are intact)", file=sys.stderr)
        return 1
    print(f"audit chain intact: {result.checked} entries, head {result.head.hex()}")
    return 0


def _show(run: Run, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[Any]:
        return await auditlog.audit_page(conn, after_seq=args.after, subject=args.subject, limit=args.limit)

    for entry in run(work):
        print(json.dumps({**json.loads(entry.entry), "hash": entry.hash.hex()}))
    return 0


def _policy(run: Run, args: argparse.Namespace) -> int:
    policy = Policy(hashset=args.hashset, tool=args.tool, auto_action=args.auto, action=Action(args.action))
    run(lambda conn: policy_store.set_policy(conn, cli_actor(), policy))
    mode = f"auto_action ({policy.action})" if policy.auto_action else "human review"
    print(f"policy for {policy.hashset}/{policy.tool}: {mode}")
    return 0


def _policies(run: Run) -> int:
    print("hashset\ttool\tauto_action\taction")
    for p in run(policy_store.list_policies):
        print(f"{p.hashset}\t{p.tool}\t{str(p.auto_action).lower()}\t{p.action}")
    return 0


def _purge(run: Run, scans: retention_store.ScanMatches) -> int:
    purged = run(lambda conn: retention_store.purge_expired_evidence(conn, scans))
    days = Settings.from_env().retention_days
    unticketed = run(lambda conn: retention_store.purge_unticketed_matches(conn, days, scans))
    print(f"purged the evidence of {purged} tickets")
    print(f"purged {unticketed} match records older than {days} days that no ticket holds")
    return 0
