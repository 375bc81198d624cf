"""Benchmark scenarios: what is measured, and how.

Each scenario is an entry in :data:`SCENARIOS` with

- ``supported(server)``: ``None`` when it can run against that server, else
  the reason it cannot (reported in the results instead of a figure);
- ``run(server, params)``: one measured run, returning a dict of figures whose
  ``value`` is the headline number;
- the worker half (a coroutine run in every generator process).

Adding a scenario is adding a class and one line in :data:`SCENARIOS`; the
runner, the report and the chart pick it up from there.
"""

from __future__ import annotations

import asyncio
import functools
import time
from array import array
from dataclasses import dataclass, field, asdict
from typing import Any, Protocol

from bench import xmpp
from bench.component import ComponentScenario
from bench.s2s import S2SScenario
from bench.loadgen import SEND_TIME_ID, Fleet, Target, WorkerContext, login_many, round_trip_counter, split
from bench.procstat import cpu_busy_seconds, cpu_seconds, process_tree, rss_kib

NS = 1_000_000_000


@dataclass
class Params:
    """Every knob of a benchmark run; the same values are used for every server."""

    workers: int = 2                 # generator processes
    gen_cpus: tuple[int, ...] = (1,)  # CPUs the generator is pinned to
    login_concurrency: int = 200     # parallel logins while bringing users online
    # chat: few connections, each sender flat out (50 in flight), the regime
    # in which the reference figures were taken (see bench/README.md)
    chat_users: int = 100            # online users, in pairs
    chat_window: int = 50            # in-flight messages per sender
    # chat-many: many connections, each with little in flight (one read, one
    # stanza: the per-connection and per-syscall costs dominate)
    chat_many_users: int = 1000
    chat_many_window: int = 2
    chat_body: str = "The quick brown fox jumps over the lazy dog; benchmark message 0123456789."
    warmup_s: float = 3.0
    duration_s: float = 10.0
    drain_s: float = 20.0
    # login
    login_users: int = 1000
    login_parallel: int = 64         # connections logging in at any instant
    # idle
    idle_conns: int = 10_000
    idle_presence: bool = True
    idle_settle_s: float = 5.0
    # muc: one room, some occupants sending flat out (few in flight each, as
    # the reflected copy of a sender's own message frees its slot); muc-large
    # is the same in a room five times bigger, where joins cost the most
    muc_occupants: int = 100
    muc_large_occupants: int = 500
    muc_senders: int = 10
    muc_window: int = 2
    # component: users and an echoing external component (XEP-0114), one
    # component per generator worker; in flight as in chat
    component_users: int = 100
    component_window: int = 50
    # mam
    # The target is stated for 1,000,000; filling through Prosody's and
    # ejabberd's default archive storage runs at ~100-250 messages/s here, so
    # the default is what a run can fill in minutes (see README).
    mam_archive: int = 20_000
    mam_page: int = 50
    mam_senders: int = 20
    mam_queries: int = 20
    # "server": u1's archive is filled by messages sent through the server; "direct": rows written straight into
    # each server's archive storage while it is stopped (bench/mam_fill.py), for archives of a million
    mam_fill: str = "server"
    # pep: one account publishes flat out to a PEP node its contacts ask notifications of (+notify caps)
    pep_contacts: int = 200
    pep_window: int = 8              # publishes unanswered at once
    # --archive: in chat and chat-many every server archives every message, with carbons and stream management
    # on (servers and clients: the clients enable both and answer the servers' ack requests)
    archive: bool = False

    @classmethod
    def quick(cls) -> "Params":
        return cls(chat_users=40, chat_window=20, chat_many_users=200, chat_many_window=2, warmup_s=1.0, duration_s=4.0, drain_s=10.0,
                   login_users=200, login_parallel=32, idle_conns=1000, idle_settle_s=2.0,
                   muc_occupants=50, muc_large_occupants=100, muc_senders=4, mam_archive=5_000, mam_queries=10)

    def accounts_needed(self, scenarios: list[str]) -> int:
        need = 2
        if "chat" in scenarios:
            need = max(need, self.chat_users)
        if "chat-many" in scenarios:
            need = max(need, self.chat_many_users)
        if "login" in scenarios:
            need = max(need, self.login_users)
        if "idle" in scenarios:
            need = max(need, self.idle_conns + 100)
        if "muc" in scenarios:
            need = max(need, self.muc_occupants)
        if "muc-large" in scenarios:
            need = max(need, self.muc_large_occupants)
        if "mam" in scenarios:
            need = max(need, self.mam_senders + 1)
        if "pep" in scenarios:
            need = max(need, self.pep_contacts + 1)
        if "component" in scenarios:
            need = max(need, self.component_users)
        return need

    def as_dict(self) -> dict:
        return asdict(self)


