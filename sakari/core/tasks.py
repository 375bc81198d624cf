"""Background tasks the server keeps track of: logged when they fail, awaited or cancelled at shutdown."""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

log = logging.getLogger("sakari.tasks")


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Hand a coroutine that already ran its first step to a task: pass its waits and wake-ups through."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # cancellation, thrown in by the task
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration as stop:
                return stop.value


class Tasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task (logged if it fails)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def spawn_eager(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine now, up to its first real wait; only then does it become a task.

        Most stanzas are routed without waiting for anything, so this saves a
        task (and a turn of the event loop) per stanza batch on the hot path.
        """
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # the same as a task that failed at once
            log.error("event=task-failed error=%r", exc, exc_info=exc)
            return
        self.spawn(_resume(coro, waiting_on))  # type: ignore[arg-type]

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("event=task-failed error=%r", exc, exc_info=exc)

    async def finish(self, grace: float) -> None:
        """Let running tasks end within ``grace`` seconds, then cancel the rest."""
        pending = {t for t in self._tasks if not t.done()}
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
