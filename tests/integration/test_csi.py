"""XEP-0352 client state indication with slixmpp clients: an inactive phone gets presence and chat
states late and collapsed, messages at once and in order."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sm_client import SmClient
from xmpp_harness import NS_CLIENT, Client, befriend, body_of, child_text, is_message, is_presence, q

pytestmark = pytest.mark.asyncio

NS_CSI = "urn:xmpp:csi:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
MODULES = (
    '"roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking", '
    '"contact_info", "csi", "smacks", "carbons"'
)


@pytest.fixture(scope="module")
def csi_server(spawn_server):
    with spawn_server("csi-server", f"[modules]\nenabled = [{MODULES}]\n") as srv:
        yield srv


async def set_state(client: Client, state: str) -> None:
    """The ping after the nonza is answered once the server has it (a client's elements are handled in order)."""
    client.xmpp.send_raw(f"<{state} xmlns='{NS_CSI}'/>")
    await client.ping_server()


def chat_state(client: Client, to: str, state: str) -> None:
    client.send(f"<message to='{to}' type='chat'><{state} xmlns='{NS_CHATSTATES}'/></message>")


def status(el: ET.Element) -> str | None:
    return child_text(el, "status")


def chat_states(elements: list[ET.Element]) -> list[str]:
    return [
        c.tag.split("}")[1] for el in elements if el.tag == q(NS_CLIENT, "message")
        for c in el if c.tag.startswith(f"{{{NS_CHATSTATES}}}")
    ]


async def test_csi_is_offered_as_a_stream_feature(csi_server):
    stream, features = await SmClient.authenticated(csi_server, csi_server.new_account())
    stream.close()
    assert features.find(q(NS_CSI, "csi")) is not None


async def test_an_inactive_client_gets_only_the_latest_presence_and_chat_state_before_a_message(csi_server, session_for):
    xmpp = session_for(csi_server)
    phone = await xmpp.login(resource="phone")
    contact = await xmpp.login()
    await befriend(phone, contact)
    await set_state(phone, "inactive")
    mark = phone.inbox.mark()
    for i in range(1, 4):
        contact.presence(status=f"s{i}")
    chat_state(contact, phone.jid, "composing")
    chat_state(contact, phone.jid, "paused")
    contact.message(phone.jid, "hello")
    hello = await phone.expect_message("hello")
    before = phone.inbox.before(hello, mark)
    presences = [status(el) for el in before if el.tag == q(NS_CLIENT, "presence") and el.get("from") == contact.jid]
    assert presences == ["s3"]
    assert chat_states(before) == ["paused"]


async def test_active_releases_what_was_held(csi_server, session_for):
    xmpp = session_for(csi_server)
    account = xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")  # active: a witness of what was sent
    contact = await xmpp.login()
    await befriend(phone, contact)
    await set_state(phone, "inactive")
    mark = phone.inbox.mark()
    contact.presence(status="away for lunch")
    await laptop.expect(lambda el: el.tag == q(NS_CLIENT, "presence") and status(el) == "away for lunch")
    await phone.ping_server()  # an iq result is no noise: it goes out at once, and releases what was held
    assert [status(el) for el in phone.inbox.since(mark) if el.tag == q(NS_CLIENT, "presence")] == ["away for lunch"]

    mark = phone.inbox.mark()
    contact.presence(status="back")
    await laptop.expect(lambda el: el.tag == q(NS_CLIENT, "presence") and status(el) == "back")
    assert [el for el in phone.inbox.since(mark) if el.tag == q(NS_CLIENT, "presence")] == []
    phone.xmpp.send_raw(f"<active xmlns='{NS_CSI}'/>")
    await phone.expect(lambda el: el.tag == q(NS_CLIENT, "presence") and status(el) == "back", after=mark)


async def test_calls_reach_an_inactive_client_at_once(csi_server, session_for):
    xmpp = session_for(csi_server)
    account = xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = await xmpp.login()
    await befriend(phone, contact)
    await set_state(phone, "inactive")
    mark = phone.inbox.mark()
    contact.presence(status="calling")
    await laptop.expect(lambda el: el.tag == q(NS_CLIENT, "presence") and status(el) == "calling")
    contact.send(
        f"<message to='{phone.jid}'><propose xmlns='urn:xmpp:jingle-message:0' id='call-1'>"
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>"
    )
    propose = await phone.expect(lambda el: el.find("{urn:xmpp:jingle-message:0}propose") is not None, after=mark)
    before = phone.inbox.before(propose, mark)
    assert [status(el) for el in before if el.tag == q(NS_CLIENT, "presence")] == ["calling"]
    assert body_of(propose) is None
    await phone.expect(is_presence(sender=contact.jid), after=mark)
    contact.message(phone.jid, "still there")
    await phone.expect(is_message("still there"))
