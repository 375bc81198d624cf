"""The pep scenario: one account publishes to its PEP node (XEP-0163) flat out, and its contacts' clients
count the notifications that reach them.

- Accounts: u1 publishes; u2 … u(1 + pep_contacts) are its contacts. Before the first run on a server the
  rosters are made by the subscription exchange of RFC 6121 §3 (u1 and every contact ask each other and
  approve), so both servers hold the same mutual ("both") subscriptions, written by their own roster
  code. The exchange is idempotent: once subscribed, a server answers a new request itself.
- Every contact comes online with caps (XEP-0115) whose features include ``NODE+notify`` and answers the
  server's disco#info query for them, the way a real client does. The publisher's presence has no caps,
  so it gets no notifications itself.
- Before the measurement the publisher publishes slowly until every contact has had a notification:
  then every server has learned the caps and the audience is whole.
- Then the publisher keeps ``pep_window`` publishes unanswered (a result frees a slot), each to the same
  item id (``current``, as User Tune or a vCard4 would) with the send time in the payload.

Figures: **deliveries/s** = notifications received by the contacts inside the window; publishes/s
(results inside the window); latency from publish to each notification; lost = acknowledged publishes ×
contacts − notifications received (for publishes of the measured phase); a second notification of the same
publish to the same contact is counted apart, as a duplicate, and not as a delivery.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from array import array
from typing import Any

from bench import xmpp
from bench.loadgen import Fleet, WorkerContext, login_many, split

NODE = "urn:sakari:bench:pep"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
CAPS_NODE = "https://sakari.invalid/bench"
IDENTITY = ("client", "pc", "", "bench")
FEATURES = sorted([NS_CAPS, NS_DISCO_INFO, f"{NODE}+notify"])
PAD = "a payload the size of a song title and artist, as User Tune carries"
NS_PER_S = 1_000_000_000
_T = re.compile(rb"\st=['\"](\d+)['\"]")
_ID = re.compile(rb"\sid=['\"]([^'\"]*)['\"]")
_BOTH = re.compile(rb"subscription=['\"]both['\"]")


def caps_ver() -> str:
    """XEP-0115 §5.1 verification string of the contacts' one identity and features."""
    category, kind, lang, name = IDENTITY
    text = f"{category}/{kind}/{lang}/{name}<" + "".join(f"{f}<" for f in FEATURES)
    return base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


VER = caps_ver()
CAPS_PRESENCE = f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='{CAPS_NODE}' ver='{VER}'/></presence>".encode()
_DISCO_INNER = (f"<identity category='{IDENTITY[0]}' type='{IDENTITY[1]}' name='{IDENTITY[3]}'/>"
                + "".join(f"<feature var='{f}'/>" for f in FEATURES))


def bare(jid: bytes) -> bytes:
    return jid.split(b"/", 1)[0]


def disco_answer(tag: bytes, raw: bytes) -> bytes | None:
    """The answer to a server's disco#info query for our caps node, or None if this is not one."""
    if xmpp.attr(tag, b"type") != b"get" or NS_DISCO_INFO.encode() not in raw:
        return None
    sender, qid = xmpp.attr(tag, b"from"), xmpp.attr(tag, b"id")
    node = f"{CAPS_NODE}#{VER}"
    to = f" to='{sender.decode()}'" if sender else ""
    return (f"<iq type='result'{to} id='{(qid or b'').decode()}'><query xmlns='{NS_DISCO_INFO}' node='{node}'>"
            f"{_DISCO_INNER}</query></iq>").encode()


def publish_iq(serial: int, t: int) -> bytes:
    return (f"<iq type='set' id='p{serial}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{NODE}'><item id='current'>"
            f"<bench xmlns='{NODE}' t='{t}'>{PAD}</bench></item></publish></pubsub></iq>").encode()


# =====================================================================  rosters
async def roster_worker(ctx: WorkerContext) -> dict:
    """Mutual subscriptions between the publisher (the first account) and every other account: each asks
    the other and approves what it is asked; done when the publisher's roster shows every contact as
    "both" (asked for again until then, since approvals need not come back to a client that never
    fetched its roster, RFC 6121 §3.1.6)."""
    loop = asyncio.get_running_loop()
    flusher = xmpp.Flusher(loop)
    conns, failures = await login_many(ctx, ctx.users, 50, presence=False, flusher=flusher, raw=True)
    if failures:
        raise xmpp.XMPPError(f"{failures} accounts could not log in: {ctx.extra.get('first_error')}")
    jids = [c.jid.split("/", 1)[0] for c in conns]  # type: ignore[union-attr]
    publisher, contacts = jids[0], jids[1:]
    mutual = [0]
    answered = asyncio.Event()

    def handler(i: int):
        me = conns[i]

        def on_raw(name: bytes, tag: bytes, raw: bytes) -> None:
            if name == b"presence" and xmpp.attr(tag, b"type") == b"subscribe":
                sender = bare(xmpp.attr(tag, b"from") or b"").decode()
                me.send(f"<presence to='{sender}' type='subscribed'/>".encode())  # type: ignore[union-attr]
            elif i == 0 and name == b"iq" and (xmpp.attr(tag, b"id") or b"").startswith(b"roster"):
                mutual[0] = len(_BOTH.findall(raw))
                answered.set()
        return on_raw

    for i, c in enumerate(conns):
        c.on_raw = handler(i)  # type: ignore[union-attr]
        c.send(b"<presence/>")  # type: ignore[union-attr]
    for i, contact in enumerate(contacts, start=1):
        conns[0].send(f"<presence to='{contact}' type='subscribe'/>".encode())  # type: ignore[union-attr]
        conns[i].send(f"<presence to='{publisher}' type='subscribe'/>".encode())  # type: ignore[union-attr]
    deadline = loop.time() + 180
    for attempt in range(1 << 30):
        answered.clear()
        conns[0].send(f"<iq type='get' id='roster{attempt}'><query xmlns='jabber:iq:roster'/></iq>".encode())  # type: ignore[union-attr]
        await asyncio.wait_for(answered.wait(), 30)
        if mutual[0] >= len(contacts):
            break
        if loop.time() > deadline:
            raise xmpp.XMPPError(f"only {mutual[0]} of {len(contacts)} contacts became mutual in 180 s")
        await asyncio.sleep(0.5)
    for c in conns:
        c.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.2)
    return {"contacts": len(contacts)}


