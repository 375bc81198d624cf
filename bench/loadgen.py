"""Worker processes of the load generator and the parent's handle on them.

The parent (the runner) never does XMPP itself.  It forks ``workers``
processes, each pinned to the generator's CPUs, each with its own event loop
(uvloop when installed) and its own share of the accounts.  Parent and
workers talk over a ``multiprocessing.Pipe`` with small tuples:

    worker -> parent   ("ready", info) / ("result", info) / ("error", traceback)
    parent -> worker   ("go", params) / ("release", None) ...

A scenario supplies two halves: ``worker(ctx)`` (a coroutine run inside every
worker) and the choreography in the parent (see :mod:`bench.scenarios`).
Times are exchanged as ``time.monotonic_ns()`` values, which all processes on
the machine share, so "start measuring at t0" means the same instant for all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import resource
import time
import traceback
from array import array
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from bench import xmpp


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    domain: str
    tls: bool = False
    muc_domain: str = ""


@dataclass
class WorkerContext:
    index: int
    target: Target
    users: list[tuple[str, str]]
    params: dict[str, Any]
    _pipe: Any = None
    _inbox: asyncio.Queue | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def send(self, kind: str, payload: Any = None) -> None:
        self._pipe.send((kind, payload))

    async def recv(self, expect: str | None = None) -> Any:
        assert self._inbox is not None
        kind, payload = await self._inbox.get()
        if expect is not None and kind != expect:
            raise RuntimeError(f"worker {self.index}: expected {expect!r} from parent, got {kind!r}")
        return payload

    def tls_context(self):
        return xmpp.client_tls_context() if self.target.tls else None


def raise_nofile_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _worker_entry(pipe, index: int, target: Target, users, params, cpus, coro_fn) -> None:
    try:
        if cpus:
            os.sched_setaffinity(0, cpus)
        raise_nofile_limit()
        try:
            import uvloop  # type: ignore
            runner = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is optional
            runner = asyncio.run
        before = set(xmpp.SCRAM_CACHE)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            inbox: asyncio.Queue = asyncio.Queue()

            def readable() -> None:
                try:
                    while pipe.poll():
                        inbox.put_nowait(pipe.recv())
                except (EOFError, OSError):
                    loop.remove_reader(pipe.fileno())
                    inbox.put_nowait(("abort", None))

            loop.add_reader(pipe.fileno(), readable)
            ctx = WorkerContext(index, target, users, params, pipe, inbox)
            try:
                result = await coro_fn(ctx)
            finally:
                loop.remove_reader(pipe.fileno())
                # uvloop (libuv) made the fd non-blocking for add_reader; a large
                # result written to a non-blocking pipe would be cut short.
                os.set_blocking(pipe.fileno(), True)
            new_cache = {k: v for k, v in xmpp.SCRAM_CACHE.items() if k not in before}
            ru = resource.getrusage(resource.RUSAGE_SELF)
            result = dict(result or {})
            result["_pbkdf2"] = xmpp.PBKDF2_COUNT[0]
            result["_cpu_user_s"] = ru.ru_utime
            result["_cpu_sys_s"] = ru.ru_stime
            pipe.send(("result", (result, new_cache)))

        runner(main())
    except BaseException:
        try:
            pipe.send(("error", traceback.format_exc()))
        except Exception:
            pass
    finally:
        pipe.close()


# A message's id is the time it was sent (time.monotonic_ns, shared by every process of the machine).
SEND_TIME_ID = re.compile(rb"\sid=['\"](\d+)['\"]")
RawHandler = Callable[[bytes, bytes, bytes], None]


def round_trip_counter(st: dict[str, int], lat: array, m0: int, m1: int, done: asyncio.Future[None],
                       send_next: Callable[[], None]) -> RawHandler:
    """A raw-mode client's handler for flat-out message loops: each message that arrives is counted (with its
    latency, from its send-time id, when it arrives inside the window [m0, m1)) and lets ``send_next`` send
    another until the window ends; ``done`` is set once every message sent has arrived."""
    now = time.monotonic_ns

    def on_raw(name: bytes, tag: bytes, raw: bytes) -> None:
        if name != b"message":
            return
        if b"error" in tag and xmpp.attr(tag, b"type") == b"error":
            st["errors"] += 1
            return
        t = now()
        m = SEND_TIME_ID.search(tag)
        if m is None:
            st["other"] += 1
            return
        st["received"] += 1
        if m0 <= t < m1:
            st["in_window"] += 1
            lat.append(t - int(m.group(1)))
        if t < m1:
            send_next()
        elif st["received"] >= st["sent"] and not done.done():
            done.set_result(None)
    return on_raw


class WorkerFailed(RuntimeError):
    pass


class Fleet:
    """The parent's view of the worker processes of one scenario run."""

    def __init__(self, target: Target, user_slices: list[list[tuple[str, str]]], params: dict,
                 coro_fn: Callable[[WorkerContext], Awaitable[dict]], cpus: set[int] | None) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes = []
        self.procs = []
        for i, users in enumerate(user_slices):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=_worker_entry, name=f"bench-worker-{i}",
                            args=(child_end, i, target, users, params, cpus, coro_fn), daemon=True)
            self.pipes.append(parent_end)
            self.procs.append(p)
        for p in self.procs:
            p.start()
        self.results: list[dict] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def broadcast(self, kind: str, payload: Any = None) -> None:
        for pipe in self.pipes:
            try:
                pipe.send((kind, payload))
            except (BrokenPipeError, OSError):
                pass

    def send_to(self, index: int, kind: str, payload: Any = None) -> None:
        self.pipes[index].send((kind, payload))

    def gather(self, kind: str, timeout: float, only: list[int] | None = None) -> list[Any]:
        """Wait for one message of ``kind`` from every worker (or those in ``only``)."""
        deadline = time.monotonic() + timeout
        out: list[Any] = [None] * len(self.pipes)
        pending = set(range(len(self.pipes)) if only is None else only)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailed(f"timeout waiting for {kind!r} from workers {sorted(pending)}")
            for i in list(pending):
                pipe = self.pipes[i]
                if pipe.poll(min(0.05, max(left, 0.001))):
                    try:
                        got_kind, payload = pipe.recv()
                    except EOFError:
                        raise WorkerFailed(f"worker {i} exited before sending {kind!r}") from None
                    if got_kind == "error":
                        raise WorkerFailed(f"worker {i} failed:\n{payload}")
                    if got_kind != kind:
                        raise WorkerFailed(f"worker {i} sent {got_kind!r}, expected {kind!r}")
                    out[i] = payload
                    pending.discard(i)
                elif not self.procs[i].is_alive() and not pipe.poll():
                    raise WorkerFailed(f"worker {i} died (exit code {self.procs[i].exitcode})")
        return out

    def finish(self, timeout: float) -> list[dict]:
        """Collect every worker's final result and merge their new SCRAM keys."""
        results = []
        for result, new_cache in self.gather("result", timeout):
            xmpp.SCRAM_CACHE.update(new_cache)
            results.append(result)
        self.results = results
        self.close()
        return results

    def close(self) -> None:
        for p in self.procs:
            p.join(timeout=5)
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


