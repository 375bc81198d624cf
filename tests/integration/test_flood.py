"""A client flooding the server is slowed down (per-connection rate limit), not allowed to starve
anyone: other users keep chatting promptly while the flood goes on."""

import time

import pytest

from raw_xmpp import RawStream
from xmpp_harness import is_message

pytestmark = pytest.mark.asyncio


async def test_others_keep_chatting_while_one_client_floods(server, xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    flooder = await RawStream.connect(server.c2s_port)
    await flooder.login_plain(xmpp.account())
    # 4 MiB of messages to someone who does not exist: each one also costs the server an error reply.
    stanza = b"<message to='nobody@localhost' type='chat'><body>" + b"x" * 900 + b"</body></message>"
    flooder.writer.write(stanza * (4 * 1024 * 1024 // len(stanza)))
    for round_ in range(5):
        started = time.monotonic()
        alice.message(bob.jid, f"ping {round_}")
        await bob.expect(is_message(body=f"ping {round_}"))
        bob.message(alice.jid, f"pong {round_}")
        await alice.expect(is_message(body=f"pong {round_}"))
        assert time.monotonic() - started < 2.0, "a round trip between bystanders took over 2 s during the flood"
    flooder.close()
