"""SQLite backend (WAL): the embedded default, one file in the data directory.

Writes run on one thread that owns the writing connection, in batches
(sakari/storage/sql.py). Reads run on a small pool of threads, each with a
read-only connection of its own, which WAL lets read while the writer
writes: a slow read (a big archive page) never stalls the event loop.
Reads are queued too: a reader thread takes every read waiting and hands
the answers back to the loop together, so a burst of logins costs a few
thread wake-ups, not two per read.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from sakari.config import Config, declare, one_of, positive
from sakari.errors import StartError
from sakari.settings import DATA_DIR
from sakari.storage.cache import CACHE_OWNERS
from sakari.storage.registry import Backend, register
from sakari.storage.sql import LEGACY_STORES, TEXT_FEW, Many, Results, SchemaTooNew, SqlDatabase, Statement, migrations_for, migrations_to_run, settle
from sakari.storage.stores import SqlStorage

SYNCHRONOUS = declare(
    "storage.sqlite_synchronous",
    "normal",
    "SQLite synchronous mode: \"normal\" survives crashes of Sakari (WAL), \"full\" also survives power loss at some cost.",
    one_of("normal", "full"),
)
READERS = declare(
    "storage.sqlite_readers",
    4,
    "Threads reading the SQLite file, each with its own connection, so reads never wait on the event loop or on writes.",
    positive,
)

FILE_NAME = "sakari.sqlite"

# Full-text search is FTS5 over the archive's text column. An external-content index names rows by
# rowid, which VACUUM may renumber unless it is a column of its own: the table is rebuilt with one,
# AUTOINCREMENT so that a number is never given twice. Rows are indexed once per write, by
# ARCHIVE_INDEXING, not by an insert trigger: FTS5 writes its pending terms out at every statement
# inside a trigger, which made indexing cost three times the insert. Deletes go through a trigger,
# so account deletion and expiry need nothing more. Diacritics are kept, as PostgreSQL's "simple"
# configuration keeps them: both backends find the same.
ARCHIVE_TEXT = """
CREATE TABLE archive_new (item INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, owner TEXT NOT NULL,
    seq INTEGER NOT NULL, with_jid TEXT NOT NULL, stanza BLOB NOT NULL, text TEXT, UNIQUE (name, owner, seq));
INSERT INTO archive_new (name, owner, seq, with_jid, stanza) SELECT name, owner, seq, with_jid, stanza FROM archive;
DROP TABLE archive;
ALTER TABLE archive_new RENAME TO archive;
CREATE INDEX archive_with ON archive (name, owner, with_jid, seq);
CREATE INDEX archive_age ON archive (name, seq);
CREATE INDEX archive_owner ON archive (owner);
CREATE VIRTUAL TABLE archive_text USING fts5 (text, content='archive', content_rowid='item',
    tokenize='unicode61 remove_diacritics 0');
