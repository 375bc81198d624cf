"""Storage contracts, one narrow interface per kind of data.

Owners are bare JID strings (``user@host``) or service addresses
(``room@conference.host``); stores know nothing of stanzas beyond bytes.
Every backend passes the same contract tests (tests/unit/test_storage_*.py).

Besides the stores of the core's own data, a backend opens generic stores by
name (``keyvalue``, ``map``, ``archive``), so an extension with simple data
needs no backend code. All of them are keyed by owner, so deleting an
account deletes its data everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from sakari.credentials import Credentials


@dataclass(slots=True)
class RosterItem:
    jid: str
    name: str | None = None
    subscription: str = "none"  # none | to | from | both (RFC 6121 §2.1.2.5)
    ask: bool = False  # our subscription request is pending (pending out)
    pending_in: bool = False  # the contact asked to see our presence and awaits an answer
    approved: bool = False  # pre-approved (RFC 6121 §3.4)
    listed: bool = True  # shown in the roster; False for a pending request from a stranger
    groups: list[str] = field(default_factory=list)


# A cached roster, as ``peek`` returns it: (version, items by JID). The mapping is
# read-only and shared, and so are its items: change an item with dataclasses.replace
# and store.put, never in place.
Roster = tuple[int, Mapping[str, RosterItem]]


class AccountStore(Protocol):
    async def create(self, owner: str, creds: Credentials) -> bool: ...
    async def get(self, owner: str) -> Credentials | None: ...
    async def set_credentials(self, owner: str, creds: Credentials) -> bool: ...
    async def list(self, host: str | None = None) -> list[str]: ...
    async def delete(self, owner: str) -> bool:
        """Remove the account and every piece of data any store keeps for it."""
        ...


class RosterStore(Protocol):
    async def get(self, owner: str) -> tuple[int, dict[str, RosterItem]]:
        """(version, items by JID); the dict is the caller's own, the items are shared (see Roster)."""
        ...

    async def put(self, owner: str, item: RosterItem) -> int: ...
    async def delete(self, owner: str, jid: str) -> int: ...


class OfflineStore(Protocol):
    async def push(self, owner: str, stanza: bytes) -> None: ...
    async def list(self, owner: str) -> list[tuple[int, bytes]]: ...
    async def delete_through(self, owner: str, last_id: int) -> None: ...
    async def count(self, owner: str) -> int: ...


class BlocklistStore(Protocol):
    async def get(self, owner: str) -> set[str]:
        """The blocked JIDs; the set is the caller's own."""
        ...

    async def add(self, owner: str, jids: list[str]) -> None: ...
    async def remove(self, owner: str, jids: list[str] | None) -> None:
        """Remove these JIDs, or all of them when ``jids`` is None."""
        ...


class Cached(Protocol):
    """What the storage cache adds to a store read on every stanza (roster, blocklist)."""

    def peek(self, owner: str) -> object | None:
        """The cached value (immutable, shared), or None when it is not cached; never does I/O."""
        ...

    def invalidate(self, owner: str) -> None:
        """Forget the cached value, e.g. after another node wrote it."""
        ...


class CachedRosterStore(RosterStore, Cached, Protocol):
    def peek(self, owner: str) -> Roster | None: ...


class CachedBlocklistStore(BlocklistStore, Cached, Protocol):
    def peek(self, owner: str) -> frozenset[str] | None: ...


class KeyValueStore(Protocol):
    """One value per owner."""

    async def get(self, owner: str) -> bytes | None: ...
    async def set(self, owner: str, value: bytes | None) -> None:
        """Store the value; None deletes it."""
        ...


class MapStore(Protocol):
    """Values per (owner, key): vCards, private XML, last activity…"""

    async def get(self, owner: str, key: str) -> bytes | None: ...
    async def set(self, owner: str, key: str, value: bytes | None) -> None:
        """Store the value; None deletes it."""
        ...

    async def items(self, owner: str) -> dict[str, bytes]: ...
    async def clear(self, owner: str) -> None: ...


class CachedKeyValueStore(KeyValueStore, Cached, Protocol):
    def peek(self, owner: str) -> tuple[bytes | None] | None:
        """None when not cached; else the value (None: the owner has none) in a one-item tuple."""
        ...


