"""e2ee.required: plaintext 1:1 chats between local users are bounced with an explanation; OMEMO-encrypted
messages of either namespace, and messages without a body, pass."""

from __future__ import annotations

import pytest

from xmpp_harness import error_condition, is_message, is_message_error, kind

pytestmark = pytest.mark.asyncio

OMEMO_LEGACY = "eu.siacs.conversations.axolotl"
OMEMO_2 = "urn:xmpp:omemo:2"


@pytest.fixture(scope="module")
def strict(spawn_server):
    with spawn_server("e2ee-required", "[e2ee]\nrequired = true\n", accounts=6) as srv:
        yield srv


def omemo(ns: str) -> str:
    """An encrypted payload as a client puts it: header, keys and ciphertext (opaque to the server)."""
    return (f"<encrypted xmlns='{ns}'><header sid='1'><key rid='2'>a2V5</key><iv>aXY=</iv></header>"
            "<payload>Y2lwaGVydGV4dA==</payload></encrypted>")


async def test_a_plaintext_chat_is_bounced_with_an_explanation_and_never_delivered(strict, session_for):
    xmpp = session_for(strict)
    alice, bob = await xmpp.login(), await xmpp.login()
    alice.message(bob.jid, "plaintext secret", id="plain-1")
    error = await alice.expect(is_message_error(sender=bob.jid))
    assert error.get("id") == "plain-1" and error_condition(error) == "policy-violation"
    assert "end-to-end encrypted" in (error.findtext(".//{urn:ietf:params:xml:ns:xmpp-stanzas}text") or "")
    alice.message(bob.bare, "plaintext to the bare address")
    await alice.expect(is_message_error(sender=bob.bare))
    # Encrypted ones pass, with the fallback body clients add, in both OMEMO namespaces.
    for ns in (OMEMO_LEGACY, OMEMO_2):
        alice.message(bob.jid, "I sent you an OMEMO encrypted message", extra=omemo(ns))
        received = await bob.expect(is_message(sender=alice.jid))
        assert received.find(f"{{{ns}}}encrypted") is not None
    alice.send(f"<message to='{bob.jid}' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
    state = await bob.expect(lambda el: kind(el) == "message" and el.find("{http://jabber.org/protocol/chatstates}active") is not None)
    assert state.find("{jabber:client}body") is None
    assert not [el for el in bob.inbox.since(0) if "plaintext" in (el.findtext("{jabber:client}body") or "")]


async def test_group_chat_messages_are_not_held_to_the_rule(strict, session_for):
    xmpp = session_for(strict)
    alice = await xmpp.login()
    room = f"e2ee-room@conference.{strict.domain}"
    alice.send(f"<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await alice.expect(lambda el: kind(el) == "presence" and el.get("from") == f"{room}/alice")
    alice.message(room, "hello room", type="groupchat")
    await alice.expect(is_message(body="hello room", type="groupchat"))
