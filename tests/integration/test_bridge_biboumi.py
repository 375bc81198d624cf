"""IRC through biboumi (Debian's package) as a component of a real Sakari, against Debian's ngircd.

An XMPP user (slixmpp) joins ``#channel%127.0.0.1@biboumi.localhost`` and talks with a person on
IRC (a plain socket client) in the channel and in private, both ways. The IRC server's port is
set the way a user would set it: with biboumi's ``configure`` ad-hoc command on
``127.0.0.1@biboumi.localhost``. The IRC server is named by its address: biboumi resolves other
names with its own DNS client, which would leave loopback.

The configurations used here are the ones in docs/bridges.md.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import pytest
import pytest_asyncio

from bridge_peers import Biboumi, IrcClient, Ngircd
from sakari_process import HOST, free_ports
from xmpp_harness import Client, is_message, is_presence, q

DOMAIN = "biboumi.localhost"
IRC = f"{HOST}@{DOMAIN}"  # the IRC server, as biboumi names it
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"


@pytest.fixture(scope="session")
def irc_network(tmp_path_factory):
    ngircd = Ngircd(tmp_path_factory.mktemp("ngircd"))
    try:
        ngircd.start()
        yield ngircd
    finally:
        ngircd.stop()


@pytest.fixture(scope="session")
def biboumi_server(spawn_server, irc_network, tmp_path_factory):
    """A fresh Sakari with biboumi connected to it as a component."""
    (port,) = free_ports(1)
    secret = secrets.token_hex(16)
    config = f"""
[network]
component_port = {port}

[[components]]
domain = "{DOMAIN}"
secret = "{secret}"
name = "IRC"
"""
    with spawn_server("biboumi-server", config) as srv:
        biboumi = Biboumi(tmp_path_factory.mktemp("biboumi"), DOMAIN, secret, port)
        try:
            biboumi.start(srv)
            srv.irc_port = irc_network.port
            srv.biboumi = biboumi
            yield srv
        finally:
            biboumi.stop()


@pytest_asyncio.fixture
async def users(biboumi_server, session_for):
    return session_for(biboumi_server)


@pytest_asyncio.fixture
async def irc(irc_network):
    made: list[IrcClient] = []

    async def connect(nick: str) -> IrcClient:
        client = IrcClient(nick)
        made.append(client)
        await client.connect(irc_network.port)
        return client

    yield connect
    for client in made:
        await client.close()


async def use_irc_port(user: Client, port: int) -> None:
    """biboumi's per-user server settings (XEP-0050 'configure'): plain IRC on the test network's port."""
    start = await user.iq("set", f"<command xmlns='{NS_COMMANDS}' node='configure' action='execute'/>", to=IRC)
    command = start.find(q(NS_COMMANDS, "command"))
    assert command is not None and command.get("status") == "executing", ET.tostring(start, encoding="unicode")
    form = (
        "<x xmlns='jabber:x:data' type='submit'>"
        f"<field var='ports'><value>{port}</value></field><field var='tls_ports'/></x>"
    )
    done = await user.iq(
        "set",
        f"<command xmlns='{NS_COMMANDS}' node='configure' sessionid='{command.get('sessionid')}' action='complete'>{form}</command>",
        to=IRC,
    )
    assert done.find(q(NS_COMMANDS, "command")).get("status") == "completed"


def self_presence(room: str):
    def pred(el: ET.Element) -> bool:
        x = el.find(q(NS_MUC_USER, "x"))
        return (
            el.tag == q("jabber:client", "presence") and el.get("from", "").startswith(room + "/") and el.get("type") is None
            and x is not None and any(s.get("code") == "110" for s in x.findall(q(NS_MUC_USER, "status")))
        )

    pred.__doc__ = f"our own presence in {room} (status 110)"
    return pred


def privmsg(sender: str, target: str, text: str):
    return lambda line: line.startswith(f":{sender}!") and line.endswith(f" PRIVMSG {target} :{text}")


async def test_an_xmpp_user_and_an_irc_user_talk_in_a_channel(users, irc, biboumi_server) -> None:
    channel = "#sakari" + secrets.token_hex(3)
    room = f"{channel}%{IRC}"
    ircbob = await irc("ircbob")
    ircbob.send(f"JOIN {channel}")
    await ircbob.wait_for(lambda line: f" 366 ircbob {channel} " in line, "the end of NAMES")

    alice = await users.login()
    await use_irc_port(alice, biboumi_server.irc_port)
    alice.send(f"<presence to='{room}/alice'><x xmlns='{NS_MUC}'/></presence>")
    await alice.expect(self_presence(room), timeout=20)
    # ircbob is an occupant, seen from XMPP; alice has joined the channel, seen from IRC.
    await alice.expect(is_presence(sender=f"{room}/ircbob"))
    await ircbob.wait_for(lambda line: line.startswith(":alice!") and line.split(" ")[1:3] in (["JOIN", channel], ["JOIN", ":" + channel]),
                          "alice joining")

    alice.message(room, "hello from XMPP", type="groupchat")
    await ircbob.wait_for(privmsg("alice", channel, "hello from XMPP"), "alice's message on IRC")
    ircbob.send(f"PRIVMSG {channel} :hello from IRC")
    got = await alice.expect(is_message("hello from IRC", sender=f"{room}/ircbob", type="groupchat"))
    assert got.get("to") == alice.jid
    # Her own message comes back to her as the room's echo, as in any group chat.
    await alice.expect(is_message("hello from XMPP", sender=f"{room}/alice", type="groupchat"))


async def test_an_xmpp_user_and_an_irc_user_talk_in_private(users, irc, biboumi_server) -> None:
    irccarol = await irc("irccarol")
    bob = await users.login()
    await use_irc_port(bob, biboumi_server.irc_port)
    # Joining a channel connects bob to the IRC network under his nickname.
    room = f"#priv{secrets.token_hex(3)}%{IRC}"
    bob.send(f"<presence to='{room}/xbob'><x xmlns='{NS_MUC}'/></presence>")
    await bob.expect(self_presence(room), timeout=20)

    bob.message(f"irccarol%{IRC}", "a private word", type="chat")
    await irccarol.wait_for(privmsg("xbob", "irccarol", "a private word"), "bob's private message on IRC")
    irccarol.send("PRIVMSG xbob :and one back")
    await bob.expect(is_message("and one back", sender=f"irccarol%{IRC}", type="chat"))
