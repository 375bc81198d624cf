"""The hostile-client check: while legitimate slixmpp clients chat, hostile ones run against the same server at once:
thousands of half-open connections, XML bombs (billion laughs, entity declarations), deep nesting, invalid UTF-8,
oversized stanzas, a stanza flood from one account and password guessing from another address. The legitimate
clients must lose no message, their round trips must stay within STORM_BOUND while the half-open connections
pour in and within ATTACK_BOUND while all of them are held and the other attacks run, and the server must stay
up and answer.

The attackers are processes of their own (hostile_clients.py), so their work does not slow the event loop that
measures the legitimate clients' latency. The server runs with the default abuse limits and loopback not exempt
from them (limits.exempt_networks = []): the half-open connections come from many loopback addresses
(127.1.x.y, 25 each, below the default per-address burst), the way a botnet's would, and the per-address limits
hold for everyone, the legitimate clients on 127.0.0.1 included. c2s.auth_timeout is raised to 300 s so that the
server must hold every half-open connection for the whole test instead of shedding them after 30 s.

Besides the legitimate clients' messages and latency, the test checks that each attack got its defence: the
right stream error for every malformed stream, temporary-auth-failure for the guesser and never a success,
and the flood taken in at the account's stanza rate although it first spent its byte burst on whitespace (the
victim gets one to two thousand of its messages, not tens of thousands). Measured on a 2-core machine: 10,000
half-open connections opened in 5 to 10 s and held; round trips with a median of about 10 ms, at most 0.4 to
1.5 s while the connections pour in, and while they are held and the other attacks run seldom above 0.1 s
(once 0.7 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from sakari.net.throttle import STANZA_BURST, STANZA_RATE
from sakari_process import HOST, REPO_ROOT, _sakari_env
from xmpp_harness import is_message, login

pytestmark = pytest.mark.asyncio

HERE = Path(__file__).resolve().parent
#: What the issue asks for; fewer when the hard limit on open files of the test or the server is lower.
HALF_OPEN_WANTED = 10_000
#: A legitimate round trip (alice → bob → alice through the server) must stay within these: while the server
#: accepts the half-open connections as fast as the attacker opens them, and then while it holds them all and
#: the other attacks run.
STORM_BOUND = 3.0
ATTACK_BOUND = 1.5
ATTACK_SECONDS = 40
FLOOD_STANZA_SIZE = 60  # bytes, about, of the flood's messages (hostile_clients.flood)

CONFIG = """
[limits]
exempt_networks = []

