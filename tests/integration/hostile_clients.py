"""Hostile clients, run as their own processes by test_hostile_clients.py, so that their work does not share an
event loop (or a limit on open files) with the legitimate clients whose latency the test measures.

    python hostile_clients.py halfopen PORT TLS_PORT COUNT
        Opens COUNT connections that never finish a stream header (or, on the direct TLS port, never start the
        TLS handshake), spread over many loopback addresses (127.1.x.y) like a botnet, so that the per-address
        limits stay at their defaults and what is measured is the server holding them all. Raises its own limit
        on open files first. Prints "opened N failed M", then answers "count" on standard input with
        "alive K" (connections the server still holds open) until "close" or end of input.

    python hostile_clients.py attack PORT SECONDS ACCOUNTS_JSON
        For SECONDS, at once: XML bombs (billion laughs, entity declarations), deep nesting, invalid UTF-8 and
        oversized stanzas, before and after logging in; a stanza flood from one logged-in account; password
        guessing at the victim's account from 127.0.0.2. Prints one JSON summary line at the end.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import sys
import time
from typing import Any

from raw_xmpp import RawStream, stream_error_in
from sakari_process import Account, HOST
from xmpp_harness import NS_SASL, NS_STREAM, STREAM_HEADER, q, stream_error_condition

PARTIAL_HEADER = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/str"
PER_ADDRESS = 25  # below the default burst of new connections (30) and concurrent ones (100) per address

BILLION_LAUGHS = (
    "<!DOCTYPE stream:stream ["
    "<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{('&lol' + str(i - 1) + ';') * 10 if i > 1 else '&lol;' * 10}'>" for i in range(1, 10))
    + "]>"
)
ENTITY_IN_STREAM = "<!ENTITY x 'y'><message to='nobody@localhost'><body>&x;</body></message>"
DEEP = "<message to='nobody@localhost'>" + "<x>" * 20000
INVALID_UTF8 = b"<message to='nobody@localhost' type='chat'><body>\xff\xfe\xc3\x28\xed\xa0\x80</body></message>"
OVERSIZED = "<message to='nobody@localhost' type='chat'><body>" + "A" * (1024 * 1024) + "</body></message>"

# attack name -> (prolog before the stream header, bytes after it, stream errors that are a right answer)
PRE_AUTH: dict[str, tuple[str, str | bytes, set[str]]] = {
    "billion-laughs-dtd": (BILLION_LAUGHS, "", {"restricted-xml"}),
    "entity-declaration-in-stream": ("", ENTITY_IN_STREAM, {"restricted-xml", "not-well-formed"}),
    "deep-nesting": ("", DEEP, {"policy-violation"}),
    "invalid-utf8": ("", INVALID_UTF8, {"not-well-formed", "bad-format", "unsupported-encoding"}),
    "oversized-stanza": ("", OVERSIZED, {"policy-violation"}),
}
POST_AUTH: dict[str, tuple[str | bytes, set[str]]] = {
    "deep-nesting-after-login": (DEEP, {"policy-violation"}),
    "oversized-after-login": (OVERSIZED, {"policy-violation"}),
    "invalid-utf8-after-login": (INVALID_UTF8, {"not-well-formed", "bad-format", "unsupported-encoding"}),
    "entity-after-login": (ENTITY_IN_STREAM, {"restricted-xml", "not-well-formed"}),
}


def botnet_addresses(first: int, count: int) -> list[str]:
    """Distinct loopback addresses 127.first.x.y (Linux routes all of 127/8 to lo)."""
    return [f"127.{first}.{i // 250}.{i % 250 + 1}" for i in range(count)]


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------- half-open connections


async def halfopen(port: int, tls_port: int, count: int) -> None:
    raise_open_files()
    addresses = botnet_addresses(1, (count + PER_ADDRESS - 1) // PER_ADDRESS)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failures: collections.Counter[str] = collections.Counter()
    gate = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        source = addresses[i // PER_ADDRESS]
        # One in ten on the direct TLS port, silent: a TLS handshake the server waits for.
        target = tls_port if i % 10 == 9 else port
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, target, local_addr=(source, 0)), 30
                )
            except (OSError, asyncio.TimeoutError) as e:
                failures[type(e).__name__ + ":" + str(getattr(e, "errno", ""))] += 1
                return
            if target == port:
                writer.write(PARTIAL_HEADER)
            held.append((reader, writer))

    await asyncio.gather(*(one(i) for i in range(count)))
    print(f"opened {len(held)} failed {sum(failures.values())} {dict(failures)}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := (await stdin.readline()).strip():
        if line == b"count":
            await asyncio.sleep(0)  # let the loop take in any EOF that has arrived
            alive = sum(1 for reader, writer in held if not reader.at_eof() and not writer.is_closing())
            print(f"alive {alive}", flush=True)
        elif line == b"close":
            break
    for _, writer in held:
        writer.transport.abort()


# --------------------------------------------------------------------------- everything else, at once


class Tally:
    def __init__(self) -> None:
        self.outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.unexpected: list[str] = []

    def record(self, attack: str, outcome: str, ok: bool) -> None:
        self.outcomes[attack][outcome] += 1
        if not ok and len(self.unexpected) < 20:
            self.unexpected.append(f"{attack}: {outcome}")


async def answer_of(stream: RawStream, timeout: float = 20) -> str:
    try:
        elements = await stream.read_until_closed(timeout)
    except AssertionError:
        return "not-closed"
    return stream_error_in(elements) or "closed-without-error"


async def bombs_before_login(deadline: float, tally: Tally) -> None:
    # Each attack from a fresh address: the per-address connection rate would otherwise answer first, and the
    # parser's defences are what is under test here.
    addresses = iter(botnet_addresses(2, 60000))
    while time.monotonic() < deadline:
        for name, (prolog, payload, expected) in PRE_AUTH.items():
            stream = await RawStream.connect(PORT, source=next(addresses))
            await stream.send(b"<?xml version='1.0'?>" + prolog.encode() + STREAM_HEADER.encode())
            await stream.send(payload)
            outcome = await answer_of(stream)
            stream.close()
            tally.record(name, outcome, outcome in expected)


async def bombs_after_login(deadline: float, tally: Tally, account: Account) -> None:
    addresses = iter(botnet_addresses(3, 60000))  # a new connection per attack: rotate as above
    while time.monotonic() < deadline:
        for name, (payload, expected) in POST_AUTH.items():
            stream = await RawStream.connect(PORT, source=next(addresses))
            await stream.login_plain(account, resource="bomb")
            await stream.send(payload)
            outcome = await answer_of(stream)
            stream.close()
            tally.record(name, outcome, outcome in expected)


async def flood(deadline: float, tally: Tally, account: Account, victim: str, source: str) -> None:
    """As many messages as TCP takes, to the victim and to an account that does not exist (each of those
    also costs the server an error reply), after a burst of whitespace."""
    stream = await RawStream.connect(PORT, source=source)
    await stream.login_plain(account, resource="flood")
    chunk = b"".join(
        f"<message to='{to}' type='chat'><body>spam {i}</body></message>".encode()
        for i, to in enumerate([victim, "nobody@localhost"] * 50)
    )
    sent = 0
    drain_reads = asyncio.create_task(stream.reader.read(-1))  # keep reading so the server's queue to us drains
    # First spend the connection's byte burst (limits.c2s_rate_burst) on whitespace, which is no stanza: from then
    # on every read also gets the byte rate's pause, and the account's stanza rate must hold all the same.
    stream.writer.write(b" " * (600 * 1024))
    while time.monotonic() < deadline:
        stream.writer.write(chunk)
        try:
            await asyncio.wait_for(stream.writer.drain(), 5)
        except asyncio.TimeoutError:
            continue  # the server reads us slowly: that is the shaper at work
        sent += 100
    tally.record("flood", "stanzas-written", True)
    tally.outcomes["flood"]["stanzas"] = sent
    drain_reads.cancel()
    stream.close()


async def guess_passwords(deadline: float, tally: Tally, victim: Account, source: str) -> None:
    attempt = 0
    while time.monotonic() < deadline:
        stream = await RawStream.connect(PORT, source=source)
        await stream.send(b"<?xml version='1.0'?>" + STREAM_HEADER.encode())
        features = await stream.next_element()
        if features is None or features.tag != q(NS_STREAM, "features"):
            # The per-address connection rate refused us: a defence too. Come back when it lets us in.
            if features is not None and features.tag == q(NS_STREAM, "error"):
                outcome = stream_error_condition(features) or "?"
            else:
                outcome = await answer_of(stream)
            tally.record("password-guessing", f"connection-{outcome}", outcome == "policy-violation")
            stream.close()
            await asyncio.sleep(0.5)
            continue
        await stream.starttls()
        await stream.open()
        for _ in range(10):
            attempt += 1
            answer = await stream.authenticate("PLAIN", f"\0{victim.localpart}\0guess-{attempt}".encode())
            if answer.tag == q(NS_STREAM, "error"):
                # Too many failures on one stream (RFC 6120 §6.4.5: the server may end it): a defence too.
                condition = stream_error_condition(answer) or "?"
                tally.record("password-guessing", f"stream-{condition}", condition in ("policy-violation", "not-authorized"))
                break
            if answer.tag != q(NS_SASL, "failure"):
                tally.record("password-guessing", answer.tag.split("}")[-1], False)
                break
            condition = next((c.tag.split("}")[1] for c in answer if c.tag != q(NS_SASL, "text")), "?")
            tally.record("password-guessing", condition, condition in ("not-authorized", "temporary-auth-failure"))
            if time.monotonic() >= deadline:
                break
        stream.close()


async def attack(seconds: float, accounts: dict[str, Any]) -> None:
    deadline = time.monotonic() + seconds
    tally = Tally()
    as_account = lambda name: Account(**accounts[name])  # noqa: E731
    tasks = [
        bombs_before_login(deadline, tally),
        bombs_before_login(deadline, tally),
        bombs_after_login(deadline, tally, as_account("bomber")),
        flood(deadline, tally, as_account("flooder"), accounts["victim"]["jid"], "127.0.0.4"),
        guess_passwords(deadline, tally, as_account("victim"), "127.0.0.2"),
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    print(json.dumps({"outcomes": tally.outcomes, "unexpected": tally.unexpected, "errors": errors}), flush=True)


PORT = 0

if __name__ == "__main__":
    mode = sys.argv[1]
    PORT = int(sys.argv[2])
    if mode == "halfopen":
        asyncio.run(halfopen(PORT, int(sys.argv[3]), int(sys.argv[4])))
    elif mode == "attack":
        asyncio.run(attack(float(sys.argv[3]), json.loads(sys.argv[4])))
    else:
        raise SystemExit(f"unknown mode {mode}")
