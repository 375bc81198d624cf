"""The privacy check: after a scripted day of use, the server's database, its log and its upload directory are
searched for the clients' IP addresses and for the plaintext of their end-to-end encrypted messages. Neither may
be there.

Every client of the day speaks from a loopback address of its own (127.23.45.x), which nothing else on the machine
uses, so finding one of them anywhere means the server wrote down a client's address. The server logs at debug,
the most it ever writes, with the default modules (archive, offline store, group chat, uploads, PEP).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
from pathlib import Path
from xml.sax.saxutils import quoteattr

import aiohttp
from slixmpp import JID
import pytest

from muc_helpers import SERVICE as MUC_SERVICE, is_groupchat, is_room_presence
from sakari_process import DOMAIN, run_cli
from test_omemo import decrypted_messages, learn_devices, omemo_client, send_encrypted
from test_upload import NS as NS_UPLOAD, SERVICE as UPLOAD_SERVICE
from xmpp_harness import WAIT, befriend, is_message, is_presence, login, q

pytestmark = pytest.mark.asyncio

ADDRESSES = {
    "alice": "127.23.45.67",
    "bob": "127.23.45.68",
    "carol": "127.23.45.69",
    "dave": "127.23.45.70",  # deletes the account at the end of the day
    "guesser": "127.23.45.71",  # a wrong password
    "browser": "127.23.45.72",  # uploads and downloads over HTTPS
}

CONFIG = """
log_level = "debug"

