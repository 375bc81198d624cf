"""The stores, written once for every SQL backend (see sakari/storage/sql.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from sakari.credentials import Credentials, ScramKeys
from sakari.storage.base import ArchiveEntry, ArchiveItem, ArchivePage, RosterItem
from sakari.storage.cache import CachedAccounts, CachedBlocklist, CachedRoster, OwnerCache
from sakari.storage.sql import TABLES, TEXT_FEW, Many, SqlDatabase, Statement

T = TypeVar("T")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlAccounts:
    def __init__(self, db: SqlDatabase, on_delete: Callable[[str], None]) -> None:
        self.db = db
        self._on_delete = on_delete  # drops the deleted owner from the caches

    @staticmethod
    def _row(creds: Credentials) -> tuple[Any, ...]:
        k1, k256 = creds.keys["SHA-1"], creds.keys["SHA-256"]
        return (creds.salt, creds.iterations, k1.stored_key, k1.server_key, k256.stored_key, k256.server_key)

    async def create(self, owner: str, creds: Credentials) -> bool:
        (rows,) = await self.db.write(
            ("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1", (owner, *self._row(creds)))
        )
        return bool(rows)

    async def get(self, owner: str) -> Credentials | None:
        (rows,) = await self.db.read(
            (
                "SELECT salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server "
                "FROM accounts WHERE owner = ?",
                (owner,),
            )
        )
        if not rows:
            return None
        salt, iterations, s1, k1, s256, k256 = rows[0]
        return Credentials(
            bytes(salt), iterations, {"SHA-1": ScramKeys(bytes(s1), bytes(k1)), "SHA-256": ScramKeys(bytes(s256), bytes(k256))}
        )

    async def set_credentials(self, owner: str, creds: Credentials) -> bool:
        (rows,) = await self.db.write(
            (
                "UPDATE accounts SET salt = ?, iterations = ?, sha1_stored = ?, sha1_server = ?, sha256_stored = ?, "
                "sha256_server = ? WHERE owner = ? RETURNING 1",
                (*self._row(creds), owner),
            )
        )
        return bool(rows)

    async def list(self, host: str | None = None) -> list[str]:
        if host is None:
            (rows,) = await self.db.read(("SELECT owner FROM accounts ORDER BY owner", ()))
        else:
            (rows,) = await self.db.read(
                ("SELECT owner FROM accounts WHERE owner LIKE ? ESCAPE '\\' ORDER BY owner", (f"%@{_escape_like(host)}",))
            )
        return [r[0] for r in rows]

    async def delete(self, owner: str) -> bool:
        # Every table has an owner column: the account's data goes from all of them, generic stores included.
        results = await self.db.write(
            ("DELETE FROM accounts WHERE owner = ? RETURNING 1", (owner,)),
            *((f"DELETE FROM {table} WHERE owner = ?", (owner,)) for table in TABLES if table != "accounts"),
        )
        self._on_delete(owner)
        return bool(results[0])


class SqlRoster:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    async def get(self, owner: str) -> tuple[int, dict[str, RosterItem]]:
        # One statement, so version and items are one snapshot without a transaction's round trips
        # (logins read rosters); the row without a JID carries the version.
        (rows,) = await self.db.read(
            (
                "SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, version FROM roster_version WHERE owner = ? "
                "UNION ALL SELECT jid, name, subscription, ask, pending_in, approved, listed, groups, NULL "
                "FROM roster WHERE owner = ?",
                (owner, owner),
            )
        )
        version, items = 0, {}
        for jid, name, sub, ask, pending_in, approved, listed, groups, row_version in rows:
            if jid is None:
                version = row_version
            else:
                items[jid] = RosterItem(jid, name, sub, bool(ask), bool(pending_in), bool(approved), bool(listed), json.loads(groups))
        return version, items

    _BUMP = (
        "INSERT INTO roster_version VALUES (?, 1) "
        "ON CONFLICT (owner) DO UPDATE SET version = roster_version.version + 1 RETURNING version"
    )

    async def put(self, owner: str, item: RosterItem) -> int:
        _, bumped = await self.db.write(
            (
                "INSERT INTO roster VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, jid) DO UPDATE SET "
                "name = excluded.name, subscription = excluded.subscription, ask = excluded.ask, "
                "pending_in = excluded.pending_in, approved = excluded.approved, listed = excluded.listed, "
                "groups = excluded.groups",
                (owner, item.jid, item.name, item.subscription, item.ask, item.pending_in, item.approved,
                 item.listed, json.dumps(item.groups)),
            ),
            (self._BUMP, (owner,)),
        )
        return int(bumped[0][0])

    async def delete(self, owner: str, jid: str) -> int:
        _, bumped = await self.db.write(
            ("DELETE FROM roster WHERE owner = ? AND jid = ?", (owner, jid)), (self._BUMP, (owner,))
        )
        return int(bumped[0][0])


class SqlOffline:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    async def push(self, owner: str, stanza: bytes) -> None:
        await self.db.write(("INSERT INTO offline (owner, stanza) VALUES (?, ?)", (owner, stanza)))

    async def list(self, owner: str) -> list[tuple[int, bytes]]:
        (rows,) = await self.db.read(("SELECT id, stanza FROM offline WHERE owner = ? ORDER BY id", (owner,)))
        return [(i, bytes(s)) for i, s in rows]

    async def delete_through(self, owner: str, last_id: int) -> None:
        await self.db.write(("DELETE FROM offline WHERE owner = ? AND id <= ?", (owner, last_id)))

    async def count(self, owner: str) -> int:
        (rows,) = await self.db.read(("SELECT count(*) FROM offline WHERE owner = ?", (owner,)))
        return int(rows[0][0])


class SqlBlocklist:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    async def get(self, owner: str) -> set[str]:
        (rows,) = await self.db.read(("SELECT jid FROM blocklist WHERE owner = ?", (owner,)))
        return {r[0] for r in rows}

    async def add(self, owner: str, jids: list[str]) -> None:
        if jids:
            await self.db.write(Many("INSERT INTO blocklist VALUES (?, ?) ON CONFLICT DO NOTHING", [(owner, j) for j in jids]))

    async def remove(self, owner: str, jids: list[str] | None) -> None:
        if jids is None:
            await self.db.write(("DELETE FROM blocklist WHERE owner = ?", (owner,)))
        elif jids:
            marks = ", ".join("?" for _ in jids)
            await self.db.write((f"DELETE FROM blocklist WHERE owner = ? AND jid IN ({marks})", (owner, *jids)))


class SqlKeyValue:
    def __init__(self, db: SqlDatabase, name: str) -> None:
        self.db = db
        self.name = name

    async def get(self, owner: str) -> bytes | None:
        (rows,) = await self.db.read(("SELECT value FROM keyvalue WHERE name = ? AND owner = ?", (self.name, owner)))
        return bytes(rows[0][0]) if rows else None

    async def set(self, owner: str, value: bytes | None) -> None:
        if value is None:
            await self.db.write(("DELETE FROM keyvalue WHERE name = ? AND owner = ?", (self.name, owner)))
        else:
            await self.db.write(
                (
                    "INSERT INTO keyvalue VALUES (?, ?, ?) ON CONFLICT (name, owner) DO UPDATE SET value = excluded.value",
                    (self.name, owner, value),
                )
            )


class CachedKeyValue:
    """A keyvalue store read on every stanza (archiving preferences, say): values cached by owner.

    ``peek`` answers without I/O: None when the owner is not cached, else a one-item tuple
    holding the value (None when the owner has none), so that "no value" is cached too.
    """

    def __init__(self, store: SqlKeyValue, size: int) -> None:
        self.store = store
        self.cache: OwnerCache[tuple[bytes | None]] = OwnerCache(size)
        self.peek = self.cache.peek

    def invalidate(self, owner: str) -> None:
        self.cache.invalidate(owner)

    async def get(self, owner: str) -> bytes | None:
        return (await self.cache.get(owner, lambda: self._load(owner)))[0]

    async def _load(self, owner: str) -> tuple[bytes | None]:
        return (await self.store.get(owner),)

    async def set(self, owner: str, value: bytes | None) -> None:
        await self.cache.write(owner, self.store.set(owner, value), lambda _old, _result: (value,))


class SqlMap:
    def __init__(self, db: SqlDatabase, name: str) -> None:
        self.db = db
        self.name = name

    async def get(self, owner: str, key: str) -> bytes | None:
        (rows,) = await self.db.read(
            ("SELECT data FROM documents WHERE owner = ? AND kind = ? AND key = ?", (owner, self.name, key))
        )
        return bytes(rows[0][0]) if rows else None

    async def set(self, owner: str, key: str, value: bytes | None) -> None:
        if value is None:
            await self.db.write(("DELETE FROM documents WHERE owner = ? AND kind = ? AND key = ?", (owner, self.name, key)))
        else:
            await self.db.write(
                (
                    "INSERT INTO documents VALUES (?, ?, ?, ?) ON CONFLICT (owner, kind, key) DO UPDATE SET data = excluded.data",
                    (owner, self.name, key, value),
                )
            )

    async def items(self, owner: str) -> dict[str, bytes]:
        (rows,) = await self.db.read(("SELECT key, data FROM documents WHERE owner = ? AND kind = ?", (owner, self.name)))
        return {key: bytes(data) for key, data in rows}

    async def clear(self, owner: str) -> None:
        await self.db.write(("DELETE FROM documents WHERE owner = ? AND kind = ?", (owner, self.name)))


# --- archives ----------------------------------------------------------------------------
# An item's key is its sequence number: microseconds since the epoch shifted left by
# SEQ_BITS, plus a counter. Sorting by it sorts by time; time filters are ranges of it, so
# one index serves paging, time filters and expiry. Ids are its fixed-width hex: they sort
# the same way as strings. 2**63 microseconds >> 10 lasts until the year 2255.
SEQ_BITS = 10
_ID_WIDTH = 16


def seq_at(when: float) -> int:
    # Rounded: a time read back from an item (time_of) names that item's microsecond, not the one before.
    return round(when * 1_000_000) << SEQ_BITS


def time_of(seq: int) -> float:
    return (seq >> SEQ_BITS) / 1_000_000


def format_id(seq: int) -> str:
    return format(seq, "016x")


def parse_id(text: str) -> int:
    if len(text) != _ID_WIDTH or text.strip("0123456789abcdef"):
        raise ValueError(f"not an archive id: {text!r}")
    return int(text, 16)


def _seq_or_none(text: str) -> int | None:
    """A malformed id names no item: lookups by it find nothing rather than fail."""
    try:
        return parse_id(text)
    except ValueError:
        return None


class SequenceClock:
    """Archive sequence numbers for appends stamped now: strictly increasing within the process."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        # seq_at(time.time()) inlined, and no max(): twice per archived chat message.
        seq = round(time.time() * 1_000_000) << SEQ_BITS
        last = self._last + 1
        if seq < last:
            seq = last
        self._last = seq
        return seq


