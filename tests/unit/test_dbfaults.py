"""Which driver errors mean "PostgreSQL is unreachable" (503 not_ready) and which are bugs (500)."""

from __future__ import annotations

import asyncpg
import pytest

from kernel.dbfaults import DatabaseUnavailable, describe, is_connection_failure


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.PostgresConnectionError("connection failure"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("pool is closing"),
    ],
)
def test_a_lost_server_is_a_connection_failure(exc: BaseException) -> None:
    assert is_connection_failure(exc)


def test_what_caused_an_error_counts_too() -> None:
    outer = RuntimeError("could not do the work")
    outer.__cause__ = asyncpg.CannotConnectNowError("the database system is starting up")
    assert is_connection_failure(outer)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        ConnectionRefusedError(111, "Connection refused"),  # not raised by the driver: not the database's
        TimeoutError(),
        KeyError("x"),
    ],
)
def test_a_bug_or_someone_elses_socket_is_not(exc: BaseException) -> None:
    assert not is_connection_failure(exc)


def test_the_answer_is_503_not_ready_and_the_description_is_one_line() -> None:
    assert (DatabaseUnavailable.status, DatabaseUnavailable.code) == (503, "not_ready")
    assert describe(asyncpg.CannotConnectNowError("down\nmore")) == "CannotConnectNowError: down"
    assert describe(TimeoutError()) == "TimeoutError"