[limits]
exempt_networks = []
"""


class From:
    """A session whose logins come from one address (for the helpers that call ``session.login``)."""

    def __init__(self, session, source: str) -> None:
        self.session, self.source = session, source

    async def login(self, account=None, **kwargs):
        return await self.session.login(account, source=self.source, **kwargs)


def forms_of(address: str) -> list[bytes]:
    """The ways an address could be written down: text, IPv4-mapped IPv6, and the four bytes themselves."""
    return [address.encode(), f"::ffff:{address}".encode(), socket.inet_aton(address)]


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file() and needle in p.read_bytes()]


async def a_day(server, session) -> tuple[list[str], list[str]]:
    """Returns the plaintexts sent end-to-end encrypted, and the ids of encrypted messages that were stored."""
    alice = await omemo_client(From(session, ADDRESSES["alice"]))
    bob = await omemo_client(From(session, ADDRESSES["bob"]))
    carol = await session.login(label="carol", source=ADDRESSES["carol"])

    # Contacts, presence, plain chat.
    await befriend(alice, bob)
    await befriend(alice, carol)
    carol.presence(show="away", status="at lunch")
    await alice.expect(is_presence(sender=carol.bare, show="away"))
    alice.message(carol.jid, "plain hello, carol")
    await carol.expect(is_message(body="plain hello, carol"))

    # OMEMO between alice and bob: online, both ways, archived by the server.
    await learn_devices(alice, bob)
    await learn_devices(bob, alice)
    inbox_alice, inbox_bob = decrypted_messages(alice), decrypted_messages(bob)
    secrets_sent: list[str] = []
    for sender, recipient, inbox in ((alice, bob, inbox_bob), (bob, alice, inbox_alice), (alice, bob, inbox_bob)):
        secret = f"omemo-secret-{secrets.token_hex(8)}"
        secrets_sent.append(secret)
        await send_encrypted(sender, recipient.bare, secret)
        body, _ = await asyncio.wait_for(inbox.get(), WAIT * 3)
        assert body == secret

    # A group chat.
    room = f"day{secrets.token_hex(3)}@{MUC_SERVICE}"
    carol.send(f"<presence to='{room}/carol'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await carol.expect(is_room_presence(f"{room}/carol", code="201"))
    await carol.iq("set", "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>", to=room)
    alice.send(f"<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await alice.expect(is_room_presence(f"{room}/alice", code="110"))
    carol.message(room, "lunch at noon?", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/carol", "lunch at noon?"))

    # An upload over HTTPS from another address, fetched again.
    result = await alice.iq("get", f"<request xmlns='{NS_UPLOAD}' filename='photo.jpg' size='11' "
                                   "content-type='image/jpeg'/>", to=UPLOAD_SERVICE)
    slot = result.find(q(NS_UPLOAD, "slot"))
    put_url, get_url = slot.find(q(NS_UPLOAD, "put")).get("url"), slot.find(q(NS_UPLOAD, "get")).get("url")
    trusting = ssl.create_default_context(cafile=str(server.data_dir / "certs" / "ca.crt"))
    connector = aiohttp.TCPConnector(ssl=trusting, local_addr=(ADDRESSES["browser"], 0), family=socket.AF_INET)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.put(put_url, data=b"jpeg-ish!!!", headers={"Content-Type": "image/jpeg"}) as r:
            assert r.status in (200, 201), await r.text()
        async with http.get(get_url) as r:
            assert r.status == 200 and await r.read() == b"jpeg-ish!!!"
    alice.message(bob.bare, get_url)

    # Bob goes away; alice writes to him encrypted: offline store and archive hold it.
    await bob.close()
    await alice.expect(is_presence(sender=bob.bare, type="unavailable"))
    offline_secret = f"omemo-offline-{secrets.token_hex(8)}"
    secrets_sent.append(offline_secret)
    plugin = alice.xmpp.plugin["xep_0384"]
    message = alice.xmpp.make_message(mto=bob.bare, mtype="chat")
    message["body"] = offline_secret
    encrypted, errors = await plugin.encrypt_message(message, JID(bob.bare))
    assert encrypted is not None and not errors, errors
    stored_id = f"offline-{secrets.token_hex(6)}"
    encrypted["id"] = stored_id
    encrypted.send()
    await alice.ping_server()

    # A wrong password from another address; dave's day, then dave deletes his account.
    guess = server.new_account()
    with pytest.raises(Exception):
        await login(server, guess, password="not-it", source=ADDRESSES["guesser"])
    dave = await session.login(label="dave", source=ADDRESSES["dave"])
    dave.message(carol.jid, "bye, I am leaving")
    await carol.expect(is_message(body="bye, I am leaving"))
    dave.send("<iq type='set' id='cancel-1'><query xmlns='jabber:iq:register'><remove/></query></iq>")
    await dave.expect_disconnect()
    assert dave.account.jid not in run_cli("user", "list", "--data-dir", str(server.data_dir), "--domain", DOMAIN).stdout

    await alice.close()
    await carol.close()
    return secrets_sent, [stored_id]


async def test_after_a_day_of_use_no_client_address_and_no_encrypted_plaintext_is_stored_or_logged(spawn_server, session_for):
    with spawn_server("privacy-day", CONFIG, accounts=8) as server:
        secrets_sent, stored_ids = await a_day(server, session_for(server))
        server.stop()  # a clean stop: the database's write-ahead log is checkpointed, every log line flushed

        data, log = server.data_dir, "\n".join(server.log).encode()
        # The search can find what is there: the encrypted message was stored, and uploads are in the data dir.
        assert files_holding(data, stored_ids[0].encode()), "the encrypted offline message was not stored at all"
        assert files_holding(data / "uploads", b"jpeg-ish!!!"), "the upload is not where the search looks"
        assert b"event=" in log

        for who, address in ADDRESSES.items():
            for form in forms_of(address):
                assert not files_holding(data, form), f"{who}'s address {address} ({form!r}) is stored in {files_holding(data, form)}"
                assert form not in log, f"{who}'s address {address} is in the log"
        for secret in secrets_sent:
            assert not files_holding(data, secret.encode()), f"the plaintext of an encrypted message is stored: {files_holding(data, secret.encode())}"
            assert secret.encode() not in log, "the plaintext of an encrypted message is in the log"