def split(seq: list, parts: int, unit: int = 1) -> list[list]:
    """Split ``seq`` into ``parts`` nearly equal slices whose sizes are multiples of ``unit``."""
    groups = [seq[i:i + unit] for i in range(0, len(seq) - len(seq) % unit, unit)]
    out: list[list] = [[] for _ in range(parts)]
    for i, g in enumerate(groups):
        out[i % parts].extend(g)
    return out


async def login_many(ctx: WorkerContext, users: list[tuple[str, str]], concurrency: int,
                     presence: bool, flusher: xmpp.Flusher | None = None,
                     resource_name: str = "bench", raw: bool = False, carbons: bool = False,
                     sm: bool = False) -> tuple[list[xmpp.Connection | None], int]:
    """Log ``users`` in with bounded concurrency (carbons and stream management enabled when asked);
    returns connections (None on failure)."""
    t = ctx.target
    tls = ctx.tls_context()
    sem = asyncio.Semaphore(concurrency)
    conns: list[xmpp.Connection | None] = [None] * len(users)
    failures = 0
    first_error: list[str] = []

    async def one(i: int, user: str, pw: str) -> None:
        nonlocal failures
        async with sem:
            for attempt in range(3):
                try:
                    conns[i] = await xmpp.login(t.host, t.port, user, pw, t.domain, resource_name,
                                                flusher=flusher, tls=tls, presence=presence, raw=raw,
                                                carbons=carbons, sm=sm)
                    return
                except (OSError, xmpp.XMPPError, asyncio.TimeoutError) as e:
                    if not first_error:
                        first_error.append(f"{user}: {e!r}")
                    await asyncio.sleep(0.2 * (attempt + 1))
            failures += 1

    await asyncio.gather(*(one(i, u, p) for i, (u, p) in enumerate(users)))
    if failures:
        ctx.extra["first_error"] = first_error[0] if first_error else ""
    return conns, failures
