"""Matrix through slidge + matridge (PyPI, the 0.4 line) as a privileged component of a real Sakari.

Synapse (PyPI, SQLite, no federation, no key servers) is the homeserver, on loopback; a matrix-nio
client plays the person on Element. An XMPP user (slixmpp) registers with the gateway (XEP-0077)
with her Matrix account, then:

- a Matrix room she is invited to reaches her as a XEP-0249 invitation; she joins it as a group
  chat and messages go both ways; an edit (XEP-0308 / m.replace) and a reaction (XEP-0444 /
  m.reaction) cross both ways;
- a Matrix direct chat reaches her the same way (matridge 0.4 has no 1:1 chats), and is joinable.

matridge runs from matridge_launcher.py, which switches off slidge's avatar fetch from the internet
and works around a slidge bug with mixed-case room ids (see there). The configurations used here
are the ones in docs/bridges.md.
"""

from __future__ import annotations

import asyncio
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
import pytest_asyncio

from bridge_peers import MATRIDGE_REQUIREMENTS, SYNAPSE_REQUIREMENTS, Matridge, Synapse, prepare_venvs, unavailable
from sakari_process import free_ports
from xmpp_harness import Client, is_message, is_presence, q

try:
    import nio
except ImportError:  # pragma: no cover - matrix-nio is in the test extra
    nio = None

# The first test also bears the session's set-up: on a fresh machine, pip installing Synapse and
# matridge into their environments takes a minute or two, beyond the suite's default of 120 s.
pytestmark = pytest.mark.timeout(600)

GATEWAY = "matrix.localhost"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_CONFERENCE = "jabber:x:conference"
NS_REGISTER = "jabber:iq:register"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_STANZA_ID = "urn:xmpp:sid:0"
WAIT = 30.0  # the gateway's first sync and a room's first join take a few seconds


@pytest.fixture(scope="session")
def matrix_bridge(spawn_server, tmp_path_factory):
    """Synapse, a Sakari with matridge's component and its privileges, and matridge connected to it."""
    if nio is None:
        unavailable("matrix-nio is needed (pip install matrix-nio, in the test extra)")
    pythons = prepare_venvs({"synapse": SYNAPSE_REQUIREMENTS, "matridge": MATRIDGE_REQUIREMENTS})
    synapse = Synapse(tmp_path_factory.mktemp("synapse"), pythons["synapse"])
    (port,) = free_ports(1)
    secret = secrets.token_hex(16)
    config = f"""
[modules]
enabled = ["roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking",
           "contact_info", "carbons", "pep"]

[network]
component_port = {port}

[[components]]
domain = "{GATEWAY}"
secret = "{secret}"
name = "Matrix"

[components.privileges]
roster = "both"
message = "outgoing"

[components.privileges.iq]
"http://jabber.org/protocol/pubsub" = "both"
"http://jabber.org/protocol/pubsub#owner" = "set"
"urn:xmpp:http:upload:0" = "get"
"""
    matridge = None
    try:
        synapse.start()
        with spawn_server("matridge-server", config) as srv:
            matridge = Matridge(tmp_path_factory.mktemp("matridge"), pythons["matridge"], GATEWAY, secret, port)
            try:
                matridge.start(srv)
                srv.synapse = synapse
                srv.matridge = matridge
                yield srv
            finally:
                matridge.stop()
    finally:
        synapse.stop()


@pytest.fixture
def bridge_logs(matrix_bridge):
    """What matridge and Synapse said during the test: pytest shows it with a failing test only."""
    marks = (len(matrix_bridge.matridge.log), len(matrix_bridge.synapse.log))
    yield
    print("--- matridge ---", *matrix_bridge.matridge.log[marks[0]:][-200:], sep="\n")
    print("--- synapse ---", *matrix_bridge.synapse.log[marks[1]:][-40:], sep="\n")


@pytest_asyncio.fixture
async def users(matrix_bridge, session_for, bridge_logs):
    return session_for(matrix_bridge)


