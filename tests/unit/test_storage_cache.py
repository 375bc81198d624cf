"""The roster and block list caches behind storage (sakari/storage/cache.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sakari.storage.base import RosterItem, Storage
from sakari.storage.cache import CachedBlocklist, CachedRoster
from test_storage_contract import CREDS_A, CREDS_B, JULIET, NURSE, ROMEO, backend, postgres_database, storage  # noqa: F401


async def test_peek_answers_only_what_a_get_cached(storage: Storage) -> None:
    assert storage.roster.peek(JULIET) is None
    assert storage.blocklist.peek(JULIET) is None
    await storage.roster.get(JULIET)
    await storage.blocklist.get(JULIET)
    assert storage.roster.peek(JULIET) == (0, {})
    assert storage.blocklist.peek(JULIET) == frozenset()


async def test_peeked_values_are_immutable_and_gets_return_the_callers_own_copy(storage: Storage) -> None:
    await storage.roster.put(JULIET, RosterItem(ROMEO))
    await storage.blocklist.add(JULIET, ["spam@example.com"])
    version, items = await storage.roster.get(JULIET)
    blocked = await storage.blocklist.get(JULIET)
    items.clear()
    blocked.clear()
    cached = storage.roster.peek(JULIET)
    assert cached is not None and list(cached[1]) == [ROMEO]
    with pytest.raises(TypeError):
        cached[1][NURSE] = RosterItem(NURSE)  # type: ignore[index]
    assert storage.blocklist.peek(JULIET) == frozenset({"spam@example.com"})
    assert isinstance(storage.blocklist.peek(JULIET), frozenset)


async def test_writes_go_through_to_the_cached_entry(storage: Storage) -> None:
    await storage.roster.get(JULIET)
    await storage.blocklist.get(JULIET)
    item = RosterItem(ROMEO, "Romeo", groups=["Friends"])
    v1 = await storage.roster.put(JULIET, item)
    item.groups.append("changed by the caller afterwards")
    assert storage.roster.peek(JULIET) == (v1, {ROMEO: RosterItem(ROMEO, "Romeo", groups=["Friends"])})
    v2 = await storage.roster.delete(JULIET, ROMEO)
    assert storage.roster.peek(JULIET) == (v2, {})
    await storage.blocklist.add(JULIET, ["a@example.com", "b@example.com"])
    assert storage.blocklist.peek(JULIET) == {"a@example.com", "b@example.com"}
    await storage.blocklist.remove(JULIET, ["a@example.com"])
    assert storage.blocklist.peek(JULIET) == {"b@example.com"}
    await storage.blocklist.remove(JULIET, None)
    assert storage.blocklist.peek(JULIET) == frozenset()


async def test_invalidate_drops_what_another_node_changed(backend: Any, storage: Storage) -> None:
    other_node = backend.new()
    await other_node.open()
    try:
        await storage.blocklist.get(JULIET)
        await storage.roster.get(JULIET)
        await other_node.blocklist.add(JULIET, ["spam@example.com"])
        await other_node.roster.put(JULIET, RosterItem(ROMEO))
        assert storage.blocklist.peek(JULIET) == frozenset()  # this node cannot know by itself
        storage.blocklist.invalidate(JULIET)
        storage.roster.invalidate(JULIET)
        assert storage.blocklist.peek(JULIET) is None and storage.roster.peek(JULIET) is None
        assert await storage.blocklist.get(JULIET) == {"spam@example.com"}
        assert list((await storage.roster.get(JULIET))[1]) == [ROMEO]
    finally:
        await other_node.close()


async def test_credentials_are_cached_for_logins_and_follow_writes_and_invalidation(backend: Any, storage: Storage) -> None:
    other_process = backend.new()
    await other_process.open()
    try:
        assert await storage.accounts.get(JULIET) is None
        await other_process.accounts.create(JULIET, CREDS_A)
        assert await storage.accounts.get(JULIET) == CREDS_A  # an unknown account was not remembered as unknown
        await other_process.accounts.set_credentials(JULIET, CREDS_B)
        assert await storage.accounts.get(JULIET) == CREDS_A  # the next login is answered from memory
        storage.invalidate(JULIET)  # what a running server does when the command line says it changed a password
        assert await storage.accounts.get(JULIET) == CREDS_B
        await storage.accounts.set_credentials(JULIET, CREDS_A)
        await other_process.accounts.set_credentials(JULIET, CREDS_B)
        assert await storage.accounts.get(JULIET) == CREDS_A  # its own write went through to the cache
        await storage.accounts.delete(JULIET)
        assert await storage.accounts.get(JULIET) is None
    finally:
        await other_process.close()


async def test_a_roster_write_after_a_version_this_node_missed_drops_the_entry(backend: Any, storage: Storage) -> None:
    other_node = backend.new()
    await other_node.open()
    try:
        await storage.roster.get(JULIET)
        await other_node.roster.put(JULIET, RosterItem(ROMEO))
        version = await storage.roster.put(JULIET, RosterItem(NURSE))
        assert storage.roster.peek(JULIET) is None
        assert await storage.roster.get(JULIET) == (version, {ROMEO: RosterItem(ROMEO), NURSE: RosterItem(NURSE)})
    finally:
        await other_node.close()


async def test_account_delete_drops_the_cached_entries(storage: Storage) -> None:
    await storage.accounts.create(JULIET, CREDS_A)
    await storage.roster.put(JULIET, RosterItem(ROMEO))
    await storage.roster.get(JULIET)
    await storage.blocklist.get(JULIET)
    await storage.accounts.delete(JULIET)
    assert storage.roster.peek(JULIET) is None and storage.blocklist.peek(JULIET) is None
    assert await storage.roster.get(JULIET) == (0, {})


async def test_the_cache_keeps_the_most_recently_used_owners_up_to_its_size(backend: Any) -> None:
    """Loads and gets count as uses; peeks (the hot path's) do not."""
    st = backend.new(cache_owners=2)
    await st.open()
    try:
        await st.blocklist.get(JULIET)
        await st.blocklist.get(ROMEO)
        await st.blocklist.get(JULIET)  # used again: Romeo is now the least recently used
        await st.blocklist.get(NURSE)
        assert st.blocklist.peek(ROMEO) is None
        assert st.blocklist.peek(JULIET) is not None and st.blocklist.peek(NURSE) is not None
    finally:
        await st.close()


# --- races and failures, with a store under the test's control -------------------------


class ControlledBlocklist:
    def __init__(self) -> None:
        self.blocked: set[str] = set()
        self.load_started = asyncio.Event()
        self.load_may_finish = asyncio.Event()
        self.fail_writes = False

    async def get(self, owner: str) -> set[str]:
        snapshot = set(self.blocked)
        self.load_started.set()
        await self.load_may_finish.wait()
        return snapshot

    async def add(self, owner: str, jids: list[str]) -> None:
        if self.fail_writes:
            raise OSError("disk full")
        self.blocked.update(jids)

    async def remove(self, owner: str, jids: list[str] | None) -> None:
        self.blocked.difference_update(self.blocked if jids is None else jids)


async def test_a_load_that_raced_a_write_is_not_kept() -> None:
    store = ControlledBlocklist()
    cached = CachedBlocklist(store, 10)
    loading = asyncio.create_task(cached.get(JULIET))
    await store.load_started.wait()  # the load has read its (soon stale) snapshot
    await cached.add(JULIET, ["spam@example.com"])
    store.load_may_finish.set()
    assert await loading == set()
    assert cached.peek(JULIET) is None
    assert await cached.get(JULIET) == {"spam@example.com"}
    assert cached.peek(JULIET) == {"spam@example.com"}


async def test_a_failed_write_drops_the_entry_and_raises() -> None:
    store = ControlledBlocklist()
    store.load_may_finish.set()
    cached = CachedBlocklist(store, 10)
    await cached.get(JULIET)
    store.fail_writes = True
    with pytest.raises(OSError):
        await cached.add(JULIET, ["spam@example.com"])
    assert cached.peek(JULIET) is None


async def test_peek_of_a_cached_entry_creates_no_coroutine(storage: Storage) -> None:
    # The blocking check runs on every stanza: a plain call, returning the value itself.
    await storage.blocklist.get(JULIET)
    assert not asyncio.iscoroutine(storage.blocklist.peek(JULIET))
    assert isinstance(storage.roster, CachedRoster)
