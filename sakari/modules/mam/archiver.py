"""Archive writes off the delivery path, a burst at a time.

A message is delivered with its stanza-id at once; its archive copy waits in
memory for the writer, which hands whatever gathered meanwhile to storage in
one statement. Queries wait for the writes queued before them, so a client
always finds what it was just sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sakari.storage.base import ArchiveEntry, ArchiveStore

log = logging.getLogger("sakari.mam")


class Archiver:
    def __init__(self, store: ArchiveStore, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> None:
        self.store = store
        self._spawn = spawn
        self._pending: list[ArchiveEntry] = []
        self._writing: asyncio.Task[None] | None = None

    def add(self, entry: ArchiveEntry) -> None:
        """Queue a copy for an archive, under an id from the store's new_id."""
        self._pending.append(entry)
        if self._writing is None:
            self._writing = self._spawn(self._write())

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self.store.append_many(batch)
                except Exception as e:  # noqa: BLE001 - the disk or the database: say so, keep serving
                    log.error("event=archive-write-failed messages=%d error=%s", len(batch), type(e).__name__)
        finally:
            self._writing = None

    async def written(self) -> None:
        """Return once everything queued so far is in storage (or failed to get there)."""
        while self._writing is not None:
            await asyncio.shield(self._writing)
