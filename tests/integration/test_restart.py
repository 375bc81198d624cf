"""What survives the server process: offline messages, rosters, the TLS
certificate; and a clean SIGTERM. Each test has a server of its own."""

import pytest

from raw_xmpp import RawStream
from xmpp_harness import befriend, body_of, is_message, kind

pytestmark = pytest.mark.asyncio


def offline_bodies(client) -> list[str]:
    return [body_of(el) for el in client.inbox.history if kind(el) == "message" and el.get("type") != "error"]


async def _leave_offline_messages(session, recipient_jid: str, texts: list[str]):
    sender = await session.login(label="sender")
    for text in texts:
        sender.message(recipient_jid, text)
    # The server answered a ping sent after the messages: it has taken them.
    await sender.ping_server()
    return sender


async def test_offline_messages_survive_restart_in_order(make_server, session_for):
    server = make_server(name="restart-server", accounts=4)
    session = session_for(server)
    carol = server.new_account()
    texts = [f"before restart {i}" for i in range(10)]
    sender = await _leave_offline_messages(session, carol.jid, texts)
    await sender.close()

    assert server.stop() == 0, "SIGTERM should stop the server cleanly with exit code 0"
    server.start()

    reader = await session.login(carol, label="carol")
    await reader.expect(is_message(body=texts[-1]))
    assert offline_bodies(reader) == texts


async def test_offline_messages_survive_sigkill_after_acknowledgement(make_server, session_for):
    server = make_server(name="sigkill-server", accounts=4)
    session = session_for(server)
    carol = server.new_account()
    texts = [f"before kill {i}" for i in range(10)]
    await _leave_offline_messages(session, carol.jid, texts)

    server.kill()
    server.start()

    reader = await session.login(carol, label="carol")
    await reader.expect(is_message(body=texts[-1]))
    assert offline_bodies(reader) == texts


async def test_roster_survives_restart(make_server, session_for):
    server = make_server(name="roster-restart-server", accounts=4)
    session = session_for(server)
    alice_account, bob_account = server.new_account(), server.new_account()
    alice = await session.login(alice_account, label="alice")
    bob = await session.login(bob_account, label="bob")
    await befriend(alice, bob)
    await alice.close()
    await bob.close()

    assert server.stop() == 0
    server.start()

    alice = await session.login(alice_account, label="alice-again")
    items = await alice.roster_items()
    assert items[bob_account.jid].get("subscription") == "both"


async def test_sigterm_closes_client_streams_and_exits_cleanly(make_server, session_for):
    server = make_server(name="sigterm-server", accounts=2)
    client = await session_for(server).login()
    server.proc.terminate()
    await client.expect_disconnect()
    assert client.stream_errors in ([], ["system-shutdown"]), client.stream_errors
    assert server.proc.wait(20) == 0
    crashes = [line for line in server.log if "Traceback" in line or " ERROR " in line]
    assert not crashes, "errors logged during shutdown:\n" + server.log_tail(30)


async def test_last_activity_of_a_contact_online_at_shutdown_survives_restart(make_server, session_for):
    """Sessions ended by the shutdown are logouts too (XEP-0012): their time is kept."""
    server = make_server(name="last-restart-server", accounts=4)
    session = session_for(server)
    alice_account, bob_account = server.new_account(), server.new_account()
    alice = await session.login(alice_account, label="alice")
    bob = await session.login(bob_account, label="bob")
    await befriend(alice, bob)
    assert server.stop() == 0
    await alice.expect_disconnect()
    await bob.expect_disconnect()
    server.start()

    alice = await session.login(alice_account, label="alice-again")
    result = await alice.iq("get", "<query xmlns='jabber:iq:last'/>", to=bob_account.jid)
    assert int(result.find("{jabber:iq:last}query").get("seconds")) < 60


async def test_delivered_offline_messages_are_not_redelivered_after_restart(make_server, session_for):
    server = make_server(name="redelivery-server", accounts=4)
    session = session_for(server)
    carol = server.new_account()
    sender = await _leave_offline_messages(session, carol.jid, ["just once"])
    reader = await session.login(carol, label="carol")
    await reader.expect(is_message(body="just once"))
    await reader.close()
    await sender.close()

    assert server.stop() == 0
    server.start()

    again = await session.login(carol, label="carol-again")
    sender = await session.login(label="sender-again")
    sender.message(again.jid, "barrier")
    barrier = await again.expect(is_message(body="barrier"))
    assert "just once" not in offline_bodies(again)[: again.inbox.history.index(barrier)]


async def test_certificate_is_kept_across_restarts(make_server):
    server = make_server(name="cert-server")

    async def certificate() -> bytes:
        stream = await RawStream.connect(server.c2s_tls_port, tls=True)
        try:
            return stream.peer_certificate()
        finally:
            stream.close()

    first = await certificate()
    assert server.stop() == 0
    server.start()
    assert await certificate() == first

