"""Flow control: a client that reads slowly is not cut off and loses nothing; the server stops reading
from whoever fills its queue until it drains. A client that stops reading for good is dropped after
limits.send_stall_timeout, which frees its senders.

The receiving test client reads far slower than the server writes: its kernel buffers fill, then
the server's queue for it passes send_high_water (64 KiB here) and, without flow control, would pass
max_send_buffer (2 MiB here) and get it disconnected.
"""

import asyncio
import socket

import pytest

from raw_xmpp import RawStream, ScramClient, scram_exchange
from sakari_process import DOMAIN
from xmpp_harness import NS_CLIENT, NS_SASL, describe, q

pytestmark = pytest.mark.asyncio

FLOW = """
[limits]
c2s_rate_bytes = 0
max_send_buffer = {max_send}
send_high_water = 65536
send_stall_timeout = {stall}
"""
BODY = "x" * 1000
MESSAGES = 12000  # about 12 MiB: more than loopback's kernel buffers and max_send_buffer together


async def _online(port: int, account, resource: str, tls: bool = True) -> tuple[RawStream, str]:
    stream = await RawStream.connect(port)
    # Small fixed kernel buffers on the test's side, so that the server's queue is what fills up.
    sock = stream.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    if tls:
        return stream, await stream.login_plain(account, resource)
    await stream.open()
    answer, _ = await scram_exchange(stream, ScramClient("SCRAM-SHA-256", account.localpart, account.password), "SCRAM-SHA-256")
    assert answer.tag == q(NS_SASL, "success"), describe(answer)
    await stream.open()
    return stream, await stream.bind(resource)


def _flood(sender: RawStream, to: str, count: int = MESSAGES) -> None:
    sender.writer.write(b"".join(
        f"<message to='{to}' type='chat' id='m{i}'><body>{BODY}</body></message>".encode() for i in range(count)
    ))


async def _read_slowly(stream: RawStream, count: int) -> list:
    """A reader on a slow link: 16 KiB at a time, a pause after each (the pause is the behaviour under test)."""
    got: list = []
    while len(got) < count:
        got += await stream.read_some(16384, timeout=30)
        assert not stream.eof, f"disconnected after {len(got)} of {count} messages"
        await asyncio.sleep(0.002)
    return got


async def test_a_slow_reader_gets_every_message_in_order_and_others_are_not_held_back(make_server):
    server = make_server(config=FLOW.format(stall=60, max_send=2097152), accounts=4)
    accounts = [server.new_account() for _ in range(4)]
    receiver, receiver_jid = await _online(server.c2s_port, accounts[0], "slow")
    sender, _ = await _online(server.c2s_port, accounts[1], "fast")
    alice, alice_jid = await _online(server.c2s_port, accounts[2], "a")
    bob, bob_jid = await _online(server.c2s_port, accounts[3], "b")
    try:
        _flood(sender, receiver_jid)
        reading = asyncio.ensure_future(_read_slowly(receiver, MESSAGES))
        # Holding back the sender holds back nobody else.
        await alice.send(f"<message to='{bob_jid}' type='chat' id='hello'><body>hello</body></message>")
        hello = await bob.expect(NS_CLIENT, "message")
        assert hello.get("id") == "hello"
        # Without flow control the server would queue megabytes for the slow reader and cut it off at
        # max_send_buffer; with it, every message arrives, once, in order.
        messages = await reading
        assert [m.get("id") for m in messages] == [f"m{i}" for i in range(MESSAGES)]
        assert all(m.findtext(q(NS_CLIENT, "body")) == BODY for m in messages)
        await asyncio.wait_for(sender.writer.drain(), 30)
        assert not receiver.eof and not sender.eof
    finally:
        for stream in (receiver, sender, alice, bob):
            stream.close()


async def test_a_client_that_never_reads_is_dropped_after_the_stall_timeout_and_its_senders_go_on(make_server):
    server = make_server(config=FLOW.format(stall=1.0, max_send=2097152) + "[offline]\nmax_messages = 100000\n", accounts=2)
    accounts = [server.new_account() for _ in range(2)]
    receiver, receiver_jid = await _online(server.c2s_port, accounts[0], "stuck")
    sender, _ = await _online(server.c2s_port, accounts[1], "fast")
    try:
        _flood(sender, receiver_jid)
        # The stuck receiver is dropped; the server reads the sender again (the rest of the flood goes
        # to offline storage), and so it answers a ping sent after the flood.
        await sender.send(f"<iq type='get' id='after-flood' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        pong = await sender.expect(NS_CLIENT, "iq", timeout=30)
        assert (pong.get("id"), pong.get("type")) == ("after-flood", "result")
        await receiver.read_until_closed(timeout=30)
    finally:
        receiver.close()
        sender.close()


async def test_an_offline_backlog_larger_than_max_send_buffer_reaches_a_slow_reader_whole(make_server):
    # Plain TCP: with TLS, one large write passes through to the socket's own buffer, which the
    # TLS layer does not count, so only a plain connection shows the queue that pacing keeps short.
    server = make_server(config=FLOW.format(stall=60, max_send=524288) + "[c2s]\nrequire_encryption = false\n", accounts=2)
    owner, sender_account = server.new_account(), server.new_account()
    sender, _ = await _online(server.c2s_port, sender_account, "s", tls=False)
    body = "y" * 10000
    count = 700  # about 7 MB: more than loopback's kernel send buffer (4 MiB) and max_send_buffer (512 KiB) together
    try:
        await sender.send(b"".join(
            f"<message to='{owner.jid}' type='chat' id='o{i}'><body>{body}</body></message>".encode() for i in range(count)
        ) + f"<iq type='get' id='stored' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>".encode())
        assert (await sender.expect(NS_CLIENT, "iq", timeout=30)).get("id") == "stored"
        receiver, _ = await _online(server.c2s_port, owner, "back", tls=False)
        await receiver.send("<presence/>")
        elements = await _read_slowly(receiver, count + 1)  # the messages and the echo of its own presence
        messages = [el for el in elements if el.tag == q(NS_CLIENT, "message")]
        assert [m.get("id") for m in messages] == [f"o{i}" for i in range(count)]
        assert all(m.findtext(q(NS_CLIENT, "body")) == body for m in messages)
        await receiver.send("<presence type='unavailable'/>")
        while (await receiver.expect(NS_CLIENT, "presence")).get("type") != "unavailable":
            pass
        receiver.close()
        # All of them were delivered, so none is left: the next offline message is the first one the next session gets.
        await sender.send(f"<message to='{owner.jid}' type='chat' id='later'><body>later</body></message>"
                          f"<iq type='get' id='stored-later' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert (await sender.expect(NS_CLIENT, "iq", timeout=30)).get("id") == "stored-later"
        again, _ = await _online(server.c2s_port, owner, "again", tls=False)
        await again.send("<presence/>")
        first = await again.next_element()
        while first is not None and first.tag == q(NS_CLIENT, "presence"):  # the echo of its own presence
            first = await again.next_element()
        assert first is not None and first.tag == q(NS_CLIENT, "message") and first.get("id") == "later"
        again.close()
    finally:
        sender.close()