# The name modules used before generic stores existed.
DocumentStore = MapStore


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    id: str
    timestamp: float  # seconds since the epoch, microsecond precision
    with_jid: str
    stanza: bytes


class ArchiveEntry(NamedTuple):
    """An item to append under an id taken beforehand (ArchiveStore.new_id); a tuple, since one is
    made per archived message and a frozen dataclass costs several calls to build."""

    owner: str
    id: str
    with_jid: str
    stanza: bytes
    text: str | None = None  # what full-text search finds (a message's body)


@dataclass(frozen=True, slots=True)
class ArchivePage:
    items: list[ArchiveItem]  # oldest first, whichever end of the range the page was taken from
    complete: bool  # no further items in the direction of paging (XEP-0313 <fin complete='true'/>)
    count: int | None = None  # items matching the filters on every page, when asked for

    @property
    def first(self) -> str | None:
        return self.items[0].id if self.items else None

    @property
    def last(self) -> str | None:
        return self.items[-1].id if self.items else None


class ArchiveStore(Protocol):
    """Append-only message archives (XEP-0313 sits on it), one per owner.

    Ids are opaque strings that sort like the times of their items: an id
    compares greater than every id appended before it (or stamped earlier).
    """

    async def append(
        self, owner: str, with_jid: str, stanza: bytes, when: float | None = None, text: str | None = None
    ) -> str:
        """Archive a stanza exchanged with ``with_jid`` at ``when`` (now when None); returns its id.

        ``text`` is what full-text search finds for it (``query(text=...)``).
        """
        ...

    def new_id(self) -> str:
        """An id for an item stamped now, known before it is written (to hand it out at once)."""
        ...

    async def append_many(self, entries: Sequence[ArchiveEntry]) -> None:
        """Archive items under ids from new_id, in one write.

        An id is unique within the process; another node taking the same one for the
        same owner within the same microsecond would lose that item.
        """
        ...

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
        """A page of the items matching every filter given.

        ``start`` and ``end`` are inclusive times; ``after_id`` and ``before_id``
        exclusive bounds (XEP-0059 ``<after/>`` and ``<before/>``). ``text``
        finds the items whose text holds every one of its words, whole words
        in any case (no words: nothing found). The page holds up to ``limit``
        items from the oldest end of that range, or from the newest end when
        ``reverse`` (paging backwards: ``<before/>``); its items are oldest
        first either way. With ``count``, the page says how many items match
        the filters other than ``after_id`` and ``before_id``. A malformed id
        raises ValueError.
        """
        ...

    async def get(self, owner: str, id: str) -> ArchiveItem | None: ...
    async def replace(self, owner: str, id: str, stanza: bytes, text: str | None = None) -> bool:
        """Put ``stanza`` in place of an item, keeping its id, time and contact (a tombstone for a
        retracted message, XEP-0424 §5); False when there is no such item."""
        ...

    async def delete(self, owner: str, id: str) -> bool: ...
    async def clear(self, owner: str) -> None: ...
    async def expire(self, before: float) -> int:
        """Delete every owner's items older than ``before``; returns how many went."""
        ...

    async def count(self, owner: str) -> int: ...


class Storage(Protocol):
    """A backend: one store per kind of data, opened and closed together."""

    @property
    def accounts(self) -> AccountStore: ...
    @property
    def roster(self) -> CachedRosterStore: ...
    @property
    def offline(self) -> OfflineStore: ...
    @property
    def blocklist(self) -> CachedBlocklistStore: ...

    def keyvalue(self, name: str) -> KeyValueStore: ...
    def cached_keyvalue(self, name: str) -> CachedKeyValueStore:
        """The keyvalue store of that name, for values read on every stanza: cached (storage.cache_owners)."""
        ...
    def map(self, name: str) -> MapStore: ...
    def documents(self, kind: str) -> MapStore:
        """The same store as ``map(kind)``."""
        ...

    def archive(self, name: str) -> ArchiveStore: ...
    def invalidate(self, owner: str) -> None:
        """Forget what the caches hold of ``owner`` (credentials, roster, block list, cached values), after
        another process or node wrote its data."""
        ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...