class Server(Protocol):
    name: str
    features: set[str]

    @property
    def target(self) -> Target: ...
    @property
    def pid(self) -> int: ...
    cpus: set[int] | None
    def accounts(self, n: int) -> list[tuple[str, str]]: ...


class ScenarioError(RuntimeError):
    pass


def _sleep_until_ns(t: int) -> None:
    d = (t - time.monotonic_ns()) / NS
    if d > 0:
        time.sleep(d)


def _percentile(sorted_vals: list[int] | array, q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def _window_usage(server: "Server", fleet: Fleet, m0: int, m1: int, also: tuple["Server", ...] = ()) -> dict:
    """CPU use over the measurement window [m0, m1], in cores: the server's
    process tree (and those of the servers ``also`` measured with it), the
    generator's workers, and what else ran on the server's CPUs
    (``server_core_other``) or was stolen from them by the hypervisor."""
    spids = [pid for s in (server, *also) for pid in process_tree(s.pid)]
    gpids = fleet.pids
    cpus = set().union(*(s.cpus or set() for s in (server, *also)))
    _sleep_until_ns(m0)
    s0, g0 = cpu_seconds(spids), cpu_seconds(gpids)
    b0, st0 = cpu_busy_seconds(cpus)
    _sleep_until_ns(m1)
    s1, g1 = cpu_seconds(spids), cpu_seconds(gpids)
    b1, st1 = cpu_busy_seconds(cpus)
    span = (m1 - m0) / NS
    return {"server_cpu": (s1 - s0) / span, "gen_cpu": (g1 - g0) / span,
            "server_core_other": max(0.0, (b1 - b0) - (s1 - s0)) / span if cpus else float("nan"),
            "server_core_steal": (st1 - st0) / span if cpus else float("nan")}


async def prime_worker(ctx: WorkerContext) -> dict:
    """Log every account in once (and out again) so the SCRAM key cache is
    warm before the first measured run: otherwise run 1 logs in at the pace
    of the generator's PBKDF2 and is not comparable with runs 2 and 3."""
    conns, failures = await login_many(ctx, ctx.users, ctx.params["concurrency"], presence=False)
    for c in conns:
        if c:
            c.close()
    await asyncio.sleep(0.2)
    return {"failures": failures, "error": ctx.extra.get("first_error", "")}


def prime_scram_cache(server: "Server", params: Params, n: int) -> int:
    """Run :func:`prime_worker` over accounts u1..un; returns failures."""
    users = server.accounts(n)
    fleet = Fleet(server.target, split(users, params.workers),
                  {"concurrency": max(1, params.login_concurrency // params.workers)},
                  prime_worker, set(params.gen_cpus))
    try:
        results = fleet.finish(timeout=900)
    finally:
        fleet.close()
    return sum(r["failures"] for r in results)


# =====================================================================  chat
async def chat_worker(ctx: WorkerContext) -> dict:
    flusher = xmpp.Flusher(asyncio.get_running_loop())
    archive = ctx.params.get("archive", False)
    conns, failures = await login_many(ctx, ctx.users, ctx.params["login_concurrency"], presence=True,
                                       flusher=flusher, raw=True, carbons=archive, sm=archive)
    return await chat_pairs(ctx, conns, failures)


async def chat_pairs(ctx: WorkerContext, conns: list, failures: int) -> dict:
    """Connections (2i, 2i+1) send each other messages flat out, ``window`` in flight per sender; the chat
    scenarios and the s2s one (where the two of a pair are on different servers) alike."""
    p = ctx.params
    loop = asyncio.get_running_loop()
    ctx.send("ready", {"online": sum(c is not None for c in conns), "failures": failures,
                       "error": ctx.extra.get("first_error", "")})
    go = await ctx.recv("go")
    if go is None or failures:
        for c in conns:
            if c:
                c.close()
        return {}
    t_go, m0, m1, drain_s, window = go["t_go"], go["m0"], go["m1"], go["drain_s"], go["window"]
    body = xmpp.xml_escape(p["body"])
    now = time.monotonic_ns
    lat = array("q")
    st = {"sent": 0, "received": 0, "in_window": 0, "errors": 0, "other": 0}
    done = loop.create_future()
    # pairs (2i, 2i+1) are in this same worker, so the "next message" after a
    # delivery is sent by the partner without any cross-process traffic.
    prefixes: list[bytes] = [b""] * len(conns)
    suffix = f"'><body>{body}</body></message>".encode()

    def send_from(i: int) -> None:
        conns[i].send(prefixes[i] + str(now()).encode() + suffix)  # type: ignore[union-attr]
        st["sent"] += 1

    for i, c in enumerate(conns):
        partner = conns[i ^ 1]
        prefixes[i] = f"<message to='{xmpp.xml_escape(partner.jid)}' type='chat' id='".encode()  # type: ignore[union-attr]
        c.on_raw = round_trip_counter(st, lat, m0, m1, done, functools.partial(send_from, i ^ 1))  # type: ignore[union-attr]
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
    closed_early = sum(1 for c in conns if c.closed.done())  # type: ignore[union-attr]
    for c in conns:
        c.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.1)
    return {**st, "lat": lat, "closed_early": closed_early}


# What --archive switches on in the servers for the chat scenarios.
ARCHIVE_FEATURES = frozenset({"mam", "carbons", "smacks"})


class ChatScenario:
    """1:1 chat; ``name`` picks the parameters: ``chat`` uses chat_users and
    chat_window, ``chat-many`` chat_many_users and chat_many_window."""

    title = "1:1 chat throughput"
    headline = "msgs/s"

    def __init__(self, name: str) -> None:
        self.name = name
        self._prefix = name.replace("-", "_")

    def supported(self, server: Server) -> str | None:
        return None

    def server_features_for(self, params: Params) -> set[str]:
        """What the runner switches on in the server: with --archive, archiving for every message, carbons and
        stream management (each server's own modules; see bench/servers.py)."""
        return set(ARCHIVE_FEATURES) if params.archive else set()

    def run(self, server: Server, params: Params) -> dict:
        n_users = getattr(params, self._prefix + "_users")
        window = getattr(params, self._prefix + "_window")
        users = server.accounts(n_users - n_users % 2)
        slices = split(users, params.workers, unit=2)
        fleet = Fleet(server.target, slices, {"login_concurrency": max(1, params.login_concurrency // params.workers),
                                              "body": params.chat_body, "archive": params.archive},
                      chat_worker, set(params.gen_cpus))
        return drive_chat(fleet, params, window, len(users), lambda m0, m1: _window_usage(server, fleet, m0, m1))


def run_window(fleet: Fleet, params: Params, window: int, n_users: int, usage_of) -> tuple[list[dict], dict]:
    """Wait for every worker of a flat-out fleet to be ready, start them together with ``window`` messages in
    flight each, and return what they report and ``usage_of(m0, m1)``, the CPU use over the window
    (see :func:`_window_usage`). The fleet is closed."""
    try:
        ready = fleet.gather("ready", timeout=300)
        failures = sum(r["failures"] for r in ready)
        if failures:
            fleet.broadcast("go", None)
            errs = "; ".join(r["error"] for r in ready if r["error"])
            raise ScenarioError(f"{failures} of {n_users} users could not log in ({errs})")
        t_go = time.monotonic_ns() + NS // 2
        m0 = t_go + int(params.warmup_s * NS)
        m1 = m0 + int(params.duration_s * NS)
        fleet.broadcast("go", {"t_go": t_go, "m0": m0, "m1": m1, "drain_s": params.drain_s,
                               "window": window})
        usage = usage_of(m0, m1)
        results = fleet.finish(timeout=params.drain_s + 60)
    finally:
        fleet.close()
    return results, usage


def drive_chat(fleet: Fleet, params: Params, window: int, n_users: int, usage_of) -> dict:
    """Start the workers of a chat fleet together, measure the window, and sum up what they report."""
    results, usage = run_window(fleet, params, window, n_users, usage_of)
    lat = sorted(x for r in results for x in r["lat"])
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    in_window = sum(r["in_window"] for r in results)
    rate = in_window / params.duration_s
    return {
        "value": rate,
        "msgs_per_s": rate,
        "p50_ms": _percentile(lat, 0.50) / 1e6,
        "p99_ms": _percentile(lat, 0.99) / 1e6,
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "errors": sum(r["errors"] for r in results),
        "disconnected": sum(r["closed_early"] for r in results),
        **usage,
        "msgs_per_server_cpu_s": rate / usage["server_cpu"] if usage["server_cpu"] > 0 else float("nan"),
        "users": n_users,
        "window": window,
    }


# =====================================================================  login
async def login_worker(ctx: WorkerContext) -> dict:
    p = ctx.params
    t = ctx.target
    tls = ctx.tls_context()
    # Prime the SCRAM key cache (PBKDF2 once per account), not measured.
    conns, failures = await login_many(ctx, ctx.users, p["parallel"], presence=False)
    for c in conns:
        if c:
            c.close()
    ctx.send("ready", {"failures": failures, "error": ctx.extra.get("first_error", "")})
    go = await ctx.recv("go")
    if go is None:
        return {}
    m0, m1 = go["m0"], go["m1"]
    now = time.monotonic_ns
    lat = array("q")
    st = {"ok": 0, "in_window": 0, "failed": 0}
    errors: list[str] = []
    users = ctx.users
    counter = [ctx.index]

    async def loop_one() -> None:
        while True:
            t1 = now()
            if t1 >= m1:
                return
            user, pw = users[counter[0] % len(users)]
            counter[0] += 1
            try:
                conn = await xmpp.login(t.host, t.port, user, pw, t.domain, "login", tls=tls, timeout=30)
            except (OSError, xmpp.XMPPError, asyncio.TimeoutError) as e:
                st["failed"] += 1
                if len(errors) < 3:
                    errors.append(repr(e))
                await asyncio.sleep(0.05)
                continue
            t2 = now()
            st["ok"] += 1
            if m0 <= t2 < m1:
                st["in_window"] += 1
                lat.append(t2 - t1)
            conn.close()

    await asyncio.gather(*(loop_one() for _ in range(p["parallel"])))
    await asyncio.sleep(0.2)
    return {**st, "lat": lat, "errors": errors}


class LoginScenario:
    name = "login"
    title = "logins (connect + SCRAM-SHA-1 + bind) per second"
    headline = "logins/s"

    def supported(self, server: Server) -> str | None:
        return None

    def run(self, server: Server, params: Params) -> dict:
        users = server.accounts(params.login_users)
        slices = split(users, params.workers)
        per_worker = max(1, params.login_parallel // params.workers)
        fleet = Fleet(server.target, slices, {"parallel": per_worker}, login_worker, set(params.gen_cpus))
        try:
            ready = fleet.gather("ready", timeout=300)
            failures = sum(r["failures"] for r in ready)
            if failures:
                fleet.broadcast("go", None)
                errs = "; ".join(r["error"] for r in ready if r["error"])
                raise ScenarioError(f"{failures} of {len(users)} users could not log in ({errs})")
            t_go = time.monotonic_ns() + NS // 2
            m0 = t_go + int(params.warmup_s * NS)
            m1 = m0 + int(params.duration_s * NS)
            fleet.broadcast("go", {"m0": m0, "m1": m1})
            usage = _window_usage(server, fleet, m0, m1)
            results = fleet.finish(timeout=120)
        finally:
            fleet.close()
        lat = sorted(x for r in results for x in r["lat"])
        in_window = sum(r["in_window"] for r in results)
        rate = in_window / params.duration_s
        return {
            "value": rate,
            "logins_per_s": rate,
            "p50_ms": _percentile(lat, 0.50) / 1e6,
            "p99_ms": _percentile(lat, 0.99) / 1e6,
            "failed": sum(r["failed"] for r in results),
            "errors": [e for r in results for e in r["errors"]][:3],
            **usage,
            "parallel": per_worker * params.workers,
            "tls": server.target.tls,
        }


# =====================================================================  idle
async def idle_worker(ctx: WorkerContext) -> dict:
    p = ctx.params
    # Warm-up: a few logins so lazily loaded code paths are not counted as
    # per-connection memory.
    warm, _ = await login_many(ctx, ctx.users[:p["warm"]], 10, presence=p["presence"])
    for c in warm:
        if c:
            c.close()
    await asyncio.sleep(0.5)
    ctx.send("ready", {})
    await ctx.recv("go")
    users = ctx.users[p["warm"]:]
    t0 = time.monotonic()
    conns, failures = await login_many(ctx, users, p["concurrency"], presence=p["presence"])
    ctx.send("connected", {"ok": sum(c is not None for c in conns), "failures": failures,
                           "seconds": time.monotonic() - t0, "error": ctx.extra.get("first_error", "")})
    await ctx.recv("release")
    alive = sum(1 for c in conns if c is not None and not c.closed.done())
    for c in conns:
        if c:
            c.close()
    await asyncio.sleep(0.5)
    return {"alive_at_release": alive}


class IdleScenario:
    name = "idle"
    title = "memory per idle authenticated connection"
    headline = "KiB/conn"

    def supported(self, server: Server) -> str | None:
        return None

    def run(self, server: Server, params: Params) -> dict:
        warm_per_worker = 20
        n = params.idle_conns
        users = server.accounts(n + warm_per_worker * params.workers)
        # each worker gets its warm-up accounts first, then its share of the n
        warm = users[n:]
        main = split(users[:n], params.workers)
        slices = [warm[i * warm_per_worker:(i + 1) * warm_per_worker] + main[i] for i in range(params.workers)]
        fleet = Fleet(server.target, slices, {"warm": warm_per_worker, "presence": params.idle_presence,
                                              "concurrency": max(1, params.login_concurrency // params.workers)},
                      idle_worker, set(params.gen_cpus))
        try:
            fleet.gather("ready", timeout=120)
            time.sleep(1.0)
            pids = process_tree(server.pid)
            before = rss_kib(pids)
            fleet.broadcast("go")
            connected = fleet.gather("connected", timeout=600)
            ok = sum(c["ok"] for c in connected)
            failures = sum(c["failures"] for c in connected)
            time.sleep(params.idle_settle_s)
            pids = process_tree(server.pid)
            after = rss_kib(pids)
            fleet.broadcast("release")
            results = fleet.finish(timeout=120)
        finally:
            fleet.close()
        if failures:
            errs = "; ".join(c["error"] for c in connected if c["error"])
            raise ScenarioError(f"{failures} of {n} idle connections could not log in ({errs})")
        alive = sum(r["alive_at_release"] for r in results)
        per_conn = (after - before) / ok if ok else float("nan")
        return {
            "value": per_conn,
            "kib_per_conn": per_conn,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "connections": ok,
            "alive_at_end": alive,
            "connect_seconds": max(c["seconds"] for c in connected),
            "presence": params.idle_presence,
        }


# =====================================================================  muc
MUC_NS = "http://jabber.org/protocol/muc"


async def muc_worker(ctx: WorkerContext) -> dict:
    p = ctx.params
    loop = asyncio.get_running_loop()
    flusher = xmpp.Flusher(loop)
    conns, failures = await login_many(ctx, ctx.users, p["login_concurrency"], presence=True,
                                       flusher=flusher, raw=True)
    ctx.send("ready", {"failures": failures, "error": ctx.extra.get("first_error", "")})
    cmd = await ctx.recv("join")
    if cmd is None or failures:
        for c in conns:
            if c:
                c.close()
        return {}
    room = p["room"]
    now = time.monotonic_ns
    joined: dict[int, asyncio.Future] = {}
    nicks = [f"{room}/{u}" for u, _ in ctx.users]
    st = {"sent": 0, "received": 0, "in_window": 0, "errors": 0}
    lat = array("q")
    phase = {"m0": 0, "m1": 0}
    inflight = [0] * len(conns)
    senders: set[int] = set()
    last_rx = [0]
    body = "fan-out benchmark message"
    id_re = SEND_TIME_ID

    def send_from(i: int) -> None:
        conns[i].send(f"<message to='{room}' type='groupchat' id='{now()}'><body>{body}</body></message>".encode())  # type: ignore[union-attr]
        inflight[i] += 1
        st["sent"] += 1

    def make_handler(i: int):
        me = nicks[i].encode()

        def on_raw(name: bytes, tag: bytes, raw: bytes) -> None:
            if name == b"presence":
                if i in joined and not joined[i].done() and xmpp.attr(tag, b"from") == me:
                    if xmpp.attr(tag, b"type") == b"error":
                        joined[i].set_exception(xmpp.XMPPError(f"join refused: {raw[:300]!r}"))
                    else:
                        joined[i].set_result(None)
                return
            if name != b"message":
                return
            typ = xmpp.attr(tag, b"type")
            if typ != b"groupchat":
                if typ == b"error":
                    st["errors"] += 1
                return
            if b"<body" not in raw or b"<delay" in raw:
                return  # subject or history
            m = id_re.search(tag)
            if m is None:
                return
            t = now()
            st["received"] += 1
            last_rx[0] = t
            if phase["m0"] <= t < phase["m1"]:
                st["in_window"] += 1
                lat.append(t - int(m.group(1)))
            if i in senders and xmpp.attr(tag, b"from") == me:
                inflight[i] -= 1
                if t < phase["m1"]:
                    send_from(i)
        return on_raw

    for i, c in enumerate(conns):
        c.on_raw = make_handler(i)  # type: ignore[union-attr]

    join_lat = array("q")

    async def join(i: int) -> None:
        """Enter the room; timed from the presence sent to the occupant's own presence back (which comes
        after the others' presences, XEP-0045 §7.2.3)."""
        joined[i] = loop.create_future()
        t = now()
        conns[i].send(f"<presence to='{nicks[i]}'><x xmlns='{MUC_NS}'><history maxstanzas='0'/></x></presence>".encode())  # type: ignore[union-attr]
        await asyncio.wait_for(joined[i], 60)
        join_lat.append(now() - t)

    if cmd.get("create"):
        await join(0)
        # Accept the default configuration ("instant room", XEP-0045 §10.1.2);
        # harmless where rooms are created unlocked.
        conns[0].send(f"<iq type='set' to='{room}' id='cfg1'><query xmlns='{MUC_NS}#owner'>"  # type: ignore[union-attr]
                      "<x xmlns='jabber:x:data' type='submit'/></query></iq>".encode())
        await asyncio.sleep(0.5)
        ctx.send("joined", {"n": 1})
        cmd = await ctx.recv("join")
    sem = asyncio.Semaphore(20)

    async def join_bounded(i: int) -> None:
        async with sem:
            await join(i)

    await asyncio.gather(*(join_bounded(i) for i in range(len(conns)) if i not in joined))
    ctx.send("joined", {"n": len(conns)})
    go = await ctx.recv("go")
    phase["m0"], phase["m1"] = go["m0"], go["m1"]
    senders = set(range(go["senders"]))
    await asyncio.sleep(max(0.0, (go["t_go"] - now()) / NS))
    for _ in range(go["window"]):
        for i in senders:
            send_from(i)
    await asyncio.sleep(max(0.0, (phase["m1"] - now()) / NS))
    deadline = now() + int(go["drain_s"] * NS)
    while now() < deadline and (any(inflight[i] for i in senders) or now() - last_rx[0] < NS):
        await asyncio.sleep(0.1)
    for c in conns:
        c.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.2)
    return {**st, "lat": lat, "join_lat": join_lat}


class MucScenario:
    """One room of ``occupants`` (a :class:`Params` field), ``muc_senders`` of them sending flat out."""

    headline = "deliveries/s"

    def __init__(self, name: str, occupants: str, title: str) -> None:
        self.name = name
        self.occupants = occupants
        self.title = title

    def supported(self, server: Server) -> str | None:
        if "muc" not in server.features:
            return "not yet supported by Sakari" if server.name == "sakari" else "no MUC service configured"
        return None

    def run(self, server: Server, params: Params) -> dict:
        users = server.accounts(getattr(params, self.occupants))
        slices = split(users, params.workers)
        room = f"bench{int(time.time())}@{server.target.muc_domain}"
        per_worker_senders = max(1, params.muc_senders // params.workers)
        fleet = Fleet(server.target, slices, {"login_concurrency": max(1, params.login_concurrency // params.workers),
                                              "room": room, "senders": per_worker_senders},
                      muc_worker, set(params.gen_cpus))
        try:
            ready = fleet.gather("ready", timeout=300)
            failures = sum(r["failures"] for r in ready)
            if failures:
                fleet.broadcast("join", None)
                raise ScenarioError(f"{failures} occupants could not log in")
            fleet.send_to(0, "join", {"create": True})
            fleet.gather("joined", timeout=120, only=[0])
            fleet.broadcast("join", {"create": False})
            t_join = time.monotonic()
            fleet.gather("joined", timeout=600)
            join_s = time.monotonic() - t_join
            t_go = time.monotonic_ns() + NS // 2
            m0 = t_go + int(params.warmup_s * NS)
            m1 = m0 + int(params.duration_s * NS)
            fleet.broadcast("go", {"t_go": t_go, "m0": m0, "m1": m1, "drain_s": params.drain_s,
                                   "window": params.muc_window, "senders": per_worker_senders})
            usage = _window_usage(server, fleet, m0, m1)
            results = fleet.finish(timeout=params.drain_s + 60)
        finally:
            fleet.close()
        lat = sorted(x for r in results for x in r["lat"])
        join_lat = sorted(x for r in results for x in r["join_lat"])
        sent = sum(r["sent"] for r in results)
        received = sum(r["received"] for r in results)
        rate = sum(r["in_window"] for r in results) / params.duration_s
        return {
            "value": rate,
            "deliveries_per_s": rate,
            "p50_ms": _percentile(lat, 0.50) / 1e6,
            "p99_ms": _percentile(lat, 0.99) / 1e6,
            # every occupant but the creator enters at once (20 joins in flight per generator worker)
            "join_p50_ms": _percentile(join_lat, 0.50) / 1e6,
            "join_p99_ms": _percentile(join_lat, 0.99) / 1e6,
            "join_all_s": join_s,
            "sent": sent,
            "expected_deliveries": sent * len(users),
            "received": received,
            "lost": sent * len(users) - received,
            "errors": sum(r["errors"] for r in results),
            "occupants": len(users),
            "senders": per_worker_senders * params.workers,
            # on a shared machine the server may not get its whole core: this is what it did with what it got
            "deliveries_per_server_cpu_s": rate / usage["server_cpu"] if usage["server_cpu"] > 0 else float("nan"),
            **usage,
        }


# =====================================================================  mam
NS_MAM = "urn:xmpp:mam:2"
NS_PING = "urn:xmpp:ping"


async def mam_fill_worker(ctx: WorkerContext) -> dict:
    """Fill u1's archive: the first account of worker 0 is the archive owner
    (online, in raw mode, discarding what it receives); every other account
    sends 1:1 messages to it, in batches closed by a ping to the server so each
    sender has at most two batches unacknowledged.  The server archives each
    message on both sides, like any 1:1 chat."""
    p = ctx.params
    loop = asyncio.get_running_loop()
    flusher = xmpp.Flusher(loop)
    conns, failures = await login_many(ctx, ctx.users, 50, presence=True, flusher=flusher, raw=True)
    if failures:
        raise xmpp.XMPPError(f"{failures} fill accounts could not log in: {ctx.extra.get('first_error')}")
    owner = p["owner_jid"]
    senders = conns[1:] if ctx.index == 0 else conns
    quota = p["per_worker"]
    batch = p["batch"]
    done = loop.create_future()
    st = {"sent": 0, "acked": 0}
    body = "archived benchmark message, a sentence of typical length for a chat line."

    def send_batch(c: xmpp.Connection) -> None:
        n = min(batch, quota - st["sent"])
        if n <= 0:
            return
        base = st["sent"]
        c.send(b"".join(f"<message to='{owner}' type='chat' id='f{base + k}'><body>{body}</body></message>".encode()
                        for k in range(n)) + f"<iq type='get' id='p{n}' to='{ctx.target.domain}'><ping xmlns='{NS_PING}'/></iq>".encode())
        st["sent"] += n

    def make_handler(c: xmpp.Connection):
        def on_raw(name: bytes, tag: bytes, raw: bytes) -> None:
            if name != b"iq":
                return
            n = int((xmpp.attr(tag, b"id") or b"p0")[1:] or 0)
            st["acked"] += n
            if st["sent"] < quota:
                send_batch(c)
            elif st["acked"] >= st["sent"] and not done.done():
                done.set_result(None)
        return on_raw

    for c in senders:
        c.on_raw = make_handler(c)  # type: ignore[union-attr]
    ctx.send("ready", {})
    await ctx.recv("go")
    t0 = time.monotonic()
    for _ in range(2):
        for c in senders:
            send_batch(c)  # type: ignore[arg-type]
    if quota and senders:
        await done
    await asyncio.sleep(0.5)
    for c in conns:
        c.close()  # type: ignore[union-attr]
    return {"sent": st["sent"], "seconds": time.monotonic() - t0}


async def mam_query_worker(ctx: WorkerContext) -> dict:
    """The archive owner asks for the last page (RSM ``<before/>``) again and
    again; each query is timed from sending the iq to its result."""
    p = ctx.params
    t = ctx.target
    user, pw = ctx.users[0]
    conn = await xmpp.login(t.host, t.port, user, pw, t.domain, "mam", tls=ctx.tls_context(), presence=False)
    ctx.send("ready", {})
    await ctx.recv("go")
    loop = asyncio.get_running_loop()
    times = []
    counts = []
    state: dict = {}

    def on_stanza(el: xmpp.Element) -> None:
        if el.name == "message" and el.find("result") is not None:
            state["n"] += 1
        elif el.name == "iq" and el.get("id") == state.get("id") and not state["fut"].done():
            state["fut"].set_result(el)

    conn.on_stanza = on_stanza
    # query 0 is the cold one (first after the server started); reported apart
    for q in range(p["queries"] + 1):
        state.update(n=0, id=f"mam{q}", fut=loop.create_future())
        t1 = time.monotonic_ns()
        conn.send(f"<iq type='set' id='mam{q}'><query xmlns='{NS_MAM}' queryid='q{q}'>"
                  f"<set xmlns='http://jabber.org/protocol/rsm'><max>{p['page']}</max><before/></set>"
                  "</query></iq>".encode())
        el = await asyncio.wait_for(state["fut"], 120)
        t2 = time.monotonic_ns()
        if el.get("type") != "result":
            raise xmpp.XMPPError(f"MAM query failed: {xmpp._describe(el)}")
        times.append(t2 - t1)
        counts.append(state["n"])
    conn.close()
    return {"times": times, "counts": counts}


class MamScenario:
    """Page of 50 from a 1,000,000 message archive (XEP-0313).

    The archive is filled once per server and invocation (through the server's
    own write path: 1:1 messages to u1 with archiving on; not measured) and is
    kept in the server's data directory for the later runs.  A run then times
    ``mam_queries`` queries for the last page of ``mam_page`` messages."""

    name = "mam"
    title = "archive query: last page of 50 from one user's archive"
    headline = "ms/page"
    server_features = {"mam"}

    def supported(self, server: Server) -> str | None:
        if "mam" not in server.features:
            return "not yet supported by Sakari" if server.name == "sakari" else "no archive configured"
        return None

    def fill(self, server: Server, params: Params) -> dict:
        need = params.mam_archive - server.archive_filled  # type: ignore[attr-defined]
        if need <= 0:
            return {}
        if params.mam_fill == "direct":
            # One message through the server first: a server may make its archive storage only when it first
            # archives (Prosody's SQL tables), and the rows written directly go into that storage.
            through = self.fill_through(server, params, 1)["fill_messages"] if server.archive_filled == 0 else 0  # type: ignore[attr-defined]
            direct = self.fill_directly(server, need - through)
            direct["fill_messages"] += through
            return direct
        return self.fill_through(server, params, need)

    def fill_through(self, server: Server, params: Params, need: int) -> dict:
        """``need`` messages sent to u1 through the server by the other users, as clients send them."""
        users = server.accounts(1 + params.mam_senders)
        slices = split(users[1:], params.workers)
        slices[0].insert(0, users[0])
        per_worker = need // params.workers + 1
        owner = f"{users[0][0]}@{server.target.domain}/bench"
        fleet = Fleet(server.target, slices, {"owner_jid": owner, "per_worker": per_worker, "batch": 50},
                      mam_fill_worker, set(params.gen_cpus))
        try:
            fleet.gather("ready", timeout=120)
            t0 = time.monotonic()
            fleet.broadcast("go")
            results = fleet.finish(timeout=max(600, need / 200))
        finally:
            fleet.close()
        sent = sum(r["sent"] for r in results)
        server.archive_filled += sent  # type: ignore[attr-defined]
        return {"fill_messages": sent, "fill_seconds": time.monotonic() - t0}

    def fill_directly(self, server: Server, need: int) -> dict:
        """Rows written into the server's archive storage while it is stopped (bench/mam_fill.py); the server is
        started again, so the first query is a cold one as with a fill through the server."""
        if not getattr(server, "direct_fill", False):
            raise ScenarioError(f"{server.name}: its archive cannot be filled directly; use --mam-fill server")
        extra = set(server.extra)  # type: ignore[attr-defined]
        server.stop()  # type: ignore[attr-defined]
        t0 = time.monotonic()
        server.fill_archive(need)  # type: ignore[attr-defined]
        seconds = time.monotonic() - t0
        server.archive_filled += need  # type: ignore[attr-defined]
        server.start(extra=extra)  # type: ignore[attr-defined]
        return {"fill_messages": need, "fill_seconds": seconds, "fill": "direct"}

    def run(self, server: Server, params: Params) -> dict:
        fill = self.fill(server, params)
        users = server.accounts(1)
        fleet = Fleet(server.target, [users], {"queries": params.mam_queries, "page": params.mam_page},
                      mam_query_worker, set(params.gen_cpus))
        try:
            fleet.gather("ready", timeout=120)
            fleet.broadcast("go")
            results = fleet.finish(timeout=params.mam_queries * 130)
        finally:
            fleet.close()
        cold = results[0]["times"][0]
        times = sorted(results[0]["times"][1:])
        counts = results[0]["counts"]
        return {
            "value": _percentile(times, 0.5) / 1e6,
            "ms_per_page": _percentile(times, 0.5) / 1e6,
            "p99_ms": _percentile(times, 0.99) / 1e6,
            "max_ms": times[-1] / 1e6,
            "cold_ms": cold / 1e6,
            "page_sizes": sorted(set(counts)),
            "archive": server.archive_filled,  # type: ignore[attr-defined]
            "queries": len(times),
            **fill,
        }


SCENARIOS: dict[str, Any] = {s.name: s for s in (ChatScenario("chat"), ChatScenario("chat-many"), LoginScenario(),
                                                  IdleScenario(),
    MucScenario("muc", "muc_occupants", "group chat fan-out (deliveries/s in one room)"),
    MucScenario("muc-large", "muc_large_occupants", "a large room: joins and fan-out"),
    MamScenario(), ComponentScenario(), S2SScenario())}
DEFAULT_SCENARIOS = ["chat", "chat-many", "login", "idle", "muc", "muc-large", "mam"]


from bench.pep import PepScenario  # noqa: E402  (it reads this module's helpers when it runs)

SCENARIOS[PepScenario.name] = PepScenario()
