"""XEP-0280 message carbons with slixmpp clients: several resources of one account see every chat."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmpp_harness import NS_CLIENT, Client, body_of, describe, is_message, q

pytestmark = pytest.mark.asyncio

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
MODULES = (
    '"roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking", '
    '"contact_info", "carbons"'
)


@pytest.fixture(scope="module")
def carbons_server(spawn_server):
    with spawn_server("carbons-server", f"[modules]\nenabled = [{MODULES}]\n") as srv:
        yield srv


async def enable_carbons(client: Client) -> None:
    """With slixmpp's own XEP-0280 plugin, as an application would."""
    client.xmpp.register_plugin("xep_0280")
    await client.xmpp.plugin["xep_0280"].enable(timeout=10)


def forwarded(el: ET.Element, direction: str) -> ET.Element | None:
    inner = el.find(f"{q(NS_CARBONS, direction)}/{q(NS_FORWARD, 'forwarded')}/{q(NS_CLIENT, 'message')}")
    return inner


def is_carbon(direction: str, body: str, of: str) -> object:
    def pred(el: ET.Element) -> bool:
        inner = forwarded(el, direction) if el.tag == q(NS_CLIENT, "message") else None
        return inner is not None and el.get("from") == of and body_of(inner) == body

    pred.__doc__ = f"a {direction} carbon of {body!r}"
    return pred


def carbons_in(client: Client, start: int = 0) -> list[ET.Element]:
    return [
        el for el in client.inbox.since(start)
        if el.tag == q(NS_CLIENT, "message") and (forwarded(el, "sent") is not None or forwarded(el, "received") is not None)
    ]


async def test_carbons_are_announced_with_their_rules(carbons_server, session_for):
    client = await session_for(carbons_server).login()
    info = await client.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to="localhost")
    features = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {NS_CARBONS, "urn:xmpp:carbons:rules:0"} <= features


async def test_two_resources_see_what_each_sends_and_receives(carbons_server, session_for):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = await xmpp.login(contact_account)
    await enable_carbons(phone)
    await enable_carbons(laptop)

    phone.message(contact.bare, "from the phone")
    await contact.expect_message("from the phone")
    sent = await laptop.expect(is_carbon("sent", "from the phone", account.jid))
    inner = forwarded(sent, "sent")
    assert inner is not None and inner.get("from") == phone.jid and inner.get("to") == contact.bare, describe(sent)
    assert sent.get("to") == laptop.jid

    laptop.message(contact.bare, "from the laptop")
    await phone.expect(is_carbon("sent", "from the laptop", account.jid))

    contact.message(phone.jid, "to the phone")
    await phone.expect_message("to the phone")
    await laptop.expect(is_carbon("received", "to the phone", account.jid))

    contact.message(laptop.jid, "to the laptop")
    await laptop.expect_message("to the laptop")
    received = await phone.expect(is_carbon("received", "to the laptop", account.jid))
    assert forwarded(received, "received").get("from") == contact.jid  # type: ignore[union-attr]
    # Each saw each message once: as itself, or as one copy.
    assert len(carbons_in(phone)) == 2 and len(carbons_in(laptop)) == 2


async def test_a_resource_that_did_not_enable_gets_no_copies(carbons_server, session_for):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    old = await xmpp.login(account, resource="old-client")
    contact = await xmpp.login(contact_account)
    await enable_carbons(phone)
    contact.message(phone.jid, "for the phone")
    phone.message(contact.bare, "from the phone")
    await contact.expect_message("from the phone")
    contact.message(old.jid, "barrier")
    await old.expect_message("barrier")
    assert carbons_in(old) == []


async def test_a_message_to_the_bare_jid_is_copied_only_to_resources_it_did_not_reach(carbons_server, session_for):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    desk = await xmpp.login(account, resource="desk", priority=5)
    phone = await xmpp.login(account, resource="phone", priority=0)
    tablet = await xmpp.login(account, resource="tablet", priority=5)
    contact = await xmpp.login(contact_account)
    for client in (desk, phone, tablet):
        await enable_carbons(client)
    contact.message(account.jid, "to the account")
    await desk.expect_message("to the account")
    await tablet.expect_message("to the account")
    await phone.expect(is_carbon("received", "to the account", account.jid))
    contact.message(phone.jid, "barrier")
    await phone.expect_message("barrier")
    await desk.expect(is_carbon("received", "barrier", account.jid))
    await tablet.expect(is_carbon("received", "barrier", account.jid))
    assert len(carbons_in(desk)) == 1 and len(carbons_in(tablet)) == 1 and len(carbons_in(phone)) == 1


@pytest.mark.parametrize("hint", ["<private xmlns='urn:xmpp:carbons:2'/>", "<no-copy xmlns='urn:xmpp:hints'/>"])
async def test_private_and_no_copy_messages_are_not_copied(carbons_server, session_for, hint):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = await xmpp.login(contact_account)
    await enable_carbons(phone)
    await enable_carbons(laptop)
    phone.message(contact.bare, "secret out", extra=hint)
    contact.message(phone.jid, "secret in", extra=hint)
    await contact.expect_message("secret out")
    await phone.expect_message("secret in")
    phone.message(contact.bare, "barrier")
    await laptop.expect(is_carbon("sent", "barrier", account.jid))
    assert [body_of(forwarded(c, "sent")) for c in carbons_in(laptop)] == ["barrier"]  # type: ignore[arg-type]


async def test_disabled_carbons_stop_the_copies(carbons_server, session_for):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = await xmpp.login(contact_account)
    await enable_carbons(phone)
    await enable_carbons(laptop)
    await laptop.xmpp.plugin["xep_0280"].disable(timeout=10)
    mark = laptop.inbox.mark()
    contact.message(phone.jid, "not for the laptop")
    await phone.expect_message("not for the laptop")
    contact.message(laptop.jid, "barrier")
    await laptop.expect(is_message("barrier"))
    assert carbons_in(laptop, mark) == []
    await phone.expect(is_carbon("received", "barrier", account.jid))  # the phone still wants them


async def test_headline_messages_are_not_copied(carbons_server, session_for):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = await xmpp.login(contact_account)
    await enable_carbons(laptop)
    contact.message(phone.jid, "news", type="headline")
    await phone.expect_message("news")
    contact.message(phone.jid, "barrier")
    await laptop.expect(is_carbon("received", "barrier", account.jid))
    assert len(carbons_in(laptop)) == 1


async def test_a_resource_that_logs_in_later_has_its_chats_copied_to_those_that_enabled(carbons_server, session_for):
    xmpp = session_for(carbons_server)
    account, contact_account = xmpp.account(), xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    await enable_carbons(phone)  # alone: nothing to copy yet
    laptop = await xmpp.login(account, resource="laptop")  # an old client that never enables carbons
    contact = await xmpp.login(contact_account)
    contact.message(laptop.jid, "to the laptop")
    await laptop.expect_message("to the laptop")
    await phone.expect(is_carbon("received", "to the laptop", account.jid))
    laptop.message(contact.bare, "from the laptop")
    await phone.expect(is_carbon("sent", "from the laptop", account.jid))
    assert carbons_in(laptop) == []
