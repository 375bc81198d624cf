"""PostgreSQL backend: the scale-out one, several Sakari nodes on one database.

The stores are the same as SQLite's (sakari/storage/stores.py); this file
runs their statements on a pool of asyncpg connections. Writes keep the
batching of sakari/storage/sql.py: one connection at a time commits a batch
in one transaction, which keeps the order of writes and costs one commit per
batch. Reads take any connection of the pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from sakari.config import Config, declare, positive
from sakari.errors import StartError
from sakari.storage.cache import CACHE_OWNERS
from sakari.storage.registry import URL, Backend, register
from sakari.storage.sql import TEXT_FEW, Many, Results, SqlDatabase, Statement, migrations_for, migrations_to_run
from sakari.storage.stores import SqlStorage

POOL_SIZE = declare(
    "storage.pool_size", 10, "Connections to the PostgreSQL server this node opens at most (backend \"postgresql\").", positive
)
CONNECT_TIMEOUT = 10.0  # seconds; a server that does not answer by then is reported as unreachable

# Full-text search: the "simple" configuration (no stemming, no stop words) lower-cases words whatever
# the language, as SQLite's FTS5 does, so both backends find the same messages.
ARCHIVE_TEXT = """
ALTER TABLE archive ADD COLUMN text TEXT;
CREATE INDEX archive_text ON archive USING gin (to_tsvector('simple', text)) WHERE text IS NOT NULL
"""

MIGRATIONS = migrations_for(
    {"blob": "BYTEA", "bigint": "BIGINT", "serial_key": "BIGSERIAL PRIMARY KEY"}, {("archive", 2): ARCHIVE_TEXT}
)

# Nodes starting together take turns at migrating (any constant shared by all Sakari nodes).
_MIGRATION_LOCK = 0x53414B415249


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    """The stores' ``?`` placeholders as PostgreSQL's ``$1, $2…`` (no store puts ``?`` in a literal)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


async def _run(conn: Any, statements: Sequence[Statement]) -> Results:
    results: Results = []
    for statement in statements:
        if isinstance(statement, Many):
            await conn.executemany(_numbered(statement.sql), statement.rows)
            results.append([])
        else:
            sql, args = statement
            results.append(await conn.fetch(_numbered(sql), *args))
    return results


class PostgresDatabase(SqlDatabase):
    # "text IS NOT NULL" lets the planner use the partial index.
    text_condition = "text IS NOT NULL AND to_tsvector('simple', text) @@ plainto_tsquery('simple', ?)"
    text_matches = f"SELECT count(*) FROM (SELECT 1 FROM archive WHERE {text_condition} LIMIT {TEXT_FEW}) AS matches"

    @staticmethod
    def text_argument(words: list[str]) -> str:
        return " ".join(words)

    def __init__(self, url: str, pool_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self.place = redacted(url)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        where = f"storage: PostgreSQL at {self.place}"
        parts = urlsplit(self.url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or len(parts.path) < 2:
            raise StartError(f"{where}: storage.url must look like postgresql://user:password@host:port/database")
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, timeout=CONNECT_TIMEOUT
            )
            async with self._pool.acquire() as conn:
                await self._migrate(conn, where)
        except StartError:
            await self._close_pool()
            raise
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
            await self._close_pool()
            reason = str(e) or type(e).__name__
            raise StartError(f"{where}: {reason}") from None

    @staticmethod
    async def _migrate(conn: Any, where: str) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            found = {r["store"]: r["version"] for r in await conn.fetch("SELECT store, version FROM schema_versions")}
            for store, version, script in migrations_to_run(found, MIGRATIONS, where):
                await conn.execute(script)
                await conn.execute(
                    "INSERT INTO schema_versions VALUES ($1, $2) ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                    store,
                    version,
                )

    async def close(self) -> None:
        await super().close()
        await self._close_pool()

    async def _close_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _read(self, statements: Sequence[Statement]) -> Results:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            if len(statements) == 1:
                return await _run(conn, statements)
            async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot
                return await _run(conn, statements)

    async def _run_batch(self, batch: list[Sequence[Statement]]) -> list[Results | BaseException]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return [await _run(conn, statements) for statements in batch]
            except Exception:  # noqa: BLE001 - whatever it was, the transaction rolled back
                pass
            # A write failed and rolled the batch back: run each alone, so only that one fails.
            # Cheaper than a savepoint around every write, since failures are rare.
            results: list[Results | BaseException] = []
            for statements in batch:
                try:
                    async with conn.transaction():
                        results.append(await _run(conn, statements))
                except Exception as e:  # noqa: BLE001 - handed to that write's caller
                    results.append(e)
            return results

    async def loaded(self) -> None:
        await self.write(("SELECT setval(pg_get_serial_sequence('offline', 'id'), coalesce(max(id), 0) + 1, false) FROM offline", ()))


class PostgresStorage(SqlStorage):
    def __init__(self, url: str, pool_size: int = 10, cache_owners: int = 10000) -> None:
        super().__init__(PostgresDatabase(url, pool_size), cache_owners)


def _from_url(url: str, config: Config) -> PostgresStorage:
    return PostgresStorage(url, config[POOL_SIZE], config[CACHE_OWNERS])


def _from_config(config: Config) -> PostgresStorage:
    if not config[URL]:
        raise StartError("storage.backend is \"postgresql\" but storage.url is empty: set it to postgresql://user:password@host:port/database")
    return _from_url(config[URL], config)


register(Backend("postgresql", _from_config, _from_url))