# =====================================================================  publishing
async def pep_worker(ctx: WorkerContext) -> dict:
    p = ctx.params
    loop = asyncio.get_running_loop()
    flusher = xmpp.Flusher(loop)
    conns, failures = await login_many(ctx, ctx.users, p["login_concurrency"], presence=False,
                                       flusher=flusher, raw=True)
    if failures:
        ctx.send("ready", {"failures": failures, "error": ctx.extra.get("first_error", "")})
        await ctx.recv("prime")
        return {}
    is_publisher = ctx.index == 0
    publisher = conns[0] if is_publisher else None
    contacts = conns[1:] if is_publisher else conns
    now = time.monotonic_ns
    st = {"sent": 0, "acked": 0, "acked_in_window": 0, "errors": 0, "received": 0, "in_window": 0, "late": 0,
          "duplicates": 0, "disco_answers": 0}
    lat = array("q")
    phase = {"t_go": 1 << 62, "m0": 1 << 62, "m1": 1 << 62}
    primed: set[int] = set()
    seen: list[set[int]] = [set() for _ in contacts]  # per contact, the publishes (send times) it was told of
    all_primed = loop.create_future()
    last_rx = [0]
    inflight = [0]
    serial = [0]

    def publish() -> None:
        serial[0] += 1
        t = now()
        publisher.send(publish_iq(serial[0], t))  # type: ignore[union-attr]
        if t >= phase["t_go"]:
            st["sent"] += 1
            inflight[0] += 1

    def on_publisher(name: bytes, tag: bytes, raw: bytes) -> None:
        if name != b"iq":
            return
        m = _ID.search(tag)
        if m is None or not m.group(1).startswith(b"p"):
            return
        kind = xmpp.attr(tag, b"type")
        if kind == b"error":
            st["errors"] += 1
        t = now()
        if int(m.group(1)[1:]) <= serial_at_go[0]:
            return  # a priming publish
        inflight[0] -= 1
        if kind == b"result":
            st["acked"] += 1
            if phase["m0"] <= t < phase["m1"]:
                st["acked_in_window"] += 1
        if t < phase["m1"]:
            publish()

    serial_at_go = [1 << 62]

    def on_contact(i: int):
        conn = contacts[i]

        def on_raw(name: bytes, tag: bytes, raw: bytes) -> None:
            if name == b"iq":
                answer = disco_answer(tag, raw)
                if answer is not None:
                    conn.send(answer)  # type: ignore[union-attr]
                    st["disco_answers"] += 1
                return
            if name != b"message":
                return
            if xmpp.attr(tag, b"type") == b"error":
                st["errors"] += 1
                return
            m = _T.search(raw)
            if m is None:
                return
            t = now()
            sent_at = int(m.group(1))
            if i not in primed:
                primed.add(i)
                if len(primed) == len(contacts) and not all_primed.done():
                    all_primed.set_result(None)
            if sent_at < phase["t_go"]:
                return  # a last item sent on login, or a priming publish
            last_rx[0] = t
            if sent_at in seen[i]:
                st["duplicates"] += 1  # the same publish told twice counts once
                return
            seen[i].add(sent_at)
            st["received"] += 1
            if phase["m0"] <= t < phase["m1"]:
                st["in_window"] += 1
                lat.append(t - sent_at)
            elif t >= phase["m1"]:
                st["late"] += 1
        return on_raw

    for i, c in enumerate(contacts):
        c.on_raw = on_contact(i)  # type: ignore[union-attr]
        c.send(CAPS_PRESENCE)  # type: ignore[union-attr]
    if publisher is not None:
        publisher.on_raw = on_publisher  # type: ignore[assignment]
        publisher.send(b"<presence/>")
    if not contacts:
        all_primed.set_result(None)
    ctx.send("ready", {"failures": 0, "error": ""})
    await ctx.recv("prime")

    async def prime() -> None:
        """Slow publishes until told to go: each contact's first notification shows its caps were learned."""
        while True:
            publish()
            await asyncio.sleep(0.1)

    priming = loop.create_task(prime()) if publisher is not None else None
    await asyncio.wait_for(all_primed, p["prime_timeout"])
    ctx.send("primed", {"contacts": len(contacts)})
    go = await ctx.recv("go")
    if priming is not None:
        priming.cancel()
    serial_at_go[0] = serial[0]
    phase.update(t_go=go["t_go"], m0=go["m0"], m1=go["m1"])
    await asyncio.sleep(max(0.0, (go["t_go"] - now()) / NS_PER_S))
    while now() < go["t_go"]:  # a timer may fire a little early; the first publishes must count
        await asyncio.sleep(0)
    if publisher is not None:
        for _ in range(go["window"]):
            publish()
    await asyncio.sleep(max(0.0, (phase["m1"] - now()) / NS_PER_S))
    deadline = now() + int(go["drain_s"] * NS_PER_S)
    while now() < deadline and (inflight[0] > 0 or now() - last_rx[0] < NS_PER_S):
        await asyncio.sleep(0.1)
    for c in conns:
        c.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.2)
    return {**st, "lat": lat, "contacts": len(contacts), "distinct": [len(x) for x in seen]}