class MatrixUser:
    """A person on Element, played by matrix-nio: every event of every joined room is kept, in order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []  # each event's JSON, with its room_id

    @property
    def user_id(self) -> str:
        return self.client.user_id

    async def sync(self) -> None:
        response = await self.client.sync(timeout=500)
        if isinstance(response, nio.SyncError):
            raise AssertionError(f"sync failed: {response}")
        for room_id, room in response.rooms.join.items():
            for event in room.timeline.events:
                self.events.append(dict(event.source, room_id=room_id))

    async def wait_event(self, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if pred(event):
                    return event
            seen = len(self.events)
            if loop.time() > deadline:
                got = "\n  ".join(str(e.get("type")) + " " + str(e.get("content"))[:200] for e in self.events[-15:])
                raise AssertionError(f"{self.user_id} waited {timeout}s for {what}; events:\n  {got}")
            await self.sync()

    async def send(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        response = await self.client.room_send(room_id, event_type, content)
        if not isinstance(response, nio.RoomSendResponse):
            raise AssertionError(f"room_send failed: {response}")
        return response.event_id


@pytest_asyncio.fixture
async def matrix_user(matrix_bridge):
    made: list[MatrixUser] = []

    async def login(prefix: str = "element") -> MatrixUser:
        user_id, password = matrix_bridge.synapse.new_user(prefix)
        client = nio.AsyncClient(matrix_bridge.synapse.url, user_id)
        response = await client.login(password, device_name="sakari-tests")
        assert isinstance(response, nio.LoginResponse), response
        user = MatrixUser(client)
        made.append(user)
        await user.sync()  # from here on, sync returns what is new
        return user

    yield login
    for user in made:
        await user.client.close()


async def register_with_gateway(user: Client, synapse: Synapse) -> str:
    """XEP-0077 with the gateway, as a client's 'register' button does; returns the Matrix id used."""
    matrix_id, password = synapse.new_user("xmpp")
    form = await user.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=GATEWAY)
    fields = {f.get("var") for f in form.iter(q("jabber:x:data", "field"))}
    assert {"homeserver", "username", "password"} <= fields, ET.tostring(form, encoding="unicode")
    values = {"homeserver": synapse.url, "username": matrix_id[1:].split(":")[0], "password": password, "device": "Sakari"}
    submitted = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in values.items())
    await user.iq("set", f"<query xmlns='{NS_REGISTER}'><x xmlns='jabber:x:data' type='submit'>{submitted}</x></query>", to=GATEWAY)

    def logged_in(el: ET.Element) -> bool:
        status = el.find(q("jabber:client", "status"))
        return is_presence(sender=GATEWAY)(el) and status is not None and (status.text or "").startswith("Logged in as")

    await user.expect(logged_in, "the gateway's presence 'Logged in as'", timeout=WAIT)
    return matrix_id


def invitation(el: ET.Element) -> bool:
    x = el.find(q(NS_CONFERENCE, "x"))
    return el.tag == q("jabber:client", "message") and x is not None and x.get("jid", "").endswith("@" + GATEWAY)


invitation.__doc__ = "a XEP-0249 invitation to a room of the gateway"


async def accept_invitation(user: Client, nick: str) -> str:
    """Join the room of the invitation that arrives; returns the room's JID once we are in."""
    invite = await user.expect(invitation, timeout=WAIT)
    room = invite.find(q(NS_CONFERENCE, "x")).get("jid")
    assert invite.get("from") == GATEWAY

    def joined(el: ET.Element) -> bool:
        x = el.find(q(NS_MUC_USER, "x"))
        return (
            # The gateway may rename us to our Matrix display name (status 210): 110 marks our own presence.
            el.tag == q("jabber:client", "presence") and el.get("from", "").startswith(room + "/") and el.get("type") is None
            and x is not None and any(s.get("code") == "110" for s in x.findall(q(NS_MUC_USER, "status")))
        )

    user.send(f"<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'/></presence>")
    await user.expect(joined, f"our own presence in {room}", timeout=WAIT)
    return room


def from_room(room: str, body: str) -> Callable[[ET.Element], bool]:
    def pred(el: ET.Element) -> bool:
        return is_message(body, type="groupchat")(el) and el.get("from", "").startswith(room + "/")

    pred.__doc__ = f"groupchat {body!r} from {room}"
    return pred


