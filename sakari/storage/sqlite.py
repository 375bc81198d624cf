"""SQLite backend (WAL): the embedded default.

Writes run on one thread that owns the writing connection. They are queued
and committed in batches: whatever arrives while a transaction runs goes
into the next one, so a burst of offline messages costs one fsync, not one
per message. A write's future resolves only after its transaction
committed, so nothing acknowledged can be lost to a crash of the process.

Reads are small indexed look-ups (an account's keys, a roster): they run
on the event loop's thread through a second connection, which WAL lets
read while the writer writes. A thread hop would cost more than the read.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sakari.config import declare, one_of
from sakari.credentials import Credentials, ScramKeys
from sakari.storage.base import RosterItem

T = TypeVar("T")

SYNCHRONOUS = declare(
    "storage.sqlite_synchronous",
    "normal",
    "SQLite synchronous mode: \"normal\" survives crashes of Sakari (WAL), \"full\" also survives power loss at some cost.",
    one_of("normal", "full"),
)

MIGRATIONS: list[str] = [
    # 1: the core data kinds
    """
    CREATE TABLE accounts (
        owner TEXT PRIMARY KEY, salt BLOB NOT NULL, iterations INTEGER NOT NULL,
        sha1_stored BLOB NOT NULL, sha1_server BLOB NOT NULL,
        sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL);
    CREATE TABLE roster (
        owner TEXT NOT NULL, jid TEXT NOT NULL, name TEXT, subscription TEXT NOT NULL,
        ask INTEGER NOT NULL, pending_in INTEGER NOT NULL, approved INTEGER NOT NULL,
        listed INTEGER NOT NULL, groups TEXT NOT NULL, PRIMARY KEY (owner, jid));
    CREATE TABLE roster_version (owner TEXT PRIMARY KEY, version INTEGER NOT NULL);
    CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, stanza BLOB NOT NULL);
    CREATE INDEX offline_owner ON offline (owner, id);
    CREATE TABLE documents (owner TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (owner, kind, key));
    CREATE TABLE blocklist (owner TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (owner, jid));
    """,
]

# Every table holding per-account data, for account deletion.
_OWNED_TABLES = ("roster", "roster_version", "offline", "documents", "blocklist", "accounts")


class Database:
    """One SQLite file: batched write transactions on a thread, reads in place."""

    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = synchronous
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sakari-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA busy_timeout=10000")
        reader.execute("PRAGMA query_only=ON")
        self._reader = reader

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
        self._conn = conn

    async def close(self) -> None:
        if self._flush_task is not None:
            await self._flush_task
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # Reads see every write queued before them (e.g. an offline message stored just before login):
        # a no-op queued behind those writes resolves once they are committed. Later writes do not delay us.
        if self._flushing:
            await self.write(_nothing)
        assert self._reader is not None
        return fn(self._reader)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((fn, future))
        if not self._flushing:
            self._flushing = True
            self._flush_task = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                results = await loop.run_in_executor(self._executor, self._run_batch, [fn for fn, _ in batch])
                for (_, future), (ok, value) in zip(batch, results):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._flushing = False

    def _run_batch(self, fns: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[bool, Any]]:
        conn = self._conn
        assert conn is not None
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in fns:
                conn.execute("SAVEPOINT one")
                try:
                    results.append((True, fn(conn)))
                    conn.execute("RELEASE one")
                except Exception as e:  # one failed write must not sink the others in the batch
                    conn.execute("ROLLBACK TO one")
                    conn.execute("RELEASE one")
                    results.append((False, e))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return results


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(f"the database schema ({version}) is newer than this Sakari knows ({len(MIGRATIONS)})")
    for number in range(version, len(MIGRATIONS)):
        conn.executescript("BEGIN IMMEDIATE;" + MIGRATIONS[number] + ";")
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version VALUES (?)", (number + 1,))
        conn.execute("COMMIT")


class SqliteAccounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _row(creds: Credentials) -> tuple[Any, ...]:
        k1, k256 = creds.keys["SHA-1"], creds.keys["SHA-256"]
        return (creds.salt, creds.iterations, k1.stored_key, k1.server_key, k256.stored_key, k256.server_key)

    async def create(self, owner: str, creds: Credentials) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?)", (owner, *self._row(creds))
            )
            return cur.rowcount == 1

        return await self.db.write(run)

    async def get(self, owner: str) -> Credentials | None:
        def run(conn: sqlite3.Connection) -> Credentials | None:
            row = conn.execute(
                "SELECT salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server "
                "FROM accounts WHERE owner = ?",
                (owner,),
            ).fetchone()
            if row is None:
                return None
            return Credentials(
                row[0], row[1], {"SHA-1": ScramKeys(row[2], row[3]), "SHA-256": ScramKeys(row[4], row[5])}
            )

        return await self.db.read(run)

    async def set_credentials(self, owner: str, creds: Credentials) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE accounts SET salt=?, iterations=?, sha1_stored=?, sha1_server=?, sha256_stored=?, "
                "sha256_server=? WHERE owner=?",
                (*self._row(creds), owner),
            )
            return cur.rowcount == 1

        return await self.db.write(run)

    async def list(self, host: str | None = None) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            if host is None:
                rows = conn.execute("SELECT owner FROM accounts ORDER BY owner")
            else:
                rows = conn.execute("SELECT owner FROM accounts WHERE owner LIKE ? ORDER BY owner", (f"%@{host}",))
            return [r[0] for r in rows]

        return await self.db.read(run)

    async def delete(self, owner: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            existed = conn.execute("SELECT 1 FROM accounts WHERE owner = ?", (owner,)).fetchone() is not None
            for table in _OWNED_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE owner = ?", (owner,))
            return existed

        return await self.db.write(run)


class SqliteRoster:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, owner: str) -> tuple[int, dict[str, RosterItem]]:
        def run(conn: sqlite3.Connection) -> tuple[int, dict[str, RosterItem]]:
            row = conn.execute("SELECT version FROM roster_version WHERE owner = ?", (owner,)).fetchone()
            items = {}
            for jid, name, sub, ask, pending_in, approved, listed, groups in conn.execute(
                "SELECT jid, name, subscription, ask, pending_in, approved, listed, groups FROM roster WHERE owner = ?",
                (owner,),
            ):
                items[jid] = RosterItem(jid, name, sub, bool(ask), bool(pending_in), bool(approved), bool(listed), json.loads(groups))
            return (row[0] if row else 0), items

        return await self.db.read(run)

    @staticmethod
    def _bump(conn: sqlite3.Connection, owner: str) -> int:
        conn.execute(
            "INSERT INTO roster_version VALUES (?, 1) ON CONFLICT (owner) DO UPDATE SET version = version + 1",
            (owner,),
        )
        return conn.execute("SELECT version FROM roster_version WHERE owner = ?", (owner,)).fetchone()[0]  # type: ignore[no-any-return]

    async def put(self, owner: str, item: RosterItem) -> int:
        def run(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT OR REPLACE INTO roster VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (owner, item.jid, item.name, item.subscription, item.ask, item.pending_in, item.approved,
                 item.listed, json.dumps(item.groups)),
            )
            return self._bump(conn, owner)

        return await self.db.write(run)

    async def delete(self, owner: str, jid: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM roster WHERE owner = ? AND jid = ?", (owner, jid))
            return self._bump(conn, owner)

        return await self.db.write(run)


class SqliteOffline:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def push(self, owner: str, stanza: bytes) -> None:
        await self.db.write(lambda conn: conn.execute("INSERT INTO offline (owner, stanza) VALUES (?, ?)", (owner, stanza)))

    async def list(self, owner: str) -> list[tuple[int, bytes]]:
        return await self.db.read(
            lambda conn: conn.execute("SELECT id, stanza FROM offline WHERE owner = ? ORDER BY id", (owner,)).fetchall()
        )

    async def delete_through(self, owner: str, last_id: int) -> None:
        await self.db.write(lambda conn: conn.execute("DELETE FROM offline WHERE owner = ? AND id <= ?", (owner, last_id)))

    async def count(self, owner: str) -> int:
        return await self.db.read(  # type: ignore[no-any-return]
            lambda conn: conn.execute("SELECT count(*) FROM offline WHERE owner = ?", (owner,)).fetchone()[0]
        )


class SqliteDocuments:
    def __init__(self, db: Database, kind: str) -> None:
        self.db = db
        self.kind = kind

    async def get(self, owner: str, key: str) -> bytes | None:
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT data FROM documents WHERE owner = ? AND kind = ? AND key = ?", (owner, self.kind, key)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    async def set(self, owner: str, key: str, data: bytes | None) -> None:
        if data is None:
            await self.db.write(lambda conn: conn.execute(
                "DELETE FROM documents WHERE owner = ? AND kind = ? AND key = ?", (owner, self.kind, key)))
        else:
            await self.db.write(lambda conn: conn.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)", (owner, self.kind, key, data)))


class SqliteBlocklist:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, owner: str) -> set[str]:
        rows = await self.db.read(lambda conn: conn.execute("SELECT jid FROM blocklist WHERE owner = ?", (owner,)).fetchall())
        return {r[0] for r in rows}

    async def add(self, owner: str, jids: list[str]) -> None:
        await self.db.write(lambda conn: conn.executemany(
            "INSERT OR IGNORE INTO blocklist VALUES (?, ?)", [(owner, j) for j in jids]))

    async def remove(self, owner: str, jids: list[str] | None) -> None:
        if jids is None:
            await self.db.write(lambda conn: conn.execute("DELETE FROM blocklist WHERE owner = ?", (owner,)))
        else:
            await self.db.write(lambda conn: conn.executemany(
                "DELETE FROM blocklist WHERE owner = ? AND jid = ?", [(owner, j) for j in jids]))


class SqliteStorage:
    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        self.db = Database(path, synchronous)
        self.accounts = SqliteAccounts(self.db)
        self.roster = SqliteRoster(self.db)
        self.offline = SqliteOffline(self.db)
        self.blocklist = SqliteBlocklist(self.db)
        self._documents: dict[str, SqliteDocuments] = {}

    def documents(self, kind: str) -> SqliteDocuments:
        store = self._documents.get(kind)
        if store is None:
            store = self._documents[kind] = SqliteDocuments(self.db, kind)
        return store

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