class PepScenario:
    name = "pep"
    title = "PEP notifications (deliveries/s to 200 contacts with +notify)"
    headline = "deliveries/s"
    server_features = {"pep"}  # Prosody loads mod_pep for it (Sakari has PEP on by default)

    def supported(self, server: Any) -> str | None:
        if server.name == "ejabberd":
            return "PEP is not configured for ejabberd in this harness"
        return None

    def ensure_rosters(self, server: Any, params: Any) -> None:
        """Once per server and invocation: the subscriptions live in the server's data, kept between runs."""
        if getattr(server, "pep_rosters", 0) >= params.pep_contacts:
            return
        users = server.accounts(params.pep_contacts + 1)
        fleet = Fleet(server.target, [users], {}, roster_worker, set(params.gen_cpus))
        try:
            fleet.finish(timeout=240)
        finally:
            fleet.close()
        server.pep_rosters = params.pep_contacts

    def run(self, server: Any, params: Any) -> dict:
        from bench.scenarios import ScenarioError, _percentile, _window_usage  # a cycle otherwise

        self.ensure_rosters(server, params)
        users = server.accounts(params.pep_contacts + 1)
        # the publisher first, in worker 0; the contacts spread over every worker
        slices = split(users[1:], params.workers)
        slices[0].insert(0, users[0])
        fleet = Fleet(server.target, slices, {"login_concurrency": max(1, params.login_concurrency // params.workers),
                                              "prime_timeout": 120.0}, pep_worker, set(params.gen_cpus))
        try:
            ready = fleet.gather("ready", timeout=300)
            failures = sum(r["failures"] for r in ready)
            fleet.broadcast("prime")
            if failures:
                raise ScenarioError(f"{failures} accounts could not log in ({'; '.join(r['error'] for r in ready)})")
            t0 = time.monotonic()
            fleet.gather("primed", timeout=150)
            primed_s = time.monotonic() - t0
            t_go = time.monotonic_ns() + NS_PER_S // 2
            m0 = t_go + int(params.warmup_s * NS_PER_S)
            m1 = m0 + int(params.duration_s * NS_PER_S)
            fleet.broadcast("go", {"t_go": t_go, "m0": m0, "m1": m1, "drain_s": params.drain_s,
                                   "window": params.pep_window})
            usage = _window_usage(server, fleet, m0, m1)
            results = fleet.finish(timeout=params.drain_s + 60)
        finally:
            fleet.close()
        lat = sorted(x for r in results for x in r["lat"])
        contacts = sum(r["contacts"] for r in results)
        acked = sum(r["acked"] for r in results)
        received = sum(r["received"] for r in results)
        distinct = [r["distinct"] for r in results]
        per_contact = [n for d in distinct for n in d]
        rate = sum(r["in_window"] for r in results) / params.duration_s
        return {
            "value": rate,
            "deliveries_per_s": rate,
            "publishes_per_s": sum(r["acked_in_window"] for r in results) / params.duration_s,
            "p50_ms": _percentile(lat, 0.50) / 1e6,
            "p99_ms": _percentile(lat, 0.99) / 1e6,
            "contacts": contacts,
            "window": params.pep_window,
            "published": acked,
            "expected_deliveries": acked * contacts,
            "received": received,
            "lost": acked * contacts - received,
            "duplicates": sum(r["duplicates"] for r in results),
            "per_contact_min": min(per_contact, default=0),
            "per_contact_max": max(per_contact, default=0),
            "errors": sum(r["errors"] for r in results),
            "caps_queries_answered": sum(r["disco_answers"] for r in results),
            "primed_s": primed_s,
            "deliveries_per_server_cpu_s": rate / usage["server_cpu"] if usage["server_cpu"] > 0 else float("nan"),
            **usage,
        }