def text_event(sender: str, body: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == "m.room.message" and e.get("sender") == sender and e["content"].get("body") == body


def message_id(el: ET.Element) -> str:
    """The id a group chat message is referred to by (XEP-0359's stanza-id, else the message's id)."""
    sid = el.find(q(NS_STANZA_ID, "stanza-id"))
    return sid.get("id") if sid is not None else el.get("id")


async def test_a_matrix_room_is_a_group_chat_where_messages_edits_and_reactions_cross_both_ways(users, matrix_user, matrix_bridge) -> None:
    alice = await users.login()
    alice_mx = await register_with_gateway(alice, matrix_bridge.synapse)
    bob = await matrix_user("bob")
    created = await bob.client.room_create(name="Sakari and Matrix", invite=[alice_mx])
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id

    room = await accept_invitation(alice, "alice")
    await bob.wait_event(lambda e: e.get("type") == "m.room.member" and e.get("state_key") == alice_mx
                         and e["content"].get("membership") == "join", "alice joining on Matrix")

    # Matrix → XMPP, and XMPP → Matrix.
    bob_event = await bob.send(room_id, {"msgtype": "m.text", "body": "hello from Matrix"})
    from_bob = await alice.expect(from_room(room, "hello from Matrix"), timeout=WAIT)
    alice.message(room, "hello from XMPP", type="groupchat", id="alice-1")
    alice_event = await bob.wait_event(text_event(alice_mx, "hello from XMPP"), "alice's message on Matrix")

    # An edit from Matrix arrives as a correction (XEP-0308) of the message it edits.
    await bob.send(room_id, {
        "msgtype": "m.text", "body": "* edited on Matrix",
        "m.new_content": {"msgtype": "m.text", "body": "edited on Matrix"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": bob_event},
    })

    def correction(el: ET.Element) -> bool:
        replace = el.find(q(NS_CORRECT, "replace"))
        return from_room(room, "edited on Matrix")(el) and replace is not None and replace.get("id") in (message_id(from_bob), from_bob.get("id"))

    await alice.expect(correction, "bob's edit as a XEP-0308 correction", timeout=WAIT)

    # A reaction from XMPP (XEP-0444) is an m.reaction on bob's message.
    alice.send(
        f"<message to='{room}' type='groupchat' id='alice-react'><reactions xmlns='{NS_REACTIONS}' id='{message_id(from_bob)}'>"
        "<reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/></message>"
    )
    await bob.wait_event(
        lambda e: e.get("type") == "m.reaction" and e.get("sender") == alice_mx
        and e["content"].get("m.relates_to", {}).get("event_id") == bob_event and e["content"]["m.relates_to"].get("key") == "👍",
        "alice's 👍 as an m.reaction on bob's message",
    )

    # A reaction from Matrix arrives as XEP-0444 reactions on alice's own message.
    await bob.send(room_id, {"m.relates_to": {"rel_type": "m.annotation", "event_id": alice_event["event_id"], "key": "🎉"}}, "m.reaction")

    def reactions(el: ET.Element) -> bool:
        r = el.find(q(NS_REACTIONS, "reactions"))
        return (
            el.get("from", "").startswith(room + "/") and r is not None
            and "🎉" in [x.text for x in r.findall(q(NS_REACTIONS, "reaction"))]
        )

    got = await alice.expect(reactions, "bob's 🎉 as XEP-0444 reactions", timeout=WAIT)
    assert got.find(q(NS_REACTIONS, "reactions")).get("id") in ("alice-1", alice_event["event_id"])

    # An edit from XMPP (XEP-0308) is an m.replace of alice's message on Matrix.
    alice.send(
        f"<message to='{room}' type='groupchat' id='alice-2'><body>hello again from XMPP</body>"
        f"<replace xmlns='{NS_CORRECT}' id='alice-1'/></message>"
    )
    await bob.wait_event(
        lambda e: e.get("type") == "m.room.message" and e.get("sender") == alice_mx
        and e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
        and e["content"]["m.relates_to"].get("event_id") == alice_event["event_id"]
        and e["content"].get("m.new_content", {}).get("body") == "hello again from XMPP",
        "alice's correction as an m.replace",
    )


async def test_a_matrix_direct_chat_reaches_the_xmpp_user_as_a_joinable_invitation(users, matrix_user, matrix_bridge) -> None:
    alice = await users.login()
    alice_mx = await register_with_gateway(alice, matrix_bridge.synapse)
    carol = await matrix_user("carol")
    created = await carol.client.room_create(is_direct=True, invite=[alice_mx], preset=nio.RoomPreset.trusted_private_chat)
    assert isinstance(created, nio.RoomCreateResponse), created

    room = await accept_invitation(alice, "alice")
    await carol.send(created.room_id, {"msgtype": "m.text", "body": "just between us"})
    await alice.expect(from_room(room, "just between us"), timeout=WAIT)
    alice.message(room, "agreed", type="groupchat")
    await carol.wait_event(text_event(alice_mx, "agreed"), "alice's answer on Matrix")
