"""``hashguard users ...``: console accounts from the shell (registered by ``hashguard.cli``).

A password is read from standard input (one line) or, when none is given, made up and printed
once; it is never a command-line argument, where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kernel import keystore, staffstore
from kernel.commandline import invoking_user
from kernel.staff import STAFF_ROLES, InvalidAccount, normalise_email, staff_role

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

Run = Callable[[Callable[["asyncpg.Connection"], Awaitable[Any]]], Any]


def _password() -> tuple[str, bool]:
    """The password on stdin, or a new random one (and whether it was made up here)."""
    given = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if given:
        return given, False
    return secrets.token_urlsafe(18), True


def _tenants(text: str | None) -> list[str]:
    if text is None:
        return []
    names = sorted({n.strip() for n in text.split(",") if n.strip()})
    if not names:
        raise InvalidAccount("--tenants needs at least one tenant name")
    return names


def _create(run: Run, args: argparse.Namespace) -> int:
    email, role, names = normalise_email(args.email), staff_role(args.role), _tenants(args.tenants)
    password, made = _password()

    async def work(conn: asyncpg.Connection) -> staffstore.StaffUser:
        ids = await keystore.tenant_ids(conn, names)
        missing = [n for n in names if n not in ids]
        if missing:
            raise InvalidAccount(f"no tenant named {', '.join(missing)} (create it with: hashguard tenants create NAME)")
        return await staffstore.create_user(
            conn, email=email, role=role, password=password, tenants=list(ids.values()), actor=invoking_user()
        )

    user = run(work)
    if made:
        print(password)
    where = f"tenants {','.join(names)}" if names else "all tenants"
    print(f"(account {user.email}, role {user.role}, {where}; sign in at /console/)", file=sys.stderr)
    return 0


def _disable(run: Run, args: argparse.Namespace) -> int:
    run(lambda conn: staffstore.disable_user(conn, args.email, actor=invoking_user(), reason=args.reason))
    print(f"disabled {args.email.strip().lower()}; its sessions have ended")
    return 0


def _reset(run: Run, args: argparse.Namespace) -> int:
    password, made = _password()
    run(lambda conn: staffstore.reset_password(conn, args.email, password, actor=invoking_user()))
    if made:
        print(password)
    print(f"(new password for {args.email.strip().lower()}; its sessions have ended)", file=sys.stderr)
    return 0


def _list(run: Run, args: argparse.Namespace) -> int:
    for user in run(staffstore.list_users):
        state = "disabled" if user.disabled_at else ("locked" if user.locked(datetime.now(UTC)) else "active")
        print(f"{user.email}\t{user.role}\t{','.join(user.tenant_names) or '*'}\t{state}\t{user.created_at:%Y-%m-%d %H:%M}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], run: Run) -> None:
    users = sub.add_parser("users", help="console accounts for staff (reviewers, leads, admins, auditors)").add_subparsers(
        dest="users_command", required=True
    )
    create = users.add_parser("create", help="create an account; the password is read from stdin or made up and printed once")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=sorted(r.value for r in STAFF_ROLES))
    create.add_argument("--tenants", help="limit the account to these tenants, comma-separated (default: all)")
    create.set_defaults(func=lambda args: _create(run, args))
    disable = users.add_parser("disable", help="disable an account (its sessions end at once)")
    disable.add_argument("email")
    disable.add_argument("--reason")
    disable.set_defaults(func=lambda args: _disable(run, args))
    reset = users.add_parser("reset-password", help="set a new password (from stdin, or made up and printed once)")
    reset.add_argument("email")
    reset.set_defaults(func=lambda args: _reset(run, args))
    users.add_parser("list", help="list accounts").set_defaults(func=lambda args: _list(run, args))
