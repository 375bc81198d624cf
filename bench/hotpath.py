"""The per-message hot path in one process, without sockets: for profiling and instruction counts.

Two clients are bound through the real stream state machine and server
(router, modules, storage); then client A's connection is fed N chat
messages for B's full JID in chunks, as a socket would, and the bytes
written to B's transport are checked. Because nothing but this runs, the
instruction count under ``valgrind --tool=callgrind`` repeats exactly from
run to run, which wall-clock time on a shared machine does not:

    python -m bench.hotpath --messages 20000            # µs per message (noisy)
    python -m bench.hotpath --callgrind                 # instructions per message (exact)
    python -m bench.hotpath --callgrind --base core     # the core modules only: routing without the extensions
    python -m bench.hotpath --callgrind --base core --modules mam      # the core and one extension's cost
    python -m bench.hotpath --callgrind --modules smacks,carbons --mobile  # clients using them
    py-spy record -o /tmp/hot.svg -- python -m bench.hotpath --messages 200000

With ``--logins`` it measures logins instead: the bench's own client
(bench/xmpp.py) and a server connection joined by an in-memory pipe go
through the whole negotiation (stream, SCRAM-SHA-1, restart, bind, close),
several at a time, against accounts in the real storage; the count covers
the client's share too, which does not change between two servers:

    python -m bench.hotpath --logins 2000 --callgrind   # instructions per login
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import xmpp
from sakari.config import Config
from sakari.credentials import derive
from sakari.net.c2s import C2SConnection
from sakari.server import Server
from sakari.settings import CORE_MODULES, DEFAULT_MODULES
from sakari.stream.c2s import State

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)


class MemoryTransport(asyncio.Transport):
    """What a socket's transport says of itself, for one that never fills: a client on loopback, which
    hot_config exempts from the per-address and per-account limits."""

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


class FakeTransport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.chunks: list[bytes] = []
        self.keep = False
        self.acks_to: C2SConnection | None = None  # a client with stream management: answer <r/> there
        self.handled = 0

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += len(data)
        if self.keep:
            self.chunks.append(bytes(data))
        if self.acks_to is not None:
            # Only plain stanzas reach this client after it enabled stream management: count them as it would.
            self.handled += data.count(b"<message ") + data.count(b"<iq ") + data.count(b"<presence")
            if b"<r xmlns='urn:xmpp:sm:3'/>" in data:
                ack = b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % self.handled
                asyncio.get_running_loop().call_soon(self.acks_to.data_received, ack)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def bound_client(server: Server, user: str, mobile: bool = False) -> tuple[C2SConnection, FakeTransport]:
    conn = C2SConnection(server.port, direct_tls=False)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.data_received(HEADER)
    # Authentication is not on the per-message path: skip SASL and continue from the restart after it.
    conn.stream.user = user
    conn.stream._restart()
    conn.data_received(HEADER)
    assert conn.stream.state is State.BIND
    conn.data_received(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"
        b"<presence/>"
    )
    deadline = time.monotonic() + 30
    while not (conn.session is not None and server.router.resource_of(conn.session).available):
        if time.monotonic() > deadline:
            raise SystemExit(f"{user} did not become available")
        await asyncio.sleep(0.001)  # the roster is loaded on the storage thread
    if mobile:
        # As phones do: stream management with acks, and carbons. Counting starts with what is written
        # after <enable/>, so what is still queued from before goes out first.
        while conn._flush_scheduled:
            await asyncio.sleep(0)
        transport.acks_to = conn
        conn.data_received(
            b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
            b"<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
        )
    return conn, transport


def hot_config(data_dir: str, modules: list[str]) -> Config:
    """No listener on a fixed port and nothing off the machine: this runs beside anything."""
    return Config({
        "data_dir": data_dir, "network.c2s_port": 0, "network.c2s_tls_port": 0, "network.http_port": 0,
        "network.https_port": 0, "c2s.require_encryption": False, "limits.c2s_rate_bytes": 0,
        "limits.exempt_networks": ["127.0.0.0/8"],  # clients on loopback, as many as the scenario needs
        "s2s.enabled": False, "proxy65.port": 0,
        **({"modules.enabled": modules} if modules else {}),
    })


class Pipe(MemoryTransport):
    """One direction of an in-memory connection: what is written arrives at the peer on the next turn, as from a socket."""

    def __init__(self, peer: asyncio.Protocol, other_end: asyncio.Protocol) -> None:
        super().__init__()
        self.peer = peer
        self.other_end = other_end  # the protocol writing into this pipe: told when the peer closes
        self.closing = False
        self.loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:  # type: ignore[override]
        if not self.closing:
            self.loop.call_soon(self.peer.data_received, bytes(data))

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.peer.connection_lost, None)
            self.loop.call_soon(self.other_end.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closing


async def one_login(server: Server, user: str) -> None:
    client = xmpp.Connection("localhost")
    conn = C2SConnection(server.port, direct_tls=False)
    to_server, to_client = Pipe(conn, client), Pipe(client, conn)
    conn.connection_made(to_client)
    client.connection_made(to_server)
    features = await client.open_stream()
    await client.auth_scram_sha1(features, user, "pw-" + user)
    features = await client.open_stream()
    await client.bind(features, "hot")
    to_server.write(b"</stream:stream>")
    await client.closed


async def run_logins(logins: int, parallel: int, quiet: bool, modules: list[str]) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        server = Server(hot_config(data_dir, modules))
        await server.start()
        users = [f"u{i}" for i in range(parallel * 4)]
        for user in users:  # few iterations: PBKDF2 is the client's cost, cached per account, not the server's
            await server.storage.accounts.create(f"{user}@localhost", derive("pw-" + user, 64))
        await asyncio.gather(*(one_login(server, user) for user in users))  # warm: the client caches its keys
        done = 0

        async def worker(first: int) -> None:
            nonlocal done
            i = first
            while done < logins:
                done += 1
                await one_login(server, users[i % len(users)])
                i += parallel
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(parallel)))
        elapsed = time.perf_counter() - t0
        await server.stop()
    if not quiet:
        print(f"{done} logins in {elapsed:.3f} s: {elapsed / done * 1e6:.0f} µs per login, client included "
              f"({done / elapsed:,.0f} logins/s on one core, no sockets)")


async def run(messages: int, chunk: int, quiet: bool, modules: list[str], mobile: bool) -> None:
    """``modules``: the whole list to load; empty, the configuration's default."""
    with tempfile.TemporaryDirectory() as data_dir:
        server = Server(hot_config(data_dir, modules))
        await server.start()
        a, _ = await bound_client(server, "a", mobile)
        b, b_out = await bound_client(server, "b", mobile)
        body = b"<message to='b@localhost/r' type='chat' id='m%d'><body>Hello there, how are you today?</body></message>"
        batch = b"".join(body % i for i in range(chunk))
        start_bytes = b_out.written
        t0 = time.perf_counter()
        for _ in range(messages // chunk):
            a.data_received(batch)
            while a.session._draining or b._flush_scheduled:  # type: ignore[union-attr]
                await asyncio.sleep(0)
        elapsed = time.perf_counter() - t0
        received = b_out.written - start_bytes
        expected = (messages // chunk) * chunk
        per_message = len(b"<message to='b@localhost/r' type='chat' id='m0' from='a@localhost/r'>") + 50
        if received < expected * per_message * 0.9:
            raise SystemExit(f"only {received} bytes reached b for {expected} messages")
        await server.stop()
    if not quiet:
        print(f"{expected} messages in {elapsed:.3f} s: {elapsed / expected * 1e6:.2f} µs per message "
              f"({expected / elapsed:,.0f} messages/s on one core, no sockets)")


def instructions(messages: int, chunk: int, modules: list[str], mobile: bool, logins: bool) -> float:
    """Instructions per message (or login) under callgrind: two runs, so that start-up cost cancels out."""
    counts = []
    for n in (messages, 3 * messages):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", "bench.hotpath",
             *(["--logins", str(n)] if logins else ["--messages", str(n), "--chunk", str(chunk)]), "--quiet",
             # Every list made in main() starts with the core modules: the rest goes as extras to them.
             *(["--base", "core", "--modules", ",".join(modules[len(CORE_MODULES):])] if modules else []),
             *(["--mobile"] if mobile else [])],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # string hashing is randomized per process otherwise
        ).stderr
        match = re.search(r"Collected : (\d+)", out)
        if match is None:
            raise SystemExit(f"callgrind printed no count:\n{out}")
        counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (2 * messages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--chunk", type=int, default=4, help="messages per read, as they arrive from a socket")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--base", choices=("default", "core"), default="default",
                    help="the modules to start from: the default list, or the core of instant messaging only")
    ap.add_argument("--modules", default="", help="modules to load besides those of --base, comma-separated")
    ap.add_argument("--mobile", action="store_true", help="clients enable stream management (and ack) and carbons; "
                    "needs --modules smacks,carbons")
    ap.add_argument("--logins", type=int, default=0, help="measure this many logins instead of messages")
    ap.add_argument("--parallel", type=int, default=16, help="logins under way at once (with --logins)")
    ap.add_argument("--callgrind", action="store_true", help="count instructions per message (needs valgrind)")
    args = ap.parse_args()
    extra = [m for m in args.modules.split(",") if m]
    modules = ((DEFAULT_MODULES if args.base == "default" else CORE_MODULES) + extra) if extra or args.base == "core" else []
    if args.callgrind:
        if args.logins:
            print(f"{instructions(min(args.logins, 500), args.chunk, modules, args.mobile, True):,.0f} instructions per login")
        else:
            print(f"{instructions(min(args.messages, 2000), args.chunk, modules, args.mobile, False):,.0f} "
                  "instructions per message")
        return
    main_coro = (run_logins(args.logins, args.parallel, args.quiet, modules) if args.logins
                 else run(args.messages, args.chunk, args.quiet, modules, args.mobile))
    try:
        import uvloop
        uvloop.run(main_coro)
    except ImportError:
        asyncio.run(main_coro)


if __name__ == "__main__":
    main()
