"""The s2s scenario: 1:1 chat between the users of two servers of the same kind, flat out.

The scenario starts a pair of its own (the runner's server does not run):
a.s2s.test on 127.0.0.21 and b.s2s.test on 127.0.0.22, each with the
runner's ports on its own address, both pinned to the server CPUs. Each
finds the other without DNS: Sakari through ``s2s.host_map``, Prosody
(which has no static routes) by an address from a hosts file on the default
port 5269. Names under test. are answered by libunbound itself (RFC 6761),
so Prosody's SRV look-ups fail at once and nothing leaves the machine. Both
pairs keep their self-signed certificates and prove their domains by
dialback over TLS, as servers without a CA-signed certificate do.

User u<i> of a.s2s.test and u<i> of b.s2s.test are a pair, with the chat
scenario's sizes (``chat_users`` users in all, ``chat_window`` in flight per
sender): every message crosses the server-to-server link, is routed by both
servers, and its delivery lets the partner send the next one. Before any
load each worker sends one message across in each direction and waits for
it, so both links (TCP, TLS, dialback) are up before the warm-up and the
measured window, and nothing waits on a link coming up. CPU is that of both
servers together.
"""

from __future__ import annotations

import asyncio
import dataclasses

from bench import xmpp
from bench.loadgen import Fleet, WorkerContext, login_many, split

PAIR = (("a.s2s.test", "127.0.0.21"), ("b.s2s.test", "127.0.0.22"))


async def s2s_worker(ctx: WorkerContext) -> dict:
    from bench.scenarios import chat_pairs  # a cycle otherwise: scenarios lists this module's scenario

    p = ctx.params
    flusher = xmpp.Flusher(asyncio.get_running_loop())
    host, port, domain = p["there"]
    there = dataclasses.replace(ctx, target=dataclasses.replace(ctx.target, host=host, port=port, domain=domain))
    here_conns, here_failed = await login_many(ctx, ctx.users, p["login_concurrency"], presence=True,
                                               flusher=flusher, raw=True)
    there_conns, there_failed = await login_many(there, ctx.users, p["login_concurrency"], presence=True,
                                                 flusher=flusher, raw=True)
    failed = here_failed + there_failed
    if not failed:
        try:
            await link_up(here_conns[0], there_conns[0], p.get("link_timeout", 60.0))
        except xmpp.XMPPError as e:  # reported with the login failures: the run stops at "ready"
            failed = 1
            ctx.extra.setdefault("first_error", str(e))
    # u<i> here and u<i> there are neighbours, the pair chat_pairs makes talk.
    conns = [c for pair in zip(here_conns, there_conns) for c in pair]
    return await chat_pairs(ctx, conns, failed)


async def link_up(here, there, timeout: float) -> None:
    """Bring both server-to-server links up before any load: each side sends one message across and waits
    until it arrives (a bounce, say a link still failing, is retried after a pause), in both directions.
    The window then measures traffic over established links, and the opening burst never waits on a link."""
    loop = asyncio.get_running_loop()

    async def one_way(src, dst) -> None:
        deadline = loop.time() + timeout
        attempt = 0
        while True:
            attempt += 1
            got = loop.create_future()

            def on_raw(name: bytes, tag: bytes, raw: bytes, got=got) -> None:
                if name == b"message" and not got.done():
                    got.set_result(xmpp.attr(tag, b"type") != b"error")
            src.on_raw = dst.on_raw = on_raw  # the sender sees a bounce, the receiver the message
            src.send(f"<message to='{xmpp.xml_escape(dst.jid)}' type='chat' id='link-up-{attempt}'>"
                     f"<body>link up</body></message>".encode())
            try:
                if await asyncio.wait_for(got, max(0.1, deadline - loop.time())):
                    break
            except asyncio.TimeoutError:
                raise xmpp.XMPPError(f"s2s link {src.jid} -> {dst.jid} not up within {timeout:.0f} s") from None
            if loop.time() >= deadline:
                raise xmpp.XMPPError(f"s2s link {src.jid} -> {dst.jid}: messages bounced for {timeout:.0f} s")
            await asyncio.sleep(0.5)

    # Each connection takes part in both directions (sender of one, receiver of the other), so one handler per
    # connection cannot serve both at once: one direction, then the other.
    await one_way(here, there)
    await one_way(there, here)
    here.on_raw = there.on_raw = None


class S2SScenario:
    name = "s2s"
    title = "1:1 chat between two servers of the same kind (s2s)"
    headline = "msgs/s"
    starts_servers = True  # the pair below, not the runner's server

    def __init__(self) -> None:
        # One pair per kind of server for the whole invocation, like the runner's servers: accounts are made once.
        self._pairs: dict[type, tuple] = {}

    def supported(self, server) -> str | None:
        return None if hasattr(server, "s2s_port") else "not configured for server-to-server runs"

    def run(self, server, params) -> dict:
        from bench.scenarios import _window_usage, drive_chat

        here, there = self._pair(server)
        n = params.chat_users // 2  # users per server
        started = []
        try:
            for srv in (here, there):
                srv.ensure_accounts(n)
                srv.start(extra={"s2s"})
                started.append(srv)
            users = here.accounts(n)
            fleet = Fleet(here.target, split(users, params.workers),
                          {"login_concurrency": max(1, params.login_concurrency // params.workers),
                           "body": params.chat_body, "there": (there.host, there.c2s_port, there.domain)},
                          s2s_worker, set(params.gen_cpus))
            return drive_chat(fleet, params, params.chat_window, 2 * n,
                              lambda m0, m1: _window_usage(here, fleet, m0, m1, also=(there,)))
        finally:
            for srv in started:
                srv.stop()

    def _pair(self, server) -> tuple:
        kind = type(server)
        if kind not in self._pairs:
            root = server.workdir.parent
            here, there = (kind(root, server.cpus, server.tls, domain=d, host=h) for d, h in PAIR)
            for srv in (here, there):
                srv.extra = {"s2s"}  # before the ports are read: Prosody's s2s port depends on it
            here.s2s_peers = {there.domain: (there.host, there.s2s_port)}
            there.s2s_peers = {here.domain: (here.host, here.s2s_port)}
            self._pairs[kind] = (here, there)
        return self._pairs[kind]