[c2s]
auth_timeout = 300
"""


def half_open_target() -> int:
    # Both ends of a loopback connection are files: the attacker holds one, the server the other, each
    # process under the same hard limit. Leave room for the server's own files and the legitimate clients.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return HALF_OPEN_WANTED
    return max(0, min(HALF_OPEN_WANTED, hard - 500))


def attacker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "hostile_clients.py"), *args],
        cwd=HERE,
        env={**_sakari_env(), "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO_ROOT)])},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


async def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
    if not line:
        raise AssertionError(f"attacker exited ({proc.poll()}): {proc.stderr.read() if proc.stderr else ''}")
    return line.strip()


async def ask(proc: subprocess.Popen, command: str) -> str:
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return await read_line(proc, 60)


class Chat:
    """Alice and Bob chat: numbered messages both ways, each answered, every round trip timed."""

    def __init__(self, alice, bob) -> None:
        self.alice, self.bob = alice, bob
        self.round_trips: list[float] = []
        self.phase = "quiet"
        self.by_phase: dict[str, list[float]] = {}
        self.sent = 0
        self.t0 = time.monotonic()
        self.slow: list[tuple[float, float]] = []  # (seconds into the test, round trip) of the slow ones

    async def round(self) -> None:
        n = self.sent
        self.sent += 1
        started = time.monotonic()
        self.alice.message(self.bob.jid, f"ping {n}")
        await self.bob.expect(is_message(body=f"ping {n}", sender=self.alice.jid), timeout=30)
        self.bob.message(self.alice.jid, f"pong {n}")
        await self.alice.expect(is_message(body=f"pong {n}", sender=self.bob.jid), timeout=30)
        self.round_trips.append(time.monotonic() - started)
        self.by_phase.setdefault(self.phase, []).append(self.round_trips[-1])
        if self.round_trips[-1] > 0.3:
            self.slow.append((round(started - self.t0, 1), round(self.round_trips[-1], 2)))

    async def until(self, done: asyncio.Future | float) -> None:
        while not (done.done() if isinstance(done, asyncio.Future) else time.monotonic() >= done):
            await self.round()
            await asyncio.sleep(0.05)

    def bodies_received(self, client, prefix: str) -> list[str]:
        return [
            body for el in client.inbox.history
            if (body := el.findtext("{jabber:client}body")) is not None and body.startswith(prefix)
        ]


async def health(server) -> bool:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{HOST}:{server.http_port}/health", timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status == 200


async def test_legitimate_clients_keep_chatting_while_hostile_clients_attack(spawn_server, session_for):
    with spawn_server("hostile", CONFIG, accounts=8) as server:
        session = session_for(server)
        alice = await session.login(label="alice")
        bob = await session.login(label="bob")
        chat = Chat(alice, bob)
        for _ in range(5):
            await chat.round()
        quiet = statistics.median(chat.round_trips)

        target = half_open_target()
        halfopen = attacker("halfopen", str(server.c2s_port), str(server.c2s_tls_port), str(target))
        victim, flooder, bomber = server.new_account(), server.new_account(), server.new_account()
        accounts = {name: {"jid": a.jid, "password": a.password} for name, a in
                    (("victim", victim), ("flooder", flooder), ("bomber", bomber))}
        try:
            # The victim of the flood and of the guessing is online from 127.0.0.1, its usual address.
            victim_client = await session.login(victim, label="victim")
            opening = asyncio.ensure_future(read_line(halfopen, 300))
            chat.phase = "storm"
            await chat.until(opening)  # chat while the connections pile up
            opened_line = opening.result()
            print(f"\nopened after {time.monotonic() - chat.t0:.1f} s")
            opened = int(opened_line.split()[1])
            print(f"\nhalf-open: {opened_line} (target {target})")

            attack_started = time.monotonic()
            attack = attacker("attack", str(server.c2s_port), str(ATTACK_SECONDS), json.dumps(accounts))
            try:
                summary_line = asyncio.ensure_future(read_line(attack, ATTACK_SECONDS + 120))
                chat.phase = "attack"
                await chat.until(summary_line)
                summary = json.loads(summary_line.result())
            finally:
                if attack.poll() is None:
                    attack.kill()
                attack.wait()

            chat.phase = "after"
            # While all of it is held: the victim's owner logs in anew, despite the guessing at the account.
            again = await login(server, victim, resource="again")
            await again.ping_server()
            await again.close()
            assert await health(server)
            alive = int((await ask(halfopen, "count")).split()[1])
            await victim_client.ping_server()
            spam = sum(1 for el in victim_client.inbox.history if (el.findtext("{jabber:client}body") or "").startswith("spam "))
            flood_seconds = time.monotonic() - attack_started
            print(f"spam received by the victim: {spam} in {flood_seconds:.0f} s")
        finally:
            if halfopen.poll() is None:
                try:
                    await ask(halfopen, "close")
                except (AssertionError, asyncio.TimeoutError, BrokenPipeError):
                    pass
            try:
                halfopen.wait(30)
            except subprocess.TimeoutExpired:
                halfopen.kill()
                halfopen.wait()

        # After the attackers have gone: still chatting, nothing lost, nothing reordered.
        for _ in range(5):
            await chat.round()
        rounds = len(chat.round_trips)
        assert chat.bodies_received(bob, "ping ") == [f"ping {i}" for i in range(rounds)]
        assert chat.bodies_received(alice, "pong ") == [f"pong {i}" for i in range(rounds)]
        assert server.running, "the server died"

        worst = max(chat.round_trips)
        print(
            f"round trips: {rounds}, quiet median {quiet * 1000:.0f} ms, under attack median "
            f"{statistics.median(chat.round_trips) * 1000:.0f} ms, p95 "
            f"{sorted(chat.round_trips)[int(rounds * 0.95) - 1] * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        )
        print("attacks:", json.dumps(summary["outcomes"]))
        print("slow round trips (s into the test, s):", chat.slow)
        for phase, times in chat.by_phase.items():
            print(f"  {phase}: {len(times)} round trips, median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
        storm, attack = max(chat.by_phase.get("storm", [0.0])), max(chat.by_phase["attack"])
        assert storm < STORM_BOUND, f"a round trip took {storm:.2f} s while the half-open connections came"
        assert attack < ATTACK_BOUND, f"a round trip took {attack:.2f} s under the sustained attack"
        assert worst < STORM_BOUND
        assert opened >= min(target, HALF_OPEN_WANTED) * 0.99, f"only {opened} of {target} half-open connections opened"
        assert alive == opened, f"the server dropped {opened - alive} half-open connections before their auth timeout"
        assert not summary["errors"], summary["errors"]
        assert not summary["unexpected"], summary["unexpected"]
        for name in ("billion-laughs-dtd", "entity-declaration-in-stream", "deep-nesting", "invalid-utf8",
                     "oversized-stanza", "deep-nesting-after-login", "oversized-after-login",
                     "invalid-utf8-after-login", "entity-after-login"):
            assert sum(summary["outcomes"][name].values()) >= 1, f"attack {name} never ran"
        guesses = summary["outcomes"]["password-guessing"]
        assert guesses["temporary-auth-failure"] > 0 and "success" not in guesses, guesses
        # The flood was shaped: the account's stanzas (half of them to the victim) were taken in at
        # limits.stanza_rate after limits.stanza_burst, give or take what one read brings: the shaper pauses reading
        # after a read, so the stanzas of a read already taken in pass (a TLS read is up to 256 KiB, thousands of
        # these small stanzas; the account then waits the excess off). Unshaped, tens of thousands came.
        per_read = 2 * 256 * 1024 // FLOOD_STANZA_SIZE  # a read, and what TLS had decrypted beyond it
        shaped = STANZA_BURST.default + STANZA_RATE.default * flood_seconds + per_read
        assert 0 < spam <= shaped / 2, (spam, shaped, summary["outcomes"]["flood"])
