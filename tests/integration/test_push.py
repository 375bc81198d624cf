"""XEP-0357 push notifications against a real server: the app server is a slixmpp component that records the
publishes and answers them, the phones are slixmpp clients and a hand-driven stream management client."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import pytest_asyncio

from component_helpers import Component, connect_component
from sakari.settings import DEFAULT_MODULES
from sakari_process import free_ports
from sm_client import SmClient
from xmpp_harness import NS_CLIENT, Client, describe, q

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
APP_SERVER = "push.localhost"
SECRET = "app-server-secret"
MIN_INTERVAL = 3.0
OPTIONS = (f"<x xmlns='{NS_DATA}' type='submit'>"
           "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
           f"<field var='secret'><value>{SECRET}</value></field></x>")


@pytest.fixture(scope="module")
def push_server(spawn_server):
    (port,) = free_ports(1)
    config = (
        f"[network]\ncomponent_port = {port}\n\n"
        f"[modules]\nenabled = {list(DEFAULT_MODULES) + ['smacks', 'carbons', 'push']!r}\n\n"
        f"[push]\nmin_interval = {MIN_INTERVAL}\nmax_registrations = 3\n\n"
        f'[[components]]\ndomain = "{APP_SERVER}"\nsecret = "app-secret"\n'
    )
    with spawn_server("push", config) as srv:
        srv.component_port = port
        yield srv


@pytest_asyncio.fixture
async def app_server(push_server):
    component = await connect_component(push_server.component_port, APP_SERVER, "app-secret")
    yield component
    component.abort()


def publish_to(node: str):
    def pred(el: ET.Element) -> bool:
        publish = el.find(f"{q(NS_PUBSUB, 'pubsub')}/{q(NS_PUBSUB, 'publish')}")
        return el.tag == q(NS_CLIENT, "iq") and el.get("type") == "set" and publish is not None and publish.get("node") == node
    return pred


def summary(iq: ET.Element) -> dict[str, str] | None:
    x = iq.find(f".//{q(NS_PUSH, 'notification')}/{q(NS_DATA, 'x')}")
    if x is None:
        return None
    return {f.get("var"): f.findtext(q(NS_DATA, "value")) for f in x.findall(q(NS_DATA, "field"))}


async def answer(app: Component, node: str, after: int = 0, error: str | None = None) -> ET.Element:
    """Wait for a notification to ``node`` and answer it (a result, or an error of type cancel)."""
    iq = await app.inbox.wait_for(publish_to(node), f"a notification to {node}", after=after)
    if error is None:
        app.send(f"<iq type='result' id='{iq.get('id')}' from='{APP_SERVER}' to='{iq.get('from')}'/>")
    else:
        app.send(f"<iq type='error' id='{iq.get('id')}' from='{APP_SERVER}' to='{iq.get('from')}'>"
                 f"<error type='cancel'><{error} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
    return iq


def enable(node: str, options: str = OPTIONS) -> str:
    return f"<enable xmlns='{NS_PUSH}' jid='{APP_SERVER}' node='{node}'>{options}</enable>"


async def set_contents(client: Client, keys: list[str] | None) -> ET.Element:
    """Run the "Push notification contents" command; with ``keys`` submit them, else cancel. The first step's form."""
    first = await client.iq("set", f"<command xmlns='{NS_COMMANDS}' node='urn:sakari:push:contents' action='execute'/>",
                            to="localhost")
    command = first.find(q(NS_COMMANDS, "command"))
    sid = command.get("sessionid")
    if keys is None:
        await client.iq("set", f"<command xmlns='{NS_COMMANDS}' node='urn:sakari:push:contents' sessionid='{sid}' "
                               "action='cancel'/>", to="localhost")
    else:
        values = "".join(f"<value>{k}</value>" for k in keys)
        await client.iq("set", f"<command xmlns='{NS_COMMANDS}' node='urn:sakari:push:contents' sessionid='{sid}'>"
                               f"<x xmlns='{NS_DATA}' type='submit'><field var='summary'>{values}</field></x></command>",
                        to="localhost")
    return command


def offered(command: ET.Element) -> list[str]:
    return [v.text for v in command.iter(q(NS_DATA, "value")) if v.text and "\n" in v.text]


async def test_a_message_for_an_account_with_no_client_online_wakes_its_app_server_without_content(
    push_server, app_server, session_for
):
    xmpp = session_for(push_server)
    phone = await xmpp.login()
    info = await phone.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=phone.bare)
    assert NS_PUSH in [f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))]
    await phone.iq("set", enable("gone-node"))
    await phone.close()
    bob = await xmpp.login()
    bob.message(phone.bare, "meet me at the secret place")
    iq = await answer(app_server, "gone-node")
    assert iq.get("from") == phone.bare
    assert iq.findtext(f".//{q(NS_DATA, 'field')}[@var='secret']/{q(NS_DATA, 'value')}") == SECRET
    assert iq.find(f".//{q(NS_PUSH, 'notification')}") is not None
    assert summary(iq) is None
    text = ET.tostring(iq, encoding="unicode")
    assert "secret place" not in text and bob.bare not in text, describe(iq)


