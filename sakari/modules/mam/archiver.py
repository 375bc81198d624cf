"""Archive writes off the delivery path, a burst at a time.

A message is delivered with its stanza-id at once; its archive copy waits in
memory for the writer, which hands whatever gathered meanwhile to storage in
one statement. Queries wait for the writes queued before them, so a client
always finds what it was just sent, and so does stream management before it
acknowledges a message to its sender: an acknowledged message is in storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sakari.storage.base import ArchiveEntry, ArchiveStore

log = logging.getLogger("sakari.mam")
RETRY_PAUSES = (0.1, 0.5, 2.0, 5.0)  # seconds before each new attempt of a failed write


class Archiver:
    def __init__(self, store: ArchiveStore, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> None:
        self.store = store
        self._spawn = spawn
        self._pending: list[ArchiveEntry] = []
        self._writing: asyncio.Task[None] | None = None
        self._queued = 0  # entries ever queued
        self._done = 0  # entries ever handed to storage and answered
        # (entries done by then, woken): a waiter for the writes queued before it, not for later ones, so that
        # under steady load, when the writer never runs out of work, it is still woken.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def add(self, entry: ArchiveEntry) -> None:
        """Queue a copy for an archive, under an id from the store's new_id."""
        self._pending.append(entry)
        self._queued += 1
        if self._writing is None:
            self._writing = self._spawn(self._write())

    async def _write(self) -> None:
        ended = False
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._append(batch)
                self._done += len(batch)
                self._wake()
            ended = True
        finally:
            self._writing = None
            if not ended:  # cancelled (the server stops): nobody waits any longer for what is left
                for _, future in self._waiters:
                    if not future.done():
                        future.set_result(None)
                self._waiters = []

    async def _append(self, batch: list[ArchiveEntry]) -> None:
        # A database that is busy or gone for a moment: try again, since what waits for these writes (an
        # acknowledgement to the sender) must not go out for messages that are not stored. Appends are
        # idempotent (an id already stored is skipped). A fault that outlasts the retries is logged and the
        # batch given up, so that the server keeps serving.
        for pause in (*RETRY_PAUSES, None):
            try:
                await self.store.append_many(batch)
                return
            except Exception as e:  # noqa: BLE001 - the disk or the database: say so, keep serving
                if pause is None:
                    log.error("event=archive-write-failed messages=%d error=%s", len(batch), type(e).__name__)
                    return
                log.warning("event=archive-write-retry messages=%d error=%s wait=%.1f", len(batch), type(e).__name__, pause)
                await asyncio.sleep(pause)

    def _wake(self) -> None:
        if not self._waiters:
            return
        done = self._done
        still = []
        for target, future in self._waiters:
            if target <= done:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still

    def barrier(self) -> asyncio.Future[None] | None:
        """A future done once everything queued so far is in storage (or failed to get there); None when it
        already is, so a caller with nothing to wait for does not wait a turn of the loop."""
        if self._done >= self._queued:
            return None
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self._queued, future))
        return future

    async def written(self) -> None:
        """Return once everything queued so far is in storage (or failed to get there)."""
        future = self.barrier()
        if future is not None:
            await asyncio.shield(future)
