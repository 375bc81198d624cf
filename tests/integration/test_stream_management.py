"""XEP-0198 stream management against a real server: acks, resumption after a cut connection,
and unacknowledged messages that reach offline storage instead of being lost."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

import slixmpp

from sakari_process import HOST
from sm_client import NS_SM, SmClient
from xmpp_harness import (
    NS_CLIENT, NS_DELAY, NS_STANZA_ERRORS, WAIT, Client, body_of, describe, insecure_tls_context, is_message, q,
)

pytestmark = pytest.mark.asyncio

MODULES = (
    '"roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking", '
    '"contact_info", "smacks"'
)


def config(resume_timeout: float = 600.0) -> str:
    return f"[modules]\nenabled = [{MODULES}]\n\n[smacks]\nresume_timeout = {resume_timeout}\n"


@pytest.fixture(scope="module")
def sm_server(spawn_server):
    with spawn_server("sm-server", config()) as srv:
        yield srv


@pytest.fixture(scope="module")
def short_server(spawn_server):
    with spawn_server("sm-short-timeout", config(resume_timeout=1.0)) as srv:
        yield srv


@pytest_asyncio.fixture
async def clients():
    made: list[SmClient] = []
    yield made
    for c in made:
        c.close()


async def sm_login(server, account, clients, resource="sm", presence=True) -> SmClient:
    client = await SmClient.login(server, account, resource)
    clients.append(client)
    await client.enable()
    if presence:
        await client.send("<presence/>")
        await client.next_nonza("r")  # after our own presence, which comes back (RFC 6121 §4.2.2)
        await client.ack()
    return client


async def wait_for_log(server, text: str, start: int, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not any(text in line for line in server.log[start:]):
        assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in the server log"
        await asyncio.sleep(0.02)


async def test_sm_feature_is_offered_after_authentication_and_enable_before_bind_fails(sm_server):
    account = sm_server.new_account()
    stream, features = await SmClient.authenticated(sm_server, account)
    try:
        assert features.find(q(NS_SM, "sm")) is not None, describe(features)
        await stream.send(f"<enable xmlns='{NS_SM}'/>")
        failed = await stream.expect(NS_SM, "failed")
        assert failed.find(q(NS_STANZA_ERRORS, "unexpected-request")) is not None, describe(failed)
        await stream.bind("after-failed-enable")  # the stream goes on
    finally:
        stream.close()


async def test_enable_gives_a_resumption_id_and_a_second_enable_fails(sm_server, clients):
    client = await sm_login(sm_server, sm_server.new_account(), clients, presence=False)
    enabled = client.nonzas[-1]
    assert enabled.get("resume") == "true" and enabled.get("id"), describe(enabled)
    assert enabled.get("max") == "600"
    await client.send(f"<enable xmlns='{NS_SM}' resume='true'/>")  # again
    failed = await client.next_nonza("failed")
    assert failed.find(q(NS_STANZA_ERRORS, "unexpected-request")) is not None, describe(failed)


async def test_the_server_counts_what_the_client_sent(sm_server, clients):
    client = await sm_login(sm_server, sm_server.new_account(), clients, presence=False)
    for i in range(3):
        await client.send(f"<iq type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>")
    await client.send(f"<r xmlns='{NS_SM}'/>")
    a = await client.next_nonza("a")
    assert a.get("h") == "3"


async def test_the_server_asks_for_acks_and_takes_them(sm_server, session_for, clients):
    alice, bob_account = sm_server.new_account(), sm_server.new_account()
    bob = await sm_login(sm_server, bob_account, clients)
    sender = await session_for(sm_server).login(alice)
    sender.message(bob_account.jid, "hello")
    await bob.next_nonza("r")
    assert [body_of(s) for s in bob.stanzas if s.tag == q(NS_CLIENT, "message")] == ["hello"]
    await bob.ack()
    # Acknowledged: nothing to ask for until the next stanza, which gets its own request.
    sender.message(bob_account.jid, "again")
    await bob.next_nonza("r")
    await bob.ack()
    await bob.send(f"<r xmlns='{NS_SM}'/>")
    assert (await bob.next_nonza("a")).get("h") == "1"  # its initial presence


async def test_a_cut_connection_resumes_and_every_message_arrives_once_in_order(sm_server, session_for, clients):
    alice, bob_account = sm_server.new_account(), sm_server.new_account()
    bob = await sm_login(sm_server, bob_account, clients)
    previd = bob.nonzas[0].get("id")
    sender = await session_for(sm_server).login(alice)
    for i in range(1, 4):
        sender.message(f"{bob.jid}", f"m{i}")
    assert await bob.message_bodies(3) == ["m1", "m2", "m3"]
    acked_through_m1 = bob.handled - 2
    mark = len(sm_server.log)
    bob.close()  # the TCP connection is gone, mid-conversation
    await wait_for_log(sm_server, "event=sm-detached", mark)
    for i in range(4, 7):
        sender.message(f"{bob.jid}", f"m{i}")
    await sender.ping_server()  # m4–m6 were routed
    resumed = await bob.resume(sm_server, bob_account, previd, acked_through_m1)
    assert resumed.tag == q(NS_SM, "resumed"), describe(resumed)
    assert resumed.get("previd") == previd and resumed.get("h") == "1"  # its initial presence
    bob.handled = acked_through_m1
    bodies = await bob.message_bodies(5)
    assert bodies == ["m2", "m3", "m4", "m5", "m6"]
    resent = [s for s in bob.stanzas[-5:] if s.find(q(NS_DELAY, "delay")) is not None]
    assert len(resent) == 5, "messages sent again carry the time they were first sent"
    await bob.ack()
    # The session is the same one: it still receives, and nothing comes twice.
    sender.message(bob.jid, "after")
    assert await bob.message_bodies(1) == ["after"]


async def test_resuming_while_the_old_connection_still_looks_open(sm_server, session_for, clients):
    alice, bob_account = sm_server.new_account(), sm_server.new_account()
    bob = await sm_login(sm_server, bob_account, clients)
    previd = bob.nonzas[0].get("id")
    sender = await session_for(sm_server).login(alice)
    sender.message(bob.jid, "one")
    assert await bob.message_bodies(1) == ["one"]
    old, acked = bob.stream, bob.handled - 1  # its own presence was acknowledged at login
    resumed = await bob.resume(sm_server, bob_account, previd, acked)  # the server has not noticed anything
    assert resumed.tag == q(NS_SM, "resumed"), describe(resumed)
    bob.handled = acked
    assert await bob.message_bodies(1) == ["one"]
    closing = await old.read_until_closed()
    assert any(el.tag.endswith("}error") for el in closing), "the old stream ends with a conflict"
    old.close()


async def test_resume_with_an_unknown_id_fails(sm_server):
    account = sm_server.new_account()
    stream, _ = await SmClient.authenticated(sm_server, account)
    try:
        await stream.send(f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>")
        failed = await stream.expect(NS_SM, "failed")
        assert failed.find(q(NS_STANZA_ERRORS, "item-not-found")) is not None, describe(failed)
        await stream.bind("fresh")  # the client binds a new session instead
    finally:
        stream.close()


async def test_a_client_that_never_comes_back_gets_its_messages_from_offline_storage(short_server, session_for, clients):
    alice, bob_account = short_server.new_account(), short_server.new_account()
    bob = await sm_login(short_server, bob_account, clients)
    sender = await session_for(short_server).login(alice)
    sender.message(bob.jid, "unacked-1")
    sender.message(bob.jid, "unacked-2")
    assert await bob.message_bodies(2) == ["unacked-1", "unacked-2"]
    mark = len(short_server.log)
    bob.close()
    await wait_for_log(short_server, "event=sm-unacked-rerouted", mark)
    again = await session_for(short_server).login(bob_account, resource="later")
    await again.expect(is_message("unacked-1"))
    await again.expect(is_message("unacked-2"))


async def test_closing_the_stream_ends_the_session_at_once_and_keeps_unacked_messages(sm_server, session_for, clients):
    alice, bob_account = sm_server.new_account(), sm_server.new_account()
    bob = await sm_login(sm_server, bob_account, clients)
    sender = await session_for(sm_server).login(alice)
    sender.message(bob.jid, "not acked")
    assert await bob.message_bodies(1) == ["not acked"]
    await bob.send("</stream:stream>")
    await bob.stream.read_until_closed()
    again = await session_for(sm_server).login(bob_account, resource="next")
    await again.expect(is_message("not acked"))


async def test_offline_messages_stay_stored_until_acknowledged(sm_server, session_for, clients):
    alice, bob_account = sm_server.new_account(), sm_server.new_account()
    sender = await session_for(sm_server).login(alice)
    for i in range(1, 4):
        sender.message(bob_account.jid, f"stored-{i}")
    await sender.ping_server()
    bob = await sm_login(sm_server, bob_account, clients, presence=False)
    await bob.send("<presence/>")
    assert await bob.message_bodies(3) == ["stored-1", "stored-2", "stored-3"]
    messages = [i for i, s in enumerate(bob.stanzas) if body_of(s)]
    await bob.ack(h=messages[0] + 1)  # only stored-1 (and what came before it) was handled
    await bob.send(f"<r xmlns='{NS_SM}'/>")
    await bob.next_nonza("a")  # the ack was processed
    bob.close()
    again = await session_for(sm_server).login(bob_account, resource="next")
    await again.expect(is_message("stored-3"))
    bodies = [body_of(s) for s in again.inbox.since(0) if body_of(s)]
    assert bodies == ["stored-2", "stored-3"], "what was acknowledged is gone, what was not is kept, once"


async def test_unacknowledged_messages_survive_a_clean_restart(make_server, session_for):
    server = make_server(config(), name="sm-restart", accounts=2)
    alice, bob_account = server.new_account(), server.new_account()
    bob = await SmClient.login(server, bob_account)
    try:
        await bob.enable()
        await bob.send("<presence/>")
        sender = await session_for(server).login(alice)
        sender.message(bob.jid, "before the restart")
        assert await bob.message_bodies(1) == ["before the restart"]
    finally:
        bob.close()
    server.stop()
    server.start()
    again = await session_for(server).login(bob_account, resource="after")
    await again.expect(is_message("before the restart"))


async def test_slixmpp_resumes_its_session_after_a_cut_and_gets_what_it_missed(sm_server, session_for):
    """slixmpp's own XEP-0198 plugin against the server, as an application uses it."""
    alice, bob_account = sm_server.new_account(), sm_server.new_account()
    xmpp = slixmpp.ClientXMPP(f"{bob_account.jid}/phone", bob_account.password)
    xmpp.ssl_context = insecure_tls_context()
    xmpp.enable_direct_tls, xmpp.enable_starttls, xmpp.enable_plaintext = False, True, False
    xmpp.whitespace_keepalive = False
    xmpp.register_plugin("xep_0198")
    bob = Client(bob_account, xmpp, "bob/phone")
    loop = asyncio.get_running_loop()
    enabled, resumed = loop.create_future(), loop.create_future()
    xmpp.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(True))
    xmpp.add_event_handler("session_resumed", lambda _: resumed.done() or resumed.set_result(True))
    try:
        xmpp.connect(HOST, sm_server.c2s_port)
        await asyncio.wait_for(enabled, WAIT)
        xmpp.send_presence()
        sender = await session_for(sm_server).login(alice)
        sender.message(bob.jid, "before the cut")
        await bob.expect_message("before the cut")
        await bob.ping_server()  # its ack of the message is in, ahead of the ping
        mark = len(sm_server.log)
        bob.abort()
        await wait_for_log(sm_server, "event=sm-detached", mark)
        sender.message(bob.jid, "during the cut")
        await sender.ping_server()
        xmpp.connect(HOST, sm_server.c2s_port)
        await asyncio.wait_for(resumed, WAIT)
        await bob.expect_message("during the cut")
        sender.message(bob.jid, "after the cut")
        await bob.expect_message("after the cut")
        bodies = [body_of(el) for el in bob.inbox.since(0) if body_of(el)]
        assert bodies == ["before the cut", "during the cut", "after the cut"]
    finally:
        bob.abort()
