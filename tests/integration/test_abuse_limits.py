"""Abuse limits on a real server: login back-off per address and per account, connections per address,
the open-file limit, and logs without client addresses unless the operator asks for them (--log-ip).

Loopback is not exempt here (limits.exempt_networks = []): each test speaks from its own loopback
address (127.0.0.2, 127.0.0.3, ...), which the server counts as a client address of its own.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from raw_xmpp import RawStream, stream_error_in
from sakari_process import SakariServer
from xmpp_harness import NS_SASL, describe, login, q

pytestmark = pytest.mark.asyncio

LIMITED = """
[limits]
exempt_networks = []
auth_free_failures = 2
auth_backoff = 60.0
connections_per_ip = 3
connection_rate = 1.0
connection_burst = 3
"""


@pytest.fixture(scope="module")
def limited(spawn_server):
    with spawn_server("limited", LIMITED, accounts=4) as srv:
        yield srv


async def plain_attempt(stream: RawStream, user: str, password: str) -> tuple[str, str | None]:
    """One SASL PLAIN attempt; returns the failure's condition (or 'success') and its text."""
    answer = await stream.authenticate("PLAIN", f"\0{user}\0{password}".encode())
    if answer.tag == q(NS_SASL, "success"):
        return "success", None
    assert answer.tag == q(NS_SASL, "failure"), describe(answer)
    condition = next(c.tag.split("}")[1] for c in answer if c.tag != q(NS_SASL, "text"))
    return condition, answer.findtext(q(NS_SASL, "text"))


async def secure_stream(server: SakariServer, source: str) -> RawStream:
    stream = await RawStream.connect(server.c2s_port, source=source)
    await stream.open()
    await stream.starttls()
    await stream.open()
    return stream


async def test_a_guessing_address_is_throttled_while_the_owner_logs_in_from_another(limited):
    account = limited.new_account()
    attacker = await secure_stream(limited, "127.0.0.2")
    answers = [await plain_attempt(attacker, account.localpart, f"guess{i}") for i in range(3)]
    assert [condition for condition, _ in answers] == ["not-authorized", "not-authorized", "temporary-auth-failure"]
    assert re.fullmatch(r"too many failed login attempts; try again in \d+ seconds", answers[2][1] or "")
    attacker.close()

    # The right password from the throttled address waits too: a guesser cannot tell a hit while it waits.
    again = await secure_stream(limited, "127.0.0.2")
    assert (await plain_attempt(again, account.localpart, account.password))[0] == "temporary-auth-failure"
    again.close()

    owner = await login(limited, account)  # from 127.0.0.1
    await owner.ping_server()
    await owner.close()


async def test_connections_beyond_the_per_address_limit_get_a_policy_violation(limited):
    streams = [await RawStream.connect(limited.c2s_port, source="127.0.0.3") for _ in range(3)]
    for stream in streams:
        await stream.open()
    extra = await RawStream.connect(limited.c2s_port, source="127.0.0.3")
    await extra.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
    elements = await extra.read_until_closed()
    assert stream_error_in(elements) == "policy-violation"
    assert b"too many connections from your address" in extra.received
    other = await RawStream.connect(limited.c2s_port, source="127.0.0.5")  # another address is not held back
    await other.open()
    for stream in (*streams, extra, other):
        stream.close()


async def test_bosh_sessions_count_as_connections_of_their_address(limited):
    url = f"http://127.0.0.1:{limited.http_port}/http-bind"
    create = ("<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='1' hold='1' ver='1.6' "
              "xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
    answers = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.6", 0))) as http:
        for _ in range(4):
            async with http.post(url, data=create) as response:
                answers.append(await response.text())
    assert all("sid=" in answer for answer in answers[:3])
    assert "type='terminate'" in answers[3] and "condition='policy-violation'" in answers[3]


async def test_opening_connections_faster_than_the_rate_is_refused(limited):
    first = [await RawStream.connect(limited.c2s_port, source="127.0.0.4") for _ in range(3)]  # the burst
    for stream in first:
        await stream.open()
        stream.close()
    extra = await RawStream.connect(limited.c2s_port, source="127.0.0.4")
    elements = await extra.read_until_closed()
    assert stream_error_in(elements) == "policy-violation"
    assert b"too many new connections from your address" in extra.received
    extra.close()


async def test_the_server_raises_its_open_file_limit_and_logs_how_many_connections_it_can_hold(limited):
    line = next(line for line in limited.log if "event=open-files" in line)
    soft, hard, connections = (int(n) for n in re.search(r"limit=(\d+) hard=(\d+) connections=(\d+)", line).groups())
    assert soft == hard and connections > 0
    limits = open(f"/proc/{limited.proc.pid}/limits").read()
    row = next(r for r in limits.splitlines() if r.startswith("Max open files"))
    assert row.split()[3] == row.split()[4] == str(soft)


async def test_no_client_address_reaches_the_log_by_default(limited):
    # The tests above connected from 127.0.0.1 to 127.0.0.6, logged in, failed and were refused.
    assert not [line for line in limited.log if re.search(r"127\.0\.0\.[1-6]\b", line)]


class LogIpServer(SakariServer):
    def serve_args(self) -> list[str]:
        return [*super().serve_args(), "--log-ip"]


async def test_log_ip_writes_each_connections_address_beside_its_id(tmp_path):
    server = LogIpServer(tmp_path / "data", name="log-ip")
    try:
        account = server.add_accounts(1)[0]
        server.start()
        client = await login(server, account)
        await client.close()
        opened = [line for line in server.log if "event=connection-opened" in line]
        found = re.search(r"conn=([0-9a-f]{8}) address=127\.0\.0\.1\b", opened[0]) if opened else None
        assert found, opened
        assert any(f"event=authenticated conn={found[1]} user={account.jid}" in line for line in server.log)
    finally:
        server.ensure_stopped()


async def test_an_accounts_stanzas_beyond_its_rate_are_slowed_down_not_dropped(make_server):
    server = make_server("[limits]\nexempt_networks = []\nstanza_rate = 20.0\nstanza_burst = 10\n", accounts=2)
    sender, receiver = await login(server, server.new_account()), await login(server, server.new_account())
    loop = asyncio.get_running_loop()
    started = loop.time()
    # In rounds, as a client that keeps sending does: the stanzas of one read pass, the next read waits for them.
    for round in range(6):
        for i in range(10):
            sender.message(receiver.jid, f"shaped {round}-{i}")
        for i in range(10):
            await receiver.expect_message(f"shaped {round}-{i}")
    # 10 at once, then 20 per second: the last of 60 cannot arrive before about two seconds.
    assert loop.time() - started >= 1.5
    await sender.close()
    await receiver.close()