_CLOCK = SequenceClock()  # one per process: ids stay increasing across every archive and handle

# The words of a full-text search; each backend's index splits text into words alike.
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=None)
def _insert_rows(count: int) -> str:
    """One INSERT of ``count`` archive rows: with SQLite, one statement per row costs more than the row itself."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * count)
    return f"INSERT INTO archive (name, owner, seq, with_jid, stanza, text) VALUES {values} ON CONFLICT DO NOTHING"


class SqlArchive:
    """Archive items by (name, owner, seq), with the text that full-text search finds."""

    def __init__(self, db: SqlDatabase, name: str) -> None:
        self.db = db
        self.name = name

    _INSERT = "INSERT INTO archive (name, owner, seq, with_jid, stanza, text) VALUES (?, ?, ?, ?, ?, ?)"

    async def append(
        self, owner: str, with_jid: str, stanza: bytes, when: float | None = None, text: str | None = None
    ) -> str:
        seq = _CLOCK.next() if when is None else seq_at(when)
        while True:
            # Another node (or an import stamped in the past) may hold this number: take the next free one.
            rows, *_ = await self.db.write(
                (
                    f"{self._INSERT} ON CONFLICT DO NOTHING RETURNING seq",
                    (self.name, owner, seq, with_jid, stanza, text),
                ),
                *self.db.archive_indexing,
            )
            if rows:
                return format_id(seq)
            seq += 1

    def new_id(self) -> str:
        return format_id(_CLOCK.next())

    async def append_many(self, entries: Sequence[ArchiveEntry]) -> None:
        name = self.name
        rows = [(name, e.owner, parse_id(e.id), e.with_jid, e.stanza, e.text) for e in entries]
        most = self.db.insert_rows
        if most <= 1 or len(rows) <= 1:
            inserts: list[Statement] = [Many(f"{self._INSERT} ON CONFLICT DO NOTHING", rows)]
        else:
            inserts = []
            start = 0
            while start < len(rows):
                # Chunks of a power of two rows, so that a handful of statement texts is prepared and cached.
                size = most
                while size > len(rows) - start:
                    size //= 2
                chunk = rows[start : start + size]
                inserts.append((_insert_rows(size), tuple([value for row in chunk for value in row])))
                start += size
        await self.db.write(*inserts, *self.db.archive_indexing)

    def _where(
        self,
        owner: str,
        with_jid: str | None,
        start: float | None,
        end: float | None,
        ids: Sequence[str] | None,
        words: list[str] | None,
        text_led: bool,
    ) -> tuple[list[str], list[Any]]:
        if text_led:  # expressions, which no index serves: the planner starts from the search's matches
            conditions = ["(name || '') = ?", "(owner || '') = ?"]
        else:
            conditions = ["name = ?", "owner = ?"]
        args: list[Any] = [self.name, owner]
        if with_jid is not None:
            conditions.append("with_jid = ?")
            args.append(with_jid)
        if start is not None:
            conditions.append("seq >= ?")
            args.append(seq_at(start))
        if end is not None:  # inclusive to the microsecond
            conditions.append("seq < ?")
            args.append(seq_at(end) + (1 << SEQ_BITS))
        if ids is not None:
            conditions.append(f"seq IN ({', '.join('?' for _ in ids) or 'NULL'})")
            args.extend(parse_id(i) for i in ids)
        if words is not None:
            if words:
                conditions.append(self.db.text_condition)
                args.append(self.db.text_argument(words))
            else:
                conditions.append("1 = 0")  # nothing to find: nothing found
        return conditions, args

    async def _few_matches(self, words: list[str]) -> bool:
        """Whether a search matches few items over every archive (see SqlDatabase.text_matches)."""
        if not words:
            return False
        (rows,) = await self.db.read((self.db.text_matches, (self.db.text_argument(words),)))
        return int(rows[0][0]) < TEXT_FEW

    async def query(
        self,
        owner: str,
        *,
        with_jid: str | None = None,
        start: float | None = None,
        end: float | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
        ids: Sequence[str] | None = None,
        text: str | None = None,
        limit: int = 50,
        reverse: bool = False,
        count: bool = False,
    ) -> ArchivePage:
        words = None if text is None else _WORD.findall(text)
        conditions, args = self._where(owner, with_jid, start, end, ids, words, await self._few_matches(words or []))
        whole, whole_args = " AND ".join(conditions), list(args)
        if after_id is not None:
            conditions.append("seq > ?")
            args.append(parse_id(after_id))
        if before_id is not None:
            conditions.append("seq < ?")
            args.append(parse_id(before_id))
        order = "DESC" if reverse else "ASC"
        # One row more than asked tells whether the page is the last one in its direction.
        statements: list[Statement] = [
            (
                f"SELECT seq, with_jid, stanza FROM archive WHERE {' AND '.join(conditions)} ORDER BY seq {order} LIMIT ?",
                (*args, limit + 1),
            )
        ]
        if count:  # the whole result set, whatever the page (XEP-0059 <count/>), in the same snapshot
            statements.append((f"SELECT count(*) FROM archive WHERE {whole}", whole_args))
        results = await self.db.read(*statements)
        rows = results[0]
        items = [ArchiveItem(format_id(seq), time_of(seq), jid, bytes(stanza)) for seq, jid, stanza in rows[:limit]]
        if reverse:
            items.reverse()
        return ArchivePage(items, complete=len(rows) <= limit, count=int(results[1][0][0]) if count else None)

    async def get(self, owner: str, id: str) -> ArchiveItem | None:
        seq = _seq_or_none(id)
        if seq is None:
            return None
        (rows,) = await self.db.read(
            ("SELECT with_jid, stanza FROM archive WHERE name = ? AND owner = ? AND seq = ?", (self.name, owner, seq))
        )
        return ArchiveItem(id, time_of(seq), rows[0][0], bytes(rows[0][1])) if rows else None

    async def replace(self, owner: str, id: str, stanza: bytes, text: str | None = None) -> bool:
        seq = _seq_or_none(id)
        if seq is None:
            return False
        item = await self.get(owner, id)
        if item is None:
            return False
        # Deleted and inserted again in one transaction rather than updated, so that every backend's
        # full-text index forgets the old text (SQLite's FTS5 follows inserts and deletes only).
        await self.db.write(
            ("DELETE FROM archive WHERE name = ? AND owner = ? AND seq = ?", (self.name, owner, seq)),
            (self._INSERT, (self.name, owner, seq, item.with_jid, stanza, text)),
        )
        return True

    async def delete(self, owner: str, id: str) -> bool:
        seq = _seq_or_none(id)
        if seq is None:
            return False
        (rows,) = await self.db.write(
            ("DELETE FROM archive WHERE name = ? AND owner = ? AND seq = ? RETURNING 1", (self.name, owner, seq))
        )
        return bool(rows)

    async def clear(self, owner: str) -> None:
        await self.db.write(("DELETE FROM archive WHERE name = ? AND owner = ?", (self.name, owner)))

    async def expire(self, before: float) -> int:
        # Counted, then deleted, in one transaction: RETURNING would carry every expired row back.
        args = (self.name, seq_at(before))
        counted, _ = await self.db.write(
            ("SELECT count(*) FROM archive WHERE name = ? AND seq < ?", args),
            ("DELETE FROM archive WHERE name = ? AND seq < ?", args),
        )
        return int(counted[0][0])

    async def count(self, owner: str) -> int:
        (rows,) = await self.db.read(("SELECT count(*) FROM archive WHERE name = ? AND owner = ?", (self.name, owner)))
        return int(rows[0][0])


class SqlStorage:
    """A Storage over any SqlDatabase, with the roster and block lists cached."""

    def __init__(self, db: SqlDatabase, cache_owners: int) -> None:
        self.db = db
        self.roster = CachedRoster(SqlRoster(db), cache_owners)
        self.blocklist = CachedBlocklist(SqlBlocklist(db), cache_owners)
        self.accounts = CachedAccounts(SqlAccounts(db, self.invalidate), cache_owners)
        self.offline = SqlOffline(db)
        self._stores: dict[tuple[Callable[..., Any], str], Any] = {}
        self._cache_owners = cache_owners

    def invalidate(self, owner: str) -> None:
        """Forget what the caches hold of ``owner``: after a write this process did not make, or a deletion."""
        self.accounts.invalidate(owner)
        self.roster.invalidate(owner)
        self.blocklist.invalidate(owner)
        for store in self._stores.values():
            if isinstance(store, CachedKeyValue):
                store.invalidate(owner)

    def keyvalue(self, name: str) -> SqlKeyValue:
        return self._named(SqlKeyValue, name)

    def cached_keyvalue(self, name: str) -> CachedKeyValue:
        return self._named(CachedKeyValue, name, lambda: CachedKeyValue(self.keyvalue(name), self._cache_owners))

    def map(self, name: str) -> SqlMap:
        return self._named(SqlMap, name)

    documents = map

    def archive(self, name: str) -> SqlArchive:
        return self._named(SqlArchive, name)

    def _named(self, kind: Callable[..., T], name: str, make: Callable[[], T] | None = None) -> T:
        """The one store of that kind and name (opened on first use: ``make()``, or ``kind(db, name)``)."""
        store = self._stores.get((kind, name))
        if store is None:
            store = self._stores[(kind, name)] = make() if make is not None else kind(self.db, name)
        return store  # type: ignore[no-any-return]

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
