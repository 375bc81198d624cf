"""Soak: one Sakari with its default modules under a bounded mixed load, its memory and open fds sampled.

    python -m bench.soak                    # 30 minutes
    python -m bench.soak --minutes 15 --out bench/results/soak

The server runs as a child process on ports the kernel picks (never the bench's fixed 15222/16222/17222), in a
temporary directory, so it needs no bench lock and runs beside anything. One asyncio load generator in this
process (the bench's raw client, bench/xmpp.py) keeps up a mix of what a small community does all day:

- residents, online for the whole run with stream management (resumption on) and carbons: 1:1 chat with each
  other, presence changes, roster sets and removals (each a roster push), messages in a few rooms, archive
  queries; now and then one drops its connection without closing it, and half of those resume the hibernated
  session while the other half log in afresh and leave the old one to time out;
- churners, logging in and out all the time: presence, a message to a resident, sometimes a room visit, a
  roster fetch or an archive query; then a clean close, or a dropped connection with a hibernated session
  (``smacks.resume_timeout`` is 60 s here instead of 600 s, so hibernated sessions reach their steady number
  within the warm-up), or a dropped connection without stream management.

Every 10 s it samples the server's RSS and open fds (bench/procstat.py, /proc/PID/fd). The first 20 % of the
run is warm-up (caches, the archive's first pages, hibernated sessions filling up to their steady number);
the growth reported is from the end of the warm-up to the end, with the least-squares slope of the samples
after the warm-up, which one noisy last sample does not swing. Results: ``results.md`` (table) and
``results.json`` (every sample) in ``--out``. Nothing is asserted: this reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstat, xmpp
from bench.loadgen import raise_nofile_limit

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "localhost"
MUC = f"conference.{DOMAIN}"
NS_MAM = "urn:xmpp:mam:2"
NS_ROSTER = "jabber:iq:roster"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"


def traced_server(argv: list[str]) -> int:
    """``--diagnose``: Sakari under tracemalloc; each SIGUSR1 writes the live objects by type and the allocation
    sites that grew since the previous signal into ``diagnose-N.txt`` in the working directory."""
    import collections
    import gc
    import tracemalloc

    from sakari.cli import main as sakari_main

    tracemalloc.start(8)
    state: dict[str, object] = {"n": 0, "snapshot": None, "types": None}

    def dump(signum: int, frame: object) -> None:
        if state.get("busy"):
            return  # a signal while a dump runs (seconds, on a loaded machine) would nest inside it
        state["busy"] = True
        try:
            write_dump()
        finally:
            state["busy"] = False

    def write_dump() -> None:
        gc.collect()
        n = int(state["n"]) + 1  # type: ignore[call-overload]
        state["n"] = n
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        lines = [f"# diagnose {n}: traced {tracemalloc.get_traced_memory()[0] // 1024} KiB, "
                 f"{len(gc.get_objects())} gc objects"]
        before_types = state["types"]
        if isinstance(before_types, collections.Counter):
            grown = sorted(((types[k] - before_types.get(k, 0), k) for k in types), reverse=True)[:30]
            lines += ["", "## object types that grew since the last dump", *(f"{d:+8d} {k}" for d, k in grown if d)]
        before = state["snapshot"]
        if isinstance(before, tracemalloc.Snapshot):
            lines += ["", "## allocation sites that grew since the last dump"]
            for stat in snapshot.compare_to(before, "traceback")[:25]:
                lines.append(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+7d} blocks")
                lines += [f"        {line}" for line in stat.traceback.format()[-6:]]
        else:
            lines += ["", "## largest allocation sites"]
            lines += [str(stat) for stat in snapshot.statistics("lineno")[:25]]
        Path(f"diagnose-{n}.txt").write_text("\n".join(lines) + "\n")
        state["snapshot"], state["types"] = snapshot, types

    signal.signal(signal.SIGUSR1, dump)
    return sakari_main(argv)


def free_port() -> int:
    """A port nobody listens on now, from the kernel's ephemeral range."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def password(user: str) -> str:
    return f"pw-{user}-soak"


