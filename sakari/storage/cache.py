"""Caches of the data read on every stanza (rosters, block lists) or login (credentials), behind storage.

Modules keep no copies of other sessions' data: they ask storage, and
storage answers from a bounded LRU by owner when it can. The cache is
write-through: an entry changes only after the backend's write succeeded,
and a failed write drops it. ``invalidate(owner)`` drops an entry for
writes this process did not make (another node of a cluster). ``peek``
answers without I/O and without a coroutine, for checks on the hot path.

What ``peek`` returns is shared with every caller, so it is immutable
(frozenset, read-only mappings); roster items are dataclasses that callers
must not change in place (dataclasses.replace, then put). ``get`` returns a
container of the caller's own (a copy), which costs a little: code on the
hot path peeks first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import Generic, TypeVar

from sakari.config import declare, positive
from sakari.credentials import Credentials
from sakari.storage.base import AccountStore, BlocklistStore, Roster, RosterItem, RosterStore

V = TypeVar("V")
R = TypeVar("R")

CACHE_OWNERS = declare(
    "storage.cache_owners",
    10000,
    "How many owners' rosters (and, separately, block lists and login credentials) storage keeps in memory; "
    "the least recently used go first.",
    positive,
)


class OwnerCache(Generic[V]):
    """A bounded cache of one value per owner, safe against loads racing writes.

    The least recently loaded or got owners go first. A peek does not count as a use: it is the
    dictionary's own ``get``, with no Python call at all, because the hot path peeks twice per
    stanza. An owner only ever peeked at is dropped after ``size`` others were loaded, and read
    again once.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: dict[str, V] = {}  # in order of use, the oldest first
        self.peek: Callable[[str], V | None] = self._values.get
        self._loading: dict[str, int] = {}  # owner -> loads in flight
        self._stale: set[str] = set()  # owners written while a load was in flight

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, owner: str, load: Callable[[], Awaitable[V]]) -> V:
        value = self._values.pop(owner, None)
        if value is not None:
            self._values[owner] = value  # to the end: used now
            return value
        self._loading[owner] = self._loading.get(owner, 0) + 1
        try:
            value = await load()
        finally:
            left = self._loading.pop(owner) - 1
            stale = owner in self._stale
            if left:
                self._loading[owner] = left
            else:
                self._stale.discard(owner)
        # A write that landed during the load may be missing from what it read: do not keep that. Nothing
        # (an unknown account) is not kept either: names made up by a guesser would push real owners out.
        if not stale and value is not None:
            self._put(owner, value)
        return value

    def _put(self, owner: str, value: V) -> None:
        self._values.pop(owner, None)
        self._values[owner] = value
        if len(self._values) > self.size:
            del self._values[next(iter(self._values))]

    def written(self, owner: str, change: Callable[[V], V | None]) -> None:
        """After a successful write: change the cached value (None from ``change`` drops it)."""
        if owner in self._loading:
            self._stale.add(owner)
        value = self._values.get(owner)
        if value is not None:
            changed = change(value)
            if changed is None:
                del self._values[owner]
            else:
                self._values[owner] = changed

    def invalidate(self, owner: str) -> None:
        self.written(owner, lambda _: None)

    async def write(self, owner: str, write: Awaitable[R], change: Callable[[V, R], V | None]) -> R:
        """Await the backend's write, then change the cached value with the write's result."""
        try:
            result = await write
        except BaseException:  # the write may or may not have landed
            self.invalidate(owner)
            raise
        self.written(owner, lambda value: change(value, result))
        return result


class CachedRoster:
    """A RosterStore with its rosters cached."""

    def __init__(self, store: RosterStore, size: int) -> None:
        self.store = store
        self.cache: OwnerCache[Roster] = OwnerCache(size)
        self.peek = self.cache.peek  # one call less per stanza than a method that forwards


    def invalidate(self, owner: str) -> None:
        self.cache.invalidate(owner)

    async def get(self, owner: str) -> tuple[int, dict[str, RosterItem]]:
        version, items = await self.cache.get(owner, lambda: self._load(owner))
        return version, dict(items)

    async def _load(self, owner: str) -> Roster:
        version, items = await self.store.get(owner)
        return version, MappingProxyType(items)

    async def put(self, owner: str, item: RosterItem) -> int:
        # The cache keeps its own copy: the caller still holds ``item`` and could change it.
        mine = dataclasses.replace(item, groups=list(item.groups))
        return await self.cache.write(owner, self.store.put(owner, item), _changed(lambda items: items.update({mine.jid: mine})))

    async def delete(self, owner: str, jid: str) -> int:
        return await self.cache.write(owner, self.store.delete(owner, jid), _changed(lambda items: items.pop(jid, None)))


def _changed(edit: Callable[[dict[str, RosterItem]], object]) -> Callable[[Roster, int], Roster | None]:
    """How a cached roster follows a write that brought it to ``version``."""

    def change(roster: Roster, version: int) -> Roster | None:
        # Each write adds one version: any other gap means writes this process did not see.
        if roster[0] != version - 1:
            return None
        items = dict(roster[1])
        edit(items)
        return version, MappingProxyType(items)

    return change


class CachedBlocklist:
    """A BlocklistStore with its lists cached."""

    def __init__(self, store: BlocklistStore, size: int) -> None:
        self.store = store
        self.cache: OwnerCache[frozenset[str]] = OwnerCache(size)
        self.peek = self.cache.peek  # one call less per stanza than a method that forwards


    def invalidate(self, owner: str) -> None:
        self.cache.invalidate(owner)

    async def get(self, owner: str) -> set[str]:
        return set(await self.cache.get(owner, lambda: self._load(owner)))

    async def _load(self, owner: str) -> frozenset[str]:
        return frozenset(await self.store.get(owner))

    async def add(self, owner: str, jids: list[str]) -> None:
        await self.cache.write(owner, self.store.add(owner, jids), lambda blocked, _: blocked | frozenset(jids))

    async def remove(self, owner: str, jids: list[str] | None) -> None:
        await self.cache.write(
            owner, self.store.remove(owner, jids), lambda blocked, _: frozenset() if jids is None else blocked - frozenset(jids)
        )


class CachedAccounts:
    """An AccountStore with the credentials of recent logins cached: every login reads them, few change them.

    Writes made elsewhere (``sakari user passwd`` in another process) reach a running server through
    ``invalidate``: the command line tells it over the control socket once its write landed.
    """

    def __init__(self, store: AccountStore, size: int) -> None:
        self.store = store
        self.cache: OwnerCache[Credentials] = OwnerCache(size)

    def invalidate(self, owner: str) -> None:
        self.cache.invalidate(owner)

    async def get(self, owner: str) -> Credentials | None:
        return await self.cache.get(owner, lambda: self.store.get(owner))

    async def create(self, owner: str, creds: Credentials) -> bool:
        return await self.store.create(owner, creds)  # an unknown owner is never cached: nothing to change

    async def set_credentials(self, owner: str, creds: Credentials) -> bool:
        return await self.cache.write(owner, self.store.set_credentials(owner, creds), lambda _old, changed: creds if changed else None)

    async def list(self, host: str | None = None) -> list[str]:
        return await self.store.list(host)

    async def delete(self, owner: str) -> bool:
        return await self.cache.write(owner, self.store.delete(owner), lambda _old, _deleted: None)
