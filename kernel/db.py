"""PostgreSQL plumbing shared by every context: where the server is, the pool, migrations, named queries.

hashguard always runs on a real PostgreSQL. ``HASHGUARD_DATABASE_URL`` names one; without it an
embedded server (the ``pgserver`` package, a private PostgreSQL build installed by pip) is
started in ``HASHGUARD_DATA_DIR`` so a fresh machine needs nothing but Python.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# Contexts that own migrations, each in its own ``<package>/migrations/NNNN_name.sql``. The numbers
# form one sequence across packages so the order of the whole schema is explicit.
MIGRATION_PACKAGES: tuple[str, ...] = ("kernel", "detector", "hashsets", "takedown")

# pg_advisory_lock key: replicas starting together apply migrations one at a time.
_MIGRATION_LOCK = 0x68617368_67756172  # "hashguar"

_MIGRATION_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_QUERY_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class DatabaseError(RuntimeError):
    """The database could not be reached or prepared."""


def embedded_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir`` and return its URL. Blocking."""
    with warnings.catch_warnings():
        # pgserver reads platformdirs' runtime folder at import; on servers without a login
        # session XDG_RUNTIME_DIR is unset and platformdirs warns, harmlessly, about /tmp.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded mode needs it

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when the last process using it exits; its data stays.
    # Several hashguard processes on one data dir share one server.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri())


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL of ``data_dir`` now rather than at process exit. Blocking."""
    import pgserver

    pgserver.get_server(data_dir / "postgres", cleanup_mode="stop").cleanup()


async def resolve_url(database_url: str | None, data_dir: Path) -> str:
    if database_url:
        return database_url
    try:
        return await asyncio.get_running_loop().run_in_executor(None, embedded_url, data_dir)
    except Exception as exc:  # pgserver raises bare exceptions for a broken data dir or a failed start
        raise DatabaseError(f"could not start the embedded PostgreSQL in {data_dir}: {exc}") from exc


async def create_pool(url: str, max_size: int) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, command_timeout=60)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"could not connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool


@dataclass(frozen=True, kw_only=True, slots=True)
class Migration:
    number: int
    name: str
    package: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover_migrations() -> list[Migration]:
    found: dict[int, Migration] = {}
    for package in MIGRATION_PACKAGES:
        folder = resources.files(package) / "migrations"
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            match = _MIGRATION_NAME.fullmatch(item.name)
            if not match:
                continue
            number = int(match.group(1))
            if number in found:
                raise DatabaseError(f"two migrations are numbered {number:04d}: {found[number].name} and {item.name}")
            found[number] = Migration(number=number, name=match.group(2), package=package, sql=item.read_text())
    return [found[n] for n in sorted(found)]


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations, each in its own transaction; return the numbers applied.

    Holds an advisory lock so several replicas starting at once apply each migration exactly
    once; refuses to start if an applied migration's file has since been edited.
    """
    migrations = discover_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   number integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["number"]: r["checksum"] for r in await conn.fetch("SELECT number, checksum FROM schema_migrations")}
        for migration in migrations:
            if migration.number in done:
                if done[migration.number] != migration.checksum:
                    raise DatabaseError(
                        f"migration {migration.number:04d}_{migration.name} was edited after it was applied;"
                        " add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (number, name, checksum) VALUES ($1, $2, $3)",
                    migration.number,
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %04d_%s", migration.number, migration.name)
            applied_now.append(migration.number)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    """Named queries from a ``.sql`` file: each starts with a ``-- name: some_name`` line."""
    text = (resources.files(package) / filename).read_text()
    parts = _QUERY_NAME.split(text)
    queries = {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    if not queries:
        raise DatabaseError(f"{package}/{filename} holds no named queries")
    return queries


class Queries:
    """Attribute access to a context's named queries, so a typo fails at start, not mid-request."""

    def __init__(self, package: str, filename: str = "queries.sql") -> None:
        self._queries = load_queries(package, filename)

    def __getattr__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None

    def names(self) -> list[str]:
        return list(self._queries)


async def open_pool(database_url: str | None, data_dir: Path, max_size: int, *, run_migrations: bool = True) -> asyncpg.Pool:
    """Resolve the server, connect, and bring the schema up to date."""
    url = await resolve_url(database_url, data_dir)
    pool = await create_pool(url, max_size)
    if run_migrations:
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
    return pool
