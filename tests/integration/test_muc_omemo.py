"""OMEMO group chat (XEP-0384 in XEP-0045 rooms) through Sakari, with three slixmpp-omemo clients: a
members-only, non-anonymous room shows members their real JIDs and the member list, so each client
encrypts for every member's devices; a member who left and comes back decrypts what was said meanwhile
from the room's history; a room for encrypted messages only refuses plain text with a clear error."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from omemo.backend import DecryptionFailed
from slixmpp import JID

from muc_helpers import MUC_ADMIN, SERVICE, muc_config
from pep_helpers import MODULES as PEP_MODULES
from test_muc_rooms import make_room
from test_omemo import database_holds, omemo_client
from xmpp_harness import WAIT, error_condition

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def omemo_muc_server(spawn_server):
    config = muc_config().replace("enabled = [", "enabled = [" + ", ".join(f'"{m}"' for m in PEP_MODULES
                                                                               if m not in ("muc",)) + ", ", 1)
    with spawn_server("omemo-muc", config, accounts=10) as srv:
        yield srv


async def omemo_occupant(session):
    client = await omemo_client(session)
    client.xmpp.register_plugin("xep_0045")
    return client


def decrypted(client) -> asyncio.Queue:
    """Groupchat messages that the client's OMEMO decrypts, as (body, stanza)."""
    queue: asyncio.Queue = asyncio.Queue()
    plugin = client.xmpp.plugin["xep_0384"]

    async def on_message(stanza) -> None:
        if stanza["type"] == "groupchat" and plugin.is_encrypted(stanza):
            try:
                message, _device = await plugin.decrypt_message(stanza)
            except DecryptionFailed:
                return  # history repeats what this device read already; its keys are gone, as they should be
            await queue.put((message["body"], stanza))

    client.xmpp.add_event_handler("groupchat_message", on_message)
    return queue


async def send_to_room(sender, room: str, members: set[str], text: str) -> None:
    plugin = sender.xmpp.plugin["xep_0384"]
    message = sender.xmpp.make_message(mto=room, mtype="groupchat")
    message["body"] = text
    encrypted, errors = await plugin.encrypt_message(message, {JID(m) for m in members})
    assert encrypted is not None and not errors, f"encryption errors: {errors}"
    encrypted.send()


async def test_three_omemo_clients_talk_in_a_members_only_room_and_catch_up_after_rejoining(
    omemo_muc_server, session_for
):
    session = session_for(omemo_muc_server)
    alice, bob, carol = [await omemo_occupant(session) for _ in range(3)]
    room = f"omemo{secrets.token_hex(4)}@{SERVICE}"
    await make_room(alice, room, "alice", {
        "muc#roomconfig_persistentroom": "1", "muc#roomconfig_membersonly": "1", "muc#roomconfig_whois": "anyone",
        "x-sakari#encrypted_only": "1",
    })
    for member in (bob, carol):
        await alice.iq("set", f"<query xmlns='{MUC_ADMIN}'><item affiliation='member' jid='{member.bare}'/></query>",
                       to=room)
    # What clients do to learn whom to encrypt for: the member list, with real JIDs.
    listed = await bob.iq("get", f"<query xmlns='{MUC_ADMIN}'><item affiliation='member'/></query>", to=room)
    assert {i.get("jid") for i in listed.iter(f"{{{MUC_ADMIN}}}item")} == {bob.bare, carol.bare}
    muc_bob, muc_carol = bob.xmpp.plugin["xep_0045"], carol.xmpp.plugin["xep_0045"]
    await muc_bob.join_muc_wait(JID(room), "bob", maxstanzas=0, timeout=WAIT)
    await muc_carol.join_muc_wait(JID(room), "carol", maxstanzas=0, timeout=WAIT)
    assert muc_carol.get_jid_property(JID(room), "bob", "jid") == JID(bob.jid), "real JIDs are shown"
    everyone = {alice.bare, bob.bare, carol.bare}

    to_bob, to_carol = decrypted(bob), decrypted(carol)
    first = f"omemo-room-{secrets.token_hex(8)}"
    await send_to_room(alice, room, everyone - {alice.bare}, first)
    for inbox in (to_bob, to_carol):
        body, stanza = await asyncio.wait_for(inbox.get(), WAIT * 3)
        assert body == first and first not in str(stanza)

    # Plain text is refused: the room is for encrypted messages only.
    alice.send(f"<message to='{room}' type='groupchat' id='plain'><body>in the clear</body></message>")
    refused = await alice.expect(lambda el: el.get("id") == "plain" and el.get("type") == "error")
    assert error_condition(refused) == "not-acceptable"
    assert "encrypted" in refused.findtext(".//{urn:ietf:params:xml:ns:xmpp-stanzas}text")

    muc_carol.leave_muc(JID(room), "carol")
    await carol.expect(lambda el: el.get("from") == f"{room}/carol" and el.get("type") == "unavailable")
    meanwhile = f"omemo-while-away-{secrets.token_hex(8)}"
    await send_to_room(bob, room, everyone - {bob.bare}, meanwhile)
    body, _ = await asyncio.wait_for(to_bob.get(), WAIT * 3)  # bob's own message comes back (from its cache)
    assert body == meanwhile

    _presence, _subject, _occupants, history = await muc_carol.join_muc_wait(JID(room), "carol", timeout=WAIT)
    assert len(history) == 2, "both messages come back as history"
    body, stanza = await asyncio.wait_for(to_carol.get(), WAIT * 3)
    assert body == meanwhile, "the message sent while carol was away decrypts from the history"
    assert stanza.xml.find("{urn:xmpp:delay}delay") is not None
    for text in (first, meanwhile):
        assert not database_holds(omemo_muc_server, text), "plain text of an OMEMO room message is stored"
