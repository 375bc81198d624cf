"""The archive's batched writer: what waits for it waits for what was queued before, not for later writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sakari.modules.mam.archiver import Archiver
from sakari.storage.base import ArchiveEntry

pytestmark = pytest.mark.asyncio


class GatedStore:
    """append_many waits until the test opens the gate once per batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gates: asyncio.Queue[None] = asyncio.Queue()

    async def append_many(self, entries: Sequence[ArchiveEntry]) -> None:
        await self.gates.get()
        self.batches.append([e.id for e in entries])


def entry(n: int) -> ArchiveEntry:
    return ArchiveEntry("juliet@example.org", f"{n:016x}", "romeo@example.org", b"<message/>")


async def test_nothing_queued_means_nothing_to_wait_for() -> None:
    archiver = Archiver(GatedStore(), asyncio.ensure_future)  # type: ignore[arg-type]
    assert archiver.barrier() is None
    await archiver.written()


async def test_a_barrier_is_done_once_what_was_queued_before_it_is_written_though_writes_go_on() -> None:
    store = GatedStore()
    archiver = Archiver(store, asyncio.ensure_future)  # type: ignore[arg-type]
    archiver.add(entry(1))
    first = archiver.barrier()
    assert first is not None
    await asyncio.sleep(0)  # the writer takes entry 1 as its batch
    archiver.add(entry(2))  # arrives while that batch is written: the next batch
    second = archiver.barrier()
    store.gates.put_nowait(None)
    await asyncio.wait_for(first, 1)
    assert store.batches == [["0000000000000001"]]
    assert second is not None and not second.done()
    archiver.add(entry(3))  # steady load: the writer never runs out of work...
    store.gates.put_nowait(None)
    await asyncio.wait_for(second, 1)  # ...and the second barrier is done without waiting for entry 3
    assert store.batches[1] == ["0000000000000002"]
    store.gates.put_nowait(None)
    await asyncio.wait_for(archiver.written(), 1)
    assert store.batches[-1] == ["0000000000000003"]


class FlakyStore:
    """Fails the first ``failures`` appends (a database busy for a moment), then stores."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: list[str] = []

    async def append_many(self, entries: Sequence[ArchiveEntry]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        self.stored += [e.id for e in entries]


async def test_a_failed_write_is_tried_again_and_what_waits_for_it_waits_until_it_is_stored(monkeypatch) -> None:
    monkeypatch.setattr("sakari.modules.mam.archiver.RETRY_PAUSES", (0.0, 0.0, 0.0))
    store = FlakyStore(failures=2)
    archiver = Archiver(store, asyncio.ensure_future)  # type: ignore[arg-type]
    archiver.add(entry(1))
    barrier = archiver.barrier()
    assert barrier is not None
    await asyncio.wait_for(barrier, 1)
    assert store.stored == ["0000000000000001"]


async def test_a_write_that_keeps_failing_is_given_up_so_that_nothing_waits_for_ever(monkeypatch) -> None:
    monkeypatch.setattr("sakari.modules.mam.archiver.RETRY_PAUSES", (0.0,))
    store = FlakyStore(failures=5)
    archiver = Archiver(store, asyncio.ensure_future)  # type: ignore[arg-type]
    archiver.add(entry(1))
    await asyncio.wait_for(archiver.written(), 1)
    assert store.stored == []