@dataclass
class Counters:
    logins: int = 0
    clean_closes: int = 0
    drops_hibernated: int = 0
    drops_plain: int = 0
    resumed: int = 0
    resume_failed: int = 0
    chats: int = 0
    groupchats: int = 0
    presences: int = 0
    roster_sets: int = 0
    mam_queries: int = 0
    iq_errors: int = 0
    iq_timeouts: int = 0
    client_errors: int = 0
    received: int = 0
    errors: list[str] = field(default_factory=list)
    iq_error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.client_errors += 1
        if len(self.errors) < 50:
            self.errors.append(what[:300])


class Client:
    """A logged-in account read with expat (archive results and carbons nest a message in a message, which the
    raw scanner cannot split); answers the server's iqs and ack requests and matches replies to its own iqs."""

    def __init__(self, conn: xmpp.Connection, stats: Counters, resumes: Client | None = None) -> None:
        self.conn = conn
        self.stats = stats
        self.pending: dict[str, asyncio.Future] = {}
        self.sm_id = ""
        self.sm_on = False
        self.handled = 0
        self.enabled: asyncio.Future = asyncio.get_running_loop().create_future()
        self.next_id = 0
        self.kind = "fresh"  # how the session began (fresh, resumed): named with what went wrong on it
        if resumes is not None:
            # Before the queue below is read: what the server sends again after <resumed/> counts, and the <r/>
            # behind it must be answered with the count carried over (an h of 0 ends the stream).
            self.sm_on, self.sm_id, self.handled, self.kind = True, resumes.sm_id, resumes.handled, "resumed"
            self.enabled.set_result(True)
        queued, conn._queue = conn._queue, []
        conn.on_stanza = self.on_stanza
        for el in queued:
            self.on_stanza(el)

    def on_stanza(self, el: xmpp.Element) -> None:
        name = el.name
        if name in ("message", "presence", "iq"):
            self.stats.received += 1
            if self.sm_on:
                self.handled += 1
        if name == "iq":
            kind = el.get("type")
            if kind in ("result", "error"):
                fut = self.pending.pop(el.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(el)
            elif kind in ("get", "set"):  # roster pushes, pings: a client answers them
                self.send(f"<iq type='result' id='{xmpp.xml_escape(el.get('id'))}'/>")
        elif name == "r":
            self.send(f"<a xmlns='{xmpp.NS_SM}' h='{self.handled & 0xFFFFFFFF}'/>")
        elif name == "error":  # the server ends this stream: say why (the load goes on with the next login)
            self.stats.error(f"{self.kind} session: stream error " + " ".join(c.name for c in el.children))
        elif name in ("enabled", "failed") and not self.enabled.done():
            if name == "enabled":
                self.sm_on = True
                self.sm_id = el.get("id")
            self.enabled.set_result(name == "enabled")

    def send(self, data: str) -> None:
        t = self.conn.transport
        if t is not None and not t.is_closing():
            t.write(data.encode())

    async def iq(self, kind: str, payload: str, to: str = "") -> xmpp.Element | None:
        self.next_id += 1
        ident = f"q{self.next_id}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[ident] = fut
        to_attr = f" to='{to}'" if to else ""
        self.send(f"<iq type='{kind}' id='{ident}'{to_attr}>{payload}</iq>")
        try:
            async with asyncio.timeout(30):
                el = await fut
        except TimeoutError:
            self.pending.pop(ident, None)
            self.stats.iq_timeouts += 1
            what = f"{payload[:40]} ({self.kind} session) -> no answer in 30 s"
            self.stats.iq_error_kinds[what] = self.stats.iq_error_kinds.get(what, 0) + 1
            return None
        if el.get("type") == "error":
            self.stats.iq_errors += 1
            err = el.find("error")
            what = f"{payload[:40]} -> {err.children[0].name if err is not None and err.children else '?'}"
            self.stats.iq_error_kinds[what] = self.stats.iq_error_kinds.get(what, 0) + 1
        return el

    async def enable_sm(self) -> bool:
        self.send(f"<enable xmlns='{xmpp.NS_SM}' resume='true'/>")
        async with asyncio.timeout(30):
            return await self.enabled

    def close(self) -> None:
        self.conn.close()

    def drop(self) -> None:
        """Gone without a word, as a phone losing its network."""
        if self.conn.transport is not None:
            self.conn.transport.abort()


async def login(port: int, user: str, resource: str, stats: Counters, sm: bool = False,
                carbons: bool = False) -> Client:
    conn = await xmpp.login("127.0.0.1", port, user, password(user), DOMAIN, resource, carbons=carbons)
    stats.logins += 1
    client = Client(conn, stats)
    if sm and not await client.enable_sm():
        stats.error(f"{user}: stream management refused")
    return client


async def resume(port: int, user: str, old: Client, stats: Counters) -> Client | None:
    """XEP-0198 resumption of a dropped session: authenticate, then <resume/> instead of binding."""
    conn = await xmpp.connect("127.0.0.1", port, DOMAIN)
    try:
        async with asyncio.timeout(30):
            features = await conn.open_stream()
            await conn.auth_scram_sha1(features, user, password(user))
            await conn.open_stream()
            conn.transport.write(  # type: ignore[union-attr]
                f"<resume xmlns='{xmpp.NS_SM}' h='{old.handled & 0xFFFFFFFF}' previd='{old.sm_id}'/>".encode())
            el = await conn.next_element()
    except BaseException:
        if conn.transport is not None:
            conn.transport.abort()
        raise
    if el.name != "resumed":
        stats.resume_failed += 1
        conn.close()
        return None
    stats.resumed += 1
    return Client(conn, stats, resumes=old)


def chat(to: str, text: str) -> str:
    return f"<message type='chat' to='{to}@{DOMAIN}'><body>{text}</body></message>"


MAM_QUERY = (f"<query xmlns='{NS_MAM}'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>"
             "</query>")


class Load:
    def __init__(self, port: int, residents: list[str], churners: list[str], rooms: list[str], deadline: float,
                 rate: float) -> None:
        self.port = port
        self.residents = residents
        self.churners = churners
        self.rooms = rooms
        self.deadline = deadline
        self.rate = rate  # scales every pause: 2.0 is twice the load
        self.stats = Counters()

    def pause(self, mean: float) -> float:
        return random.expovariate(self.rate / mean)

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def join(self, client: Client, room: str, nick: str, configure: bool) -> None:
        client.send(f"<presence to='{room}@{MUC}/{nick}'><x xmlns='{xmpp.NS_MUC}'>"
                    "<history maxstanzas='0'/></x></presence>")
        if configure:  # a new room stays locked until its owner accepts the default configuration
            await client.iq("set", f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>",
                            to=f"{room}@{MUC}")

    async def resident(self, index: int) -> None:
        user = self.residents[index]
        room = self.rooms[index % len(self.rooms)]
        generation = 0
        client = await login(self.port, user, f"home{generation}", self.stats, sm=True, carbons=True)
        await self.join(client, room, user, configure=index < len(self.rooms))
        client.send("<presence/>")
        next_drop = time.monotonic() + random.uniform(60, 240) / self.rate
        while self.running():
            await asyncio.sleep(self.pause(1.0))
            try:
                if client.conn.closed.done():  # the server ended the stream (counted in client errors): back in
                    generation += 1
                    client = await login(self.port, user, f"home{generation}", self.stats, sm=True, carbons=True)
                    await self.join(client, room, user, configure=False)
                    client.send("<presence/>")
                roll = random.random()
                if roll < 0.55:
                    client.send(chat(random.choice(self.residents), f"hello {self.stats.chats}"))
                    self.stats.chats += 1
                elif roll < 0.75:
                    client.send(f"<message type='groupchat' to='{room}@{MUC}'><body>news {self.stats.groupchats}"
                                "</body></message>")
                    self.stats.groupchats += 1
                elif roll < 0.87:
                    show = random.choice(["", "<show>away</show>", "<show>chat</show>", "<show>dnd</show>"])
                    client.send(f"<presence>{show}<status>s{random.randrange(100)}</status></presence>")
                    self.stats.presences += 1
                elif roll < 0.95:
                    contact = random.choice([c for c in self.residents + self.churners if c != user])
                    if random.random() < 0.5:
                        item = f"<item jid='{contact}@{DOMAIN}' name='{contact}'><group>soak</group></item>"
                    else:
                        item = f"<item jid='{contact}@{DOMAIN}' subscription='remove'/>"
                    await client.iq("set", f"<query xmlns='{NS_ROSTER}'>{item}</query>")
                    self.stats.roster_sets += 1
                else:
                    await client.iq("set", MAM_QUERY)
                    self.stats.mam_queries += 1
                if time.monotonic() > next_drop and self.running():
                    next_drop = time.monotonic() + random.uniform(60, 240) / self.rate
                    client.drop()
                    self.stats.drops_hibernated += 1
                    await asyncio.sleep(random.uniform(1, 10))
                    new = await resume(self.port, user, client, self.stats) if generation % 2 == 0 else None
                    generation += 1
                    if new is None:  # a fresh login; the old session waits out its resumption timeout
                        new = await login(self.port, user, f"home{generation}", self.stats, sm=True, carbons=True)
                        new.kind = "fresh, beside a hibernated one"
                        await self.join(new, room, user, configure=False)
                        new.send("<presence/>")
                    client = new
            except Exception as e:  # noqa: BLE001 - a soak keeps going and counts what went wrong
                self.stats.error(f"resident {user}: {e!r}")
                client.drop()
                await asyncio.sleep(1)
                try:
                    generation += 1
                    client = await login(self.port, user, f"home{generation}", self.stats, sm=True, carbons=True)
                except Exception as e2:  # noqa: BLE001
                    self.stats.error(f"resident {user} relogin: {e2!r}")
        client.close()

    async def churner(self, worker: int) -> None:
        n = 0
        while self.running():
            user = random.choice(self.churners)
            n += 1
            try:
                ending = random.random()
                client = await login(self.port, user, f"c{worker}-{n}", self.stats, sm=ending < 0.25)
                client.kind = "churning, stream management" if ending < 0.25 else "churning"
                client.send("<presence/>")
                client.send(chat(random.choice(self.residents), "hi"))
                self.stats.chats += 1
                if random.random() < 0.3:
                    await client.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
                if random.random() < 0.3:
                    await client.iq("set", MAM_QUERY)
                    self.stats.mam_queries += 1
                if random.random() < 0.2:
                    room = random.choice(self.rooms)
                    await self.join(client, room, f"{user}-{worker}-{n}", configure=False)
                    await asyncio.sleep(self.pause(2.0))
                    client.send(f"<message type='groupchat' to='{room}@{MUC}'><body>visit</body></message>")
                    self.stats.groupchats += 1
                await asyncio.sleep(self.pause(2.0))
                if ending < 0.25:
                    client.drop()
                    self.stats.drops_hibernated += 1
                elif ending < 0.4:
                    client.drop()
                    self.stats.drops_plain += 1
                else:
                    client.close()
                    self.stats.clean_closes += 1
            except Exception as e:  # noqa: BLE001
                self.stats.error(f"churner {user}: {e!r}")
            await asyncio.sleep(self.pause(1.0))


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int
    cpu_s: float
    logins: int
    chats: int


def count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per minute."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return 60 * sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def write_config(workdir: Path, port: int) -> Path:
    """Sakari's default modules; only what a load from one loopback address needs is relaxed, and no listener
    but c2s, on a port the kernel chose."""
    path = workdir / "sakari.toml"
    path.write_text("\n".join([
        "[c2s]", "require_encryption = false", "",
        "[limits]", "c2s_rate_bytes = 0", "c2s_rate_burst = 0", 'exempt_networks = ["127.0.0.0/8", "::1"]', "",
        "[network]", f"c2s_port = {port}", "c2s_tls_port = 0", "http_port = 0", "https_port = 0", "s2s_port = 0", "",
        "[s2s]", "enabled = false", "",
        "[proxy65]", "port = 0", "",
        "[smacks]", "resume_timeout = 60", "",
    ]))
    return path


async def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sakari exited with {proc.returncode} before listening")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise SystemExit("sakari did not listen in time")


async def soak(args: argparse.Namespace) -> dict:
    raise_nofile_limit()
    duration = args.minutes * 60
    # The code the server runs is the working tree's at its start: name that commit, and say if it differs.
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "sakari"],
                           capture_output=True, text=True).stdout.strip()
    args.sakari_version = f"git {rev}" + (" with uncommitted changes in sakari/" if dirty else "")
    with tempfile.TemporaryDirectory(prefix="sakari-soak-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        data.mkdir()
        port = free_port()
        config = write_config(workdir, port)
        residents = [f"r{i}" for i in range(1, args.residents + 1)]
        churners = [f"c{i}" for i in range(1, args.churners + 1)]
        rooms = [f"room{i}" for i in range(1, args.rooms + 1)]
        (workdir / "users.txt").write_text("".join(f"{u}@{DOMAIN} {password(u)}\n" for u in residents + churners))
        base = [sys.executable, "-m", "sakari"]
        r = subprocess.run([*base, "user", "add", "--from-file", str(workdir / "users.txt"), "--config", str(config),
                            "--data-dir", str(data), "--domain", DOMAIN], capture_output=True, text=True, cwd=workdir)
        if r.returncode != 0:
            raise SystemExit(f"sakari user add failed: {r.stderr[-2000:]}")
        log_path = workdir / "server.log"
        serve = [sys.executable, "-m", "bench.soak", "--traced-server", "--"] if args.diagnose else base
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([*serve, "serve", "--config", str(config), "--data-dir", str(data),
                                     "--domain", DOMAIN, "--bind", "127.0.0.1", "--c2s-port", str(port),
                                     "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                    start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            await wait_listening(port, proc)
            load = Load(port, residents, churners, rooms, time.monotonic() + duration, args.rate)
            print(f"soak: sakari pid {proc.pid} on port {port}, {args.minutes} min", file=sys.stderr, flush=True)
            tasks = [asyncio.create_task(load.resident(i)) for i in range(len(residents))]
            tasks += [asyncio.create_task(load.churner(w)) for w in range(args.churn_workers)]
            samples: list[Sample] = []
            t0 = time.monotonic()
            dumped = False
            while True:
                now = time.monotonic() - t0
                if args.diagnose and not dumped and now >= 0.2 * duration:
                    proc.send_signal(signal.SIGUSR1)  # the first snapshot: the end of the warm-up
                    dumped = True
                pids = procstat.process_tree(proc.pid)
                samples.append(Sample(round(now, 1), procstat.rss_kib(pids), count_fds(proc.pid),
                                      round(procstat.cpu_seconds(pids), 2), load.stats.logins, load.stats.chats))
                s = samples[-1]
                print(f"soak: {s.t:7.0f} s  rss {s.rss_kib} KiB  fds {s.fds}  logins {s.logins}  chats {s.chats}  "
                      f"errors {load.stats.client_errors}", file=sys.stderr, flush=True)
                if now >= duration or proc.poll() is not None:
                    if args.diagnose and proc.poll() is None:
                        proc.send_signal(signal.SIGUSR1)  # the second: what grew after the warm-up
                        await asyncio.sleep(30)
                    break
                await asyncio.sleep(min(args.interval, duration - now + 0.01))
            done, pending = await asyncio.wait(tasks, timeout=60)
            for t in pending:
                t.cancel()
            for t in done:
                if t.exception() is not None:
                    load.stats.error(f"task: {t.exception()!r}")
            alive = proc.poll() is None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        log_text = log_path.read_text(errors="replace")
        if args.diagnose:
            args.out.mkdir(parents=True, exist_ok=True)
            for dump in sorted(workdir.glob("diagnose-*.txt")):
                (args.out / dump.name).write_text(dump.read_text())
    return summarize(args, samples, load.stats, alive, log_text)


def summarize(args: argparse.Namespace, samples: list[Sample], stats: Counters, alive: bool, log_text: str) -> dict:
    duration = args.minutes * 60
    warm = next((s for s in samples if s.t >= 0.2 * duration), samples[-1])
    after = [s for s in samples if s.t >= warm.t]
    end = samples[-1]
    peak_after = max(s.rss_kib for s in after)
    stats_dict = {k: v for k, v in vars(stats).items() if k not in ("errors", "iq_error_kinds")}
    return {
        "params": {"minutes": args.minutes, "residents": args.residents, "churners": args.churners,
                   "churn_workers": args.churn_workers, "rooms": args.rooms, "rate": args.rate,
                   "interval_s": args.interval, "warmup_fraction": 0.2},
        "sakari": args.sakari_version, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "warmup_end": {"t": warm.t, "rss_kib": warm.rss_kib, "fds": warm.fds},
        "end": {"t": end.t, "rss_kib": end.rss_kib, "fds": end.fds},
        "growth_after_warmup": {
            "rss_kib": end.rss_kib - warm.rss_kib, "rss_peak_kib": peak_after - warm.rss_kib,
            "fds": end.fds - warm.fds,
            "rss_slope_kib_per_min": round(slope_per_min([(s.t, s.rss_kib) for s in after]), 1),
            "fds_slope_per_min": round(slope_per_min([(s.t, s.fds) for s in after]), 2),
        },
        "server_alive_at_end": alive,
        "server_log": {"tracebacks": log_text.count("Traceback"),
                       # lines "date time LEVEL logger ...": those at ERROR or above
                       "error_lines": sum(1 for line in log_text.splitlines()
                                          if line.split(" ", 3)[2:3] in (["ERROR"], ["CRITICAL"])),
                       "tail": log_text[-3000:]},
        "load": stats_dict, "client_errors_first": stats.errors, "iq_error_kinds": stats.iq_error_kinds,
        "samples": [vars(s) for s in samples],
    }


def write_results(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    g, w, e, p, load = (result["growth_after_warmup"], result["warmup_end"], result["end"], result["params"],
                        result["load"])
    lines = [
        "# Soak: Sakari under a bounded mixed load",
        "",
        f"Sakari {result['sakari']}, default modules, {p['minutes']} minutes, {p['residents']} residents, "
        f"{p['churners']} churning accounts ({p['churn_workers']} at a time), {p['rooms']} rooms "
        f"(`python -m bench.soak --minutes {p['minutes']}`; what the load is: bench/README.md). "
        f"Samples every {p['interval_s']:g} s; the first {p['warmup_fraction']:.0%} is warm-up.",
        "",
        "| | end of warm-up | end | growth | slope after warm-up |",
        "|---|---|---|---|---|",
        f"| time, s | {w['t']:.0f} | {e['t']:.0f} | | |",
        f"| RSS, KiB | {w['rss_kib']:,} | {e['rss_kib']:,} | {g['rss_kib']:+,} (peak {g['rss_peak_kib']:+,}) "
        f"| {g['rss_slope_kib_per_min']:+,.1f} KiB/min |",
        f"| open fds | {w['fds']} | {e['fds']} | {g['fds']:+d} | {g['fds_slope_per_min']:+.2f}/min |",
        "",
        "Load: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in load.items()) + ".",
        "",
        "Requests answered with an error or not at all (the roster removals of contacts not on the roster are "
        "item-not-found by design): " + (", ".join(f"`{k}` {v:,}" for k, v in result["iq_error_kinds"].items())
                                          or "none") + ".",
        "",
        f"Server alive at the end: {'yes' if result['server_alive_at_end'] else 'NO'}; tracebacks in its log: "
        f"{result['server_log']['tracebacks']}, lines at ERROR: {result['server_log']['error_lines']}.",
        "",
        "| t, s | RSS, KiB | fds | server CPU, s | logins | chats |",
        "|---|---|---|---|---|---|",
        *(f"| {s['t']:.0f} | {s['rss_kib']:,} | {s['fds']} | {s['cpu_s']:.1f} | {s['logins']:,} | {s['chats']:,} |"
          for s in result["samples"][::max(1, len(result["samples"]) // 40)]),
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines[:12]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--residents", type=int, default=20, help="accounts online all the time")
    ap.add_argument("--churners", type=int, default=30, help="accounts that log in and out")
    ap.add_argument("--churn-workers", type=int, default=6, help="churning logins in flight at a time")
    ap.add_argument("--rooms", type=int, default=3)
    ap.add_argument("--rate", type=float, default=1.0, help="load factor: 2 halves every pause")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak")
    ap.add_argument("--diagnose", action="store_true",
                    help="run Sakari under tracemalloc and write what grew after the warm-up (object types, "
                         "allocation sites) to diagnose-*.txt in --out; slows the server")
    if sys.argv[1:2] == ["--traced-server"]:
        sys.exit(traced_server(sys.argv[3:]))
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    write_results(asyncio.run(soak(args)), args.out)


if __name__ == "__main__":
    main()