async def test_a_session_hibernating_in_stream_management_wakes_its_app_server(push_server, app_server, session_for):
    xmpp = session_for(push_server)
    account = push_server.new_account()
    phone = await SmClient.login(push_server, account, resource="phone")
    await phone.enable()
    await phone.send("<presence/>")
    await phone.send(f"<iq type='set' id='push1'>{enable('sleeping-node')}</iq>")
    while not ((el := await phone.next()).tag == q(NS_CLIENT, "iq") and el.get("id") == "push1"):
        pass
    assert el.get("type") == "result", describe(el)
    phone.close()
    bob = await xmpp.login()
    bob.message(account.jid, "are you there?")
    # Whether the message met the session before or after the server saw the connection go, it wakes the phone.
    iq = await answer(app_server, "sleeping-node")
    assert iq.get("from") == account.jid and summary(iq) is None


async def test_typing_notifications_do_not_wake_and_the_user_may_let_notifications_carry_sender_and_text(
    push_server, app_server, session_for
):
    xmpp = session_for(push_server)
    phone = await xmpp.login()
    await phone.iq("set", enable("chatty-node"))
    first = await set_contents(phone, None)
    (key,) = offered(first)
    await set_contents(phone, [key])
    await phone.close()
    bob = await xmpp.login()
    mark = app_server.inbox.mark()
    bob.send(f"<message to='{phone.bare}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    bob.message(phone.bare, "one")
    iq = await answer(app_server, "chatty-node", after=mark)
    assert summary(iq) == {"FORM_TYPE": "urn:xmpp:push:summary", "message-count": "1",
                           "last-message-sender": bob.jid, "last-message-body": "one"}
    # Within push.min_interval the next messages are one notification, when the interval ends.
    mark = app_server.inbox.mark()
    for body in ("two", "three", "four"):
        bob.message(phone.bare, body)
    iq = await answer(app_server, "chatty-node", after=mark)
    assert summary(iq)["message-count"] == "4" and summary(iq)["last-message-body"] == "four"
    assert [el for el in app_server.inbox.since(mark) if publish_to("chatty-node")(el)] == [iq]


async def test_an_error_from_the_app_server_or_a_disable_ends_a_registration(push_server, app_server, session_for):
    xmpp = session_for(push_server)
    phone = await xmpp.login()
    for node in ("bad-node", "good-node", "other-node"):
        await phone.iq("set", enable(node))
    await phone.iq("set", f"<disable xmlns='{NS_PUSH}' jid='{APP_SERVER}' node='other-node'/>")
    assert sorted(k.split("\n")[1] for k in offered(await set_contents(phone, None))) == ["bad-node", "good-node"]
    await phone.close()
    bob = await xmpp.login()
    bob.message(phone.bare, "first")
    await answer(app_server, "bad-node", error="item-not-found")
    await answer(app_server, "good-node")
    mark = app_server.inbox.mark()
    bob.message(phone.bare, "second")
    await answer(app_server, "good-node", after=mark)
    assert not [el for el in app_server.inbox.since(mark) if publish_to("bad-node")(el)]
    phone = await xmpp.login(phone.account)
    assert [k.split("\n")[1] for k in offered(await set_contents(phone, None))] == ["good-node"]
    await phone.iq("set", f"<disable xmlns='{NS_PUSH}' jid='{APP_SERVER}'/>")  # every node of the app server
    reply = await phone.iq("set", f"<command xmlns='{NS_COMMANDS}' node='urn:sakari:push:contents'/>", to="localhost")
    assert reply.find(q(NS_COMMANDS, "command")).get("status") == "completed"


async def test_an_account_keeps_a_limited_number_of_registrations_and_enable_is_checked(push_server, session_for):
    phone = await session_for(push_server).login()
    for n in range(4):
        await phone.iq("set", enable(f"device-{n}"))
    kept = sorted(k.split("\n")[1] for k in offered(await set_contents(phone, None)))
    assert kept == ["device-1", "device-2", "device-3"]  # the oldest made room
    condition, _ = await phone.iq_error("set", f"<enable xmlns='{NS_PUSH}' jid='{APP_SERVER}'/>")
    assert condition == "bad-request"
    condition, _ = await phone.iq_error("set", f"<enable xmlns='{NS_PUSH}' node='n'/>")
    assert condition == "jid-malformed"
    condition, _ = await phone.iq_error("set", enable("n", f"<x xmlns='{NS_DATA}' type='submit'/>"))
    assert condition == "bad-request"