CREATE TABLE archive_indexed (item INTEGER NOT NULL);
INSERT INTO archive_indexed SELECT coalesce(max(item), 0) FROM archive;
CREATE TRIGGER archive_text_deleted AFTER DELETE ON archive WHEN old.text IS NOT NULL BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.item, old.text);
END
"""

# Index the rows appended since the last time, in one statement (archive_indexed holds the last row indexed).
ARCHIVE_INDEXING: tuple[Statement, ...] = (
    (
        "INSERT INTO archive_text (rowid, text) SELECT item, text FROM archive "
        "WHERE item > (SELECT item FROM archive_indexed) AND text IS NOT NULL",
        (),
    ),
    ("UPDATE archive_indexed SET item = (SELECT coalesce(max(item), 0) FROM archive)", ()),
)

MIGRATIONS = migrations_for(
    {"blob": "BLOB", "bigint": "INTEGER", "serial_key": "INTEGER PRIMARY KEY AUTOINCREMENT"}, {("archive", 2): ARCHIVE_TEXT}
)


def _statements(script: str) -> list[str]:
    """A script's statements; a trigger's body holds semicolons of its own."""
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Create or upgrade the tables, all in one transaction (a second process waits for it)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        # Before per-store versions, one number covered every table: version 1 is the core stores at 1.
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            if row[0] is not None and row[0] > 1:
                raise SchemaTooNew(f"{where}: the database's schema version {row[0]} is newer than this Sakari knows (1)")
            if row[0] == 1:
                conn.executemany("INSERT INTO schema_versions VALUES (?, 1)", [(store,) for store in LEGACY_STORES])
            conn.execute("DROP TABLE schema_version")
        found = dict(conn.execute("SELECT store, version FROM schema_versions").fetchall())
        for store, version, script in migrations_to_run(found, MIGRATIONS, where):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions VALUES (?, ?) ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                (store, version),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _run(conn: sqlite3.Connection, statements: Sequence[Statement]) -> Results:
    results: Results = []
    for statement in statements:
        if isinstance(statement, Many):
            conn.executemany(statement.sql, statement.rows)
            results.append([])
        else:
            results.append(conn.execute(*statement).fetchall())
    return results


class SqliteDatabase(SqlDatabase):
    archive_indexing = ARCHIVE_INDEXING
    insert_rows = 64  # 384 arguments: under SQLite's smallest limit (999)
    text_condition = "item IN (SELECT rowid FROM archive_text WHERE archive_text MATCH ?)"
    text_matches = f"SELECT count(*) FROM (SELECT 1 FROM archive_text WHERE archive_text MATCH ? LIMIT {TEXT_FEW})"

    @staticmethod
    def text_argument(words: list[str]) -> str:
        # Each word a quoted FTS5 string: the query language's operators are taken as plain words.
        return " ".join(f'"{word}"' for word in words)

    def __init__(self, path: Path, synchronous: str = "normal", readers: int = 4) -> None:
        super().__init__()
        self.path = path
        self.place = str(path.resolve())
        self.synchronous = synchronous
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sakari-sqlite-write")
        self._reader_threads = ThreadPoolExecutor(readers, thread_name_prefix="sakari-sqlite-read")
        self._reader_count = readers
        self._reads: deque[tuple[Sequence[Statement], asyncio.Future[Results]]] = deque()  # appended on the loop, taken by threads
        self._draining = 0  # reader threads at work on _reads; changed on the loop's thread only
        self._conn: sqlite3.Connection | None = None
        self._local = threading.local()  # each reader thread's connection
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    async def open(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer_thread, self._open)
        except (sqlite3.Error, OSError) as e:
            raise StartError(f"storage: cannot open the SQLite database {self.path}: {e}") from None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA busy_timeout=10000")
            migrate(conn, str(self.path))
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def close(self) -> None:
        await super().close()
        self._reader_threads.shutdown(wait=True)
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        await asyncio.get_running_loop().run_in_executor(self._writer_thread, self._close_writer)
        self._writer_thread.shutdown(wait=True)

    def _close_writer(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def loaded(self) -> None:
        await self.write(*ARCHIVE_INDEXING)  # copied rows are searchable too

    async def _read(self, statements: Sequence[Statement]) -> Results:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Results] = loop.create_future()
        self._reads.append((statements, future))
        if self._draining < self._reader_count:
            self._draining += 1
            self._reader_threads.submit(self._drain, loop)
        return await future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On a reader thread: answer queued reads until none is left."""
        answers: list[tuple[asyncio.Future[Results], Results | BaseException]] = []
        try:
            while True:
                try:
                    statements, future = self._reads.popleft()
                except IndexError:
                    break
                try:
                    answers.append((future, self._read_now(statements)))
                except Exception as e:  # noqa: BLE001 - handed to that read's caller
                    answers.append((future, e))
                if len(answers) == 64:  # do not hold answers back while a long queue drains
                    loop.call_soon_threadsafe(settle, answers)
                    answers = []
        finally:
            loop.call_soon_threadsafe(self._drained, answers)

    def _drained(self, answers: list[tuple[asyncio.Future[Results], Results | BaseException]]) -> None:
        self._draining -= 1
        settle(answers)
        # A read queued after that thread found the queue empty, while every thread counted as busy.
        if self._reads and self._draining < self._reader_count:
            self._draining += 1
            self._reader_threads.submit(self._drain, asyncio.get_running_loop())

    def _read_now(self, statements: Sequence[Statement]) -> Results:
        conn = self._reader()
        if len(statements) == 1:
            return _run(conn, statements)
        conn.execute("BEGIN")  # several statements see one snapshot
        try:
            return _run(conn, statements)
        finally:
            conn.execute("COMMIT")

    async def _run_batch(self, batch: list[Sequence[Statement]]) -> list[Results | BaseException]:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, self._write_now, batch)

    def _write_now(self, batch: list[Sequence[Statement]]) -> list[Results | BaseException]:
        conn = self._conn
        assert conn is not None
        results: list[Results | BaseException] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statements in batch:
                conn.execute("SAVEPOINT one")
                try:
                    results.append(_run(conn, statements))
                    conn.execute("RELEASE one")
                except Exception as e:  # one failed write must not sink the others in the batch
                    conn.execute("ROLLBACK TO one")
                    conn.execute("RELEASE one")
                    results.append(e)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return results


class SqliteStorage(SqlStorage):
    def __init__(self, path: Path, synchronous: str = "normal", readers: int = 4, cache_owners: int = 10000) -> None:
        super().__init__(SqliteDatabase(path, synchronous, readers), cache_owners)


def _from_config(config: Config) -> SqliteStorage:
    return SqliteStorage(Path(config[DATA_DIR]) / FILE_NAME, config[SYNCHRONOUS], config[READERS], config[CACHE_OWNERS])


def _from_url(url: str, config: Config) -> SqliteStorage:
    path = urlsplit(url).path
    if not path:
        raise StartError(f"storage: {url!r} names no file (sqlite:///absolute/path or sqlite:relative/path)")
    return SqliteStorage(Path(path), config[SYNCHRONOUS], config[READERS], config[CACHE_OWNERS])


register(Backend("sqlite", _from_config, _from_url))
