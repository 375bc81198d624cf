"""What the SQL backends share: the tables, batched writes, per-store migrations.

The stores (sakari/storage/stores.py) are written once, in the SQL that
SQLite and PostgreSQL both speak, with ``?`` placeholders; a backend runs
statements, nothing more. Each backend keeps its own DDL, because column
types differ, but the tables and their columns are the same everywhere, which
is what lets ``sakari storage copy`` move data between backends table by table.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sakari.errors import StartError

Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Many:
    """One statement run once per row of arguments (inserts in bulk)."""

    sql: str
    rows: Sequence[Row]


# A statement: (SQL with ? placeholders, arguments), or Many. A write runs its
# statements in one transaction; each statement's result is the rows it returned.
Statement = tuple[str, Row] | Many
Results = list[list[Row]]


@dataclass(frozen=True, slots=True)
class Table:
    store: str  # the store kind whose migrations create it
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key, for copying in key order


TABLES: dict[str, Table] = {
    "accounts": Table(
        "accounts",
        ("owner", "salt", "iterations", "sha1_stored", "sha1_server", "sha256_stored", "sha256_server"),
        ("owner",),
    ),
    "roster": Table(
        "roster",
        ("owner", "jid", "name", "subscription", "ask", "pending_in", "approved", "listed", "groups"),
        ("owner", "jid"),
    ),
    "roster_version": Table("roster", ("owner", "version"), ("owner",)),
    "offline": Table("offline", ("id", "owner", "stanza"), ("id",)),
    # The table of the map store keeps its first name: modules stored documents in it before maps existed.
    "documents": Table("map", ("owner", "kind", "key", "data"), ("owner", "kind", "key")),
    "blocklist": Table("blocklist", ("owner", "jid"), ("owner", "jid")),
    "keyvalue": Table("keyvalue", ("name", "owner", "value"), ("name", "owner")),
    "archive": Table("archive", ("name", "owner", "seq", "with_jid", "stanza", "text"), ("name", "owner", "seq")),
}

# Under this many matches over every archive, a search reads each match (see text_matches).
TEXT_FEW = 2000

# The stores of the first schema, which had one global version: a database at
# that version 1 holds exactly these, each at its own version 1.
LEGACY_STORES = ("accounts", "roster", "offline", "map", "blocklist")


# Marks a migration that each backend writes its own way (full-text search, say): the
# backend passes its script to migrations_for, keyed by (store, version).
OWN_SCRIPT = None

# Per store kind, its migrations in order (see migrations_to_run), in SQL both backends
# speak but for the types each names differently (migrations_for fills them in). A
# migration that needs more than the types of a backend is OWN_SCRIPT here.
# Flags are integers, not booleans, so rows copy between backends unchanged.
SCHEMA: dict[str, list[str | None]] = {
    "accounts": [
        """CREATE TABLE accounts (
            owner TEXT PRIMARY KEY, salt {blob} NOT NULL, iterations INTEGER NOT NULL,
            sha1_stored {blob} NOT NULL, sha1_server {blob} NOT NULL,
            sha256_stored {blob} NOT NULL, sha256_server {blob} NOT NULL)""",
    ],
    "roster": [
        """CREATE TABLE roster (
            owner TEXT NOT NULL, jid TEXT NOT NULL, name TEXT, subscription TEXT NOT NULL,
            ask INTEGER NOT NULL, pending_in INTEGER NOT NULL, approved INTEGER NOT NULL,
            listed INTEGER NOT NULL, groups TEXT NOT NULL, PRIMARY KEY (owner, jid));
        CREATE TABLE roster_version (owner TEXT PRIMARY KEY, version {bigint} NOT NULL)""",
    ],
    "offline": [
        """CREATE TABLE offline (id {serial_key}, owner TEXT NOT NULL, stanza {blob} NOT NULL);
        CREATE INDEX offline_owner ON offline (owner, id)""",
    ],
    "map": [
        """CREATE TABLE documents (owner TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, data {blob} NOT NULL,
            PRIMARY KEY (owner, kind, key))""",
    ],
    "blocklist": [
        "CREATE TABLE blocklist (owner TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (owner, jid))",
    ],
    "keyvalue": [
        """CREATE TABLE keyvalue (name TEXT NOT NULL, owner TEXT NOT NULL, value {blob} NOT NULL,
            PRIMARY KEY (name, owner));
        CREATE INDEX keyvalue_owner ON keyvalue (owner)""",
    ],
    "archive": [
        """CREATE TABLE archive (name TEXT NOT NULL, owner TEXT NOT NULL, seq {bigint} NOT NULL,
            with_jid TEXT NOT NULL, stanza {blob} NOT NULL, PRIMARY KEY (name, owner, seq));
        CREATE INDEX archive_with ON archive (name, owner, with_jid, seq);
        CREATE INDEX archive_age ON archive (name, seq);
        CREATE INDEX archive_owner ON archive (owner)""",
        # The text that full-text search finds (a message's body), in a column of its own and indexed.
        OWN_SCRIPT,
    ],
}


def migrations_for(types: Mapping[str, str], own: Mapping[tuple[str, int], str]) -> dict[str, list[str]]:
    """SCHEMA with a backend's names for the types ``blob``, ``bigint`` and ``serial_key``, and
    its ``own`` scripts, by (store, version), where SCHEMA has OWN_SCRIPT."""
    missing = [
        (store, n) for store, scripts in SCHEMA.items() for n, script in enumerate(scripts, 1)
        if script is OWN_SCRIPT and (store, n) not in own
    ]
    if missing:
        raise ValueError(f"no script of this backend for the migrations {missing}")
    return {
        store: [own[store, n] if script is OWN_SCRIPT else script.format(**types) for n, script in enumerate(scripts, 1)]
        for store, scripts in SCHEMA.items()
    }



class SchemaTooNew(StartError):
    """The database was written by a newer Sakari; opening it could damage data."""


def migrations_to_run(
    found: Mapping[str, int], declared: Mapping[str, Sequence[str]], where: str
) -> list[tuple[str, int, str]]:
    """(store, version reached, script) for every migration ``found`` lacks, in order.

    Stores migrate independently, so features built in parallel each add
    their own store kind without colliding on version numbers.
    """
    for store, version in found.items():
        known = len(declared.get(store, ()))
        if version > known:
            raise SchemaTooNew(
                f"{where}: the database's {store!r} data is at schema version {version}, newer than this "
                f"Sakari knows ({known}); run the newer Sakari, or restore a backup made for this one"
            )
    return [
        (store, number + 1, scripts[number])
        for store, scripts in declared.items()
        for number in range(found.get(store, 0), len(scripts))
    ]


def settle(answers: Iterable[tuple[asyncio.Future[Results], Results | BaseException]]) -> None:
    """Hand each waiting caller its result or its exception."""
    for future, answer in answers:
        if future.done():  # its caller was cancelled
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


class SqlDatabase(ABC):
    """A connection to one database: batched, ordered writes and reads that see them.

    Writes are queued and committed in batches: whatever arrives while a
    transaction runs goes into the next one, so a burst of offline messages
    costs one commit, not one per message. A write's future resolves only
    after its transaction committed. Batches run one after the other, so
    writes commit in the order they were issued.
    """

    # Where the data is, for messages (never holding a password).
    place: str
    # Full-text search of archives: a condition on the archive table with one placeholder, for
    # which text_argument(words) gives the value; every word must occur, in any case.
    text_condition: str
    # A search with few matches over every archive is fastest read from them rather than from the
    # owner's items, which both planners prefer, misled by a guess of how common a word is (a rare
    # word in an archive of a million: 140 ms on SQLite, 3.7 s on PostgreSQL). text_matches counts
    # the matches (one placeholder, for text_argument) up to TEXT_FEW; below it, the archive store
    # keeps the owner's indexes out of the plan.
    text_matches: str

    # What a write that appends archive items ends with, to index their text (where the backend's
    # index does not follow the table by itself).
    archive_indexing: tuple[Statement, ...] = ()
    # Archive rows per INSERT in SqlArchive.append_many (a power of two); 1: one statement per row (Many).
    insert_rows = 1

    @staticmethod
    @abstractmethod
    def text_argument(words: list[str]) -> str: ...

    def __init__(self) -> None:
        self._queue: list[tuple[Sequence[Statement], asyncio.Future[Results]]] = []
        self._queued_done: asyncio.Future[None] | None = None  # resolves when the queued batch committed
        self._running_done: asyncio.Future[None] | None = None  # resolves when the running batch committed
        self._flush_task: asyncio.Task[None] | None = None

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create or upgrade the tables (raises StartError with the reason)."""

    async def close(self) -> None:
        if self._flush_task is not None:
            await self._flush_task

    async def read(self, *statements: Statement) -> Results:
        # Reads see every write issued before them (an offline message stored just before its
        # recipient's login): wait for the batch holding the last such write. Later writes do not delay us.
        pending = self._queued_done or self._running_done
        if pending is not None:
            await asyncio.shield(pending)
        return await self._read(statements)

    async def write(self, *statements: Statement) -> Results:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Results] = loop.create_future()
        self._queue.append((statements, future))
        if self._queued_done is None:
            self._queued_done = loop.create_future()
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                self._running_done, self._queued_done = self._queued_done, None
                try:
                    results = await self._run_batch([statements for statements, _ in batch])
                except BaseException as e:  # the whole batch failed (the disk, the server): tell every writer
                    results = [e] * len(batch)
                settle(zip((future for _, future in batch), results))
                assert self._running_done is not None
                self._running_done.set_result(None)
                self._running_done = None
        finally:
            self._flush_task = None

    @abstractmethod
    async def _read(self, statements: Sequence[Statement]) -> Results:
        """Run read-only statements; several see one snapshot."""

    @abstractmethod
    async def _run_batch(self, batch: list[Sequence[Statement]]) -> list[Results | BaseException]:
        """Run each write in one transaction; a write that fails must not sink the others."""

    # --- whole tables, for copying between backends ---------------------------------

    async def dump(self, table: str, chunk: int = 1000) -> AsyncIterator[list[Row]]:
        """Every row of a table in key order, in chunks (keyset paging: no OFFSET scans)."""
        spec = TABLES[table]
        columns, key = ", ".join(spec.columns), ", ".join(spec.key)
        marks = ", ".join("?" for _ in spec.key)
        positions = [spec.columns.index(k) for k in spec.key]
        last: Row | None = None
        while True:
            if last is None:
                sql, args = f"SELECT {columns} FROM {table} ORDER BY {key} LIMIT ?", (chunk,)
            else:
                sql = f"SELECT {columns} FROM {table} WHERE ({key}) > ({marks}) ORDER BY {key} LIMIT ?"
                args = (*(last[p] for p in positions), chunk)
            (rows,) = await self.read((sql, args))
            rows = [tuple(row) for row in rows]  # plain tuples whichever driver read them
            if rows:
                yield rows
            if len(rows) < chunk:
                return
            last = rows[-1]

    async def load(self, table: str, rows: Sequence[Row]) -> None:
        spec = TABLES[table]
        marks = ", ".join("?" for _ in spec.columns)
        await self.write(Many(f"INSERT INTO {table} ({', '.join(spec.columns)}) VALUES ({marks})", rows))

    async def loaded(self) -> None:
        """After load(): let generated ids continue past the copied ones."""

    async def count_rows(self) -> dict[str, int]:
        results = await self.read(*((f"SELECT count(*) FROM {table}", ()) for table in TABLES))
        return {table: rows[0][0] for table, rows in zip(TABLES, results)}

    async def empty(self) -> None:
        """Delete every row of every table (a forced copy replaces the target's data)."""
        await self.write(*((f"DELETE FROM {table}", ()) for table in TABLES))
