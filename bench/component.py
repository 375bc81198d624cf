"""The component scenario: users exchange messages with an external component (XEP-0114) that echoes.

Each generator worker connects one component (``echo<k>.localhost``, the
servers configure :data:`COMPONENTS` of them with :data:`SECRET`) and logs in
its share of the users. Every user sends 1:1 messages to ``bot@echo<k>``,
keeping ``component_window`` unanswered; the component sends each one back to
its sender, and an echo's arrival lets the user send the next one. So every
round trip is two stanzas the server routes: user → component (c2s in,
component stream out) and component → user (component stream in, c2s out).

The component is a raw-socket client like the users (:func:`bench.xmpp.component_login`):
incoming bytes are split into stanzas by the byte scanner and each echo is
built from the start tag's addresses and the stanza's raw inside, so the
generator does no XML parsing per stanza.
"""

from __future__ import annotations

import asyncio
import functools
import time
from array import array

from bench import xmpp
from bench.loadgen import Fleet, WorkerContext, login_many, round_trip_counter, split

COMPONENTS = tuple(f"echo{k}.localhost" for k in range(1, 5))  # one per worker; workers beyond share them
SECRET = "bench-component-secret"
NS = 1_000_000_000


def component_of(worker: int) -> str:
    return COMPONENTS[worker % len(COMPONENTS)]


async def component_worker(ctx: WorkerContext) -> dict:
    p = ctx.params
    t = ctx.target
    loop = asyncio.get_running_loop()
    flusher = xmpp.Flusher(loop)
    domain = component_of(ctx.index)
    echo = await xmpp.component_login(t.host, p["component_port"], domain, p["secret"], flusher=flusher)
    conns, failures = await login_many(ctx, ctx.users, p["login_concurrency"], presence=True,
                                       flusher=flusher, raw=True)
    ctx.send("ready", {"online": sum(c is not None for c in conns), "failures": failures,
                       "error": ctx.extra.get("first_error", "")})
    go = await ctx.recv("go")
    if go is None or failures:
        for c in [*conns, echo]:
            if c:
                c.close()
        return {}
    t_go, m0, m1, drain_s, window = go["t_go"], go["m0"], go["m1"], go["drain_s"], go["window"]
    body = xmpp.xml_escape(p["body"])
    now = time.monotonic_ns
    lat = array("q")
    st = {"sent": 0, "received": 0, "in_window": 0, "echoed": 0, "echoed_in_window": 0, "errors": 0,
          "component_errors": 0, "other": 0}
    done = loop.create_future()
    prefix = f"<message to='bot@{domain}' type='chat' id='".encode()
    suffix = f"'><body>{body}</body></message>".encode()

    def send_from(i: int) -> None:
        conns[i].send(prefix + str(now()).encode() + suffix)  # type: ignore[union-attr]
        st["sent"] += 1

    attr = xmpp.attr

    def on_component(name: bytes, tag: bytes, raw: bytes) -> None:
        """Send the message back: the start tag rebuilt with the addresses swapped, the inside as it came."""
        if name != b"message":
            return
        if b"error" in tag and attr(tag, b"type") == b"error":
            st["component_errors"] += 1
            return
        echo.send(b"<message from='" + attr(tag, b"to") + b"' to='" + attr(tag, b"from")  # type: ignore[operator]
                  + b"' type='chat' id='" + (attr(tag, b"id") or b"") + b"'" + raw[len(tag) - 1:])
        st["echoed"] += 1
        if m0 <= now() < m1:
            st["echoed_in_window"] += 1

    echo.on_raw = on_component
    for i, c in enumerate(conns):
        c.on_raw = round_trip_counter(st, lat, m0, m1, done, functools.partial(send_from, i))  # type: ignore[union-attr]
    await asyncio.sleep(max(0.0, (t_go - now()) / NS))
    for _ in range(window):
        for i in range(len(conns)):
            send_from(i)
    await asyncio.sleep(max(0.0, (m1 - now()) / NS))
    if st["received"] < st["sent"]:
        try:
            await asyncio.wait_for(done, drain_s)
        except asyncio.TimeoutError:
            pass
    closed_early = sum(1 for c in [*conns, echo] if c.closed.done())  # type: ignore[union-attr]
    for c in [*conns, echo]:
        c.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.1)
    return {**st, "lat": lat, "closed_early": closed_early}


class ComponentScenario:
    name = "component"
    title = "component traffic: users and an echoing external component (XEP-0114)"
    headline = "msgs/s"
    server_features = {"component"}  # the servers configure the echo components only for this scenario

    def supported(self, server) -> str | None:
        return None if getattr(server, "component_port", None) else "no component listener configured"

    def run(self, server, params) -> dict:
        from bench.scenarios import _percentile, _window_usage, run_window

        users = server.accounts(params.component_users)
        slices = split(users, params.workers)
        fleet = Fleet(server.target, slices,
                      {"login_concurrency": max(1, params.login_concurrency // params.workers),
                       "body": params.chat_body, "component_port": server.component_port, "secret": SECRET},
                      component_worker, set(params.gen_cpus))
        results, usage = run_window(fleet, params, params.component_window, len(users),
                                    lambda m0, m1: _window_usage(server, fleet, m0, m1))
        lat = sorted(x for r in results for x in r["lat"])
        sent = sum(r["sent"] for r in results)
        received = sum(r["received"] for r in results)
        # Both hops of every round trip are a message the server routed.
        routed = sum(r["in_window"] + r["echoed_in_window"] for r in results)
        rate = routed / params.duration_s
        return {
            "value": rate,
            "msgs_per_s": rate,
            "round_trips_per_s": sum(r["in_window"] for r in results) / params.duration_s,
            "p50_ms": _percentile(lat, 0.50) / 1e6,
            "p99_ms": _percentile(lat, 0.99) / 1e6,
            "sent": sent,
            "echoed": sum(r["echoed"] for r in results),
            "received": received,
            "lost": sent - received,
            "errors": sum(r["errors"] + r["component_errors"] for r in results),
            "disconnected": sum(r["closed_early"] for r in results),
            **usage,
            "msgs_per_server_cpu_s": rate / usage["server_cpu"] if usage["server_cpu"] > 0 else float("nan"),
            "users": len(users),
            "components": min(params.workers, len(COMPONENTS)),
            "window": params.component_window,
        }
