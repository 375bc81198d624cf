"""Prosody's scansion scripts issue505.scs, issue978.scs and issue1224.scs about
multi-user chat (XEP-0045) on conference.localhost, replayed against Sakari
over raw XML streams (see test_peer_scansion.py for the matching rules).

Each script uses the room name "room"; here each test gets a room of its own,
since the tests share one server.
"""

import secrets

import pytest
import pytest_asyncio
from muc_helpers import muc_config
from test_peer_scansion import cast_on

pytestmark = pytest.mark.asyncio

MUC = "http://jabber.org/protocol/muc"


@pytest.fixture(scope="module")
def muc_server(spawn_server):
    with spawn_server("muc-peer", muc_config()) as srv:
        yield srv


@pytest_asyncio.fixture
async def cast(muc_server):
    with cast_on(muc_server) as c:
        yield c


@pytest.fixture
def room():
    return f"room-{secrets.token_hex(4)}@conference.localhost"


async def create_room(romeo, room):
    """The opening all three scripts share (XEP-0045 §10.1.1): the first occupant creates the room, gets its
    own presence with 201 (new room) and 110 (self) as owner and moderator, the empty subject, and accepts the
    default configuration."""
    await romeo.connects()
    await romeo.sends(f"<presence to='{room}/Romeo'><x xmlns='{MUC}'/></presence>")
    await romeo.receives(
        f"<presence from='{room}/Romeo'><x xmlns='{MUC}#user'>"
        "<status code='201'/>"
        f"<item jid='{romeo.full_jid}' affiliation='owner' role='moderator'/>"
        "<status code='110'/>"
        "</x></presence>",
    )
    await romeo.receives(f"<message type='groupchat' from='{room}'><subject/></message>")


async def submit_config(romeo, room, fields=""):
    await romeo.sends(
        f"<iq id='config1' to='{room}' type='set'><query xmlns='{MUC}#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
        f"<value>{MUC}#roomconfig</value></field>{fields}</x></query></iq>"
    )
    await romeo.receives(f"<iq id='config1' from='{room}' type='result'/>")


async def juliet_joins(romeo, juliet, room):
    await juliet.connects()
    await juliet.sends(f"<presence to='{room}/Juliet'><x xmlns='{MUC}'/></presence>")
    await juliet.receives(f"<presence from='{room}/Romeo'/>")
    await juliet.receives(f"<presence from='{room}/Juliet'/>")
    await juliet.receives(f"<message type='groupchat' from='{room}'><subject/></message>")
    await romeo.receives(f"<presence from='{room}/Juliet'/>")


async def test_joining_a_new_room_creates_it_with_the_joiner_as_owner(cast, room):
    romeo = cast.client("Romeo")
    await create_room(romeo, room)
    await submit_config(romeo, room)
    await romeo.disconnects()


async def test_issue505_a_leaving_occupants_status_reaches_the_others(cast, room):
    """issue505.scs: the status text of a leaving occupant is in its unavailable presence (XEP-0045 §7.14)."""
    romeo, juliet = cast.client("Romeo"), cast.client("Juliet")
    await create_room(romeo, room)
    await submit_config(romeo, room)
    await juliet_joins(romeo, juliet, room)
    await juliet.sends(f"<presence type='unavailable' to='{room}'><status>Farewell</status></presence>")
    await romeo.receives(
        f"<presence type='unavailable' from='{room}/Juliet'><status>Farewell</status>"
        f"<x xmlns='{MUC}#user'><item jid='{juliet.full_jid}' affiliation='none' role='none'/></x></presence>"
    )


async def test_issue978_an_occupant_whose_client_errors_is_removed_with_the_error(cast, room):
    """issue978.scs: a presence error from an occupant's client takes it out of the room (status 333), and
    the others see why."""
    romeo, juliet = cast.client("Romeo"), cast.client("Juliet")
    await create_room(romeo, room)
    await submit_config(romeo, room, "<field var='muc#roomconfig_whois'><value>anyone</value></field>")
    await juliet_joins(romeo, juliet, room)
    await juliet.sends(
        f"<presence type='error' to='{room}'><error type='cancel'>"
        "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Test error</text></error></presence>"
    )
    await romeo.receives(
        f"<presence type='unavailable' from='{room}/Juliet'>"
        "<status>Kicked: service unavailable: Test error</status>"
        f"<x xmlns='{MUC}#user'><status code='333'/>"
        f"<item jid='{juliet.full_jid}' affiliation='none' role='none'/></x></presence>"
    )


async def test_issue1224_membership_by_nick_names_the_actor(cast, room):
    """issue1224.scs: an affiliation given by nick (XEP-0045 §9.3) reaches everyone, with the actor; only
    those who may see real JIDs see the actor's."""
    romeo, juliet = cast.client("Romeo"), cast.client("Juliet")
    await create_room(romeo, room)
    await submit_config(romeo, room)
    await romeo.sends(
        f"<iq id='member1' to='{room}' type='set'><query xmlns='{MUC}#admin'>"
        f"<item affiliation='member' jid='{juliet.bare_jid}'/></query></iq>"
    )
    await romeo.receives(f"<iq from='{room}' id='member1' type='result'/>")
    await juliet_joins(romeo, juliet, room)
    await romeo.sends(
        f"<iq id='member1' to='{room}' type='set'><query xmlns='{MUC}#admin'>"
        "<item affiliation='member' nick='Juliet'/></query></iq>"
    )
    await romeo.receives(
        f"<presence from='{room}/Juliet'><x xmlns='{MUC}#user'>"
        f"<item affiliation='member' role='participant' jid='{juliet.full_jid}'>"
        f"<actor jid='{romeo.full_jid}' nick='Romeo'/></item></x></presence>"
    )
    await romeo.receives(f"<iq type='result' id='member1' from='{room}'/>")
    await juliet.receives(
        f"<presence from='{room}/Juliet'><x xmlns='{MUC}#user'>"
        f"<item affiliation='member' role='participant' jid='{juliet.full_jid}'><actor nick='Romeo'/></item>"
        "<status code='110'/></x></presence>"
    )


async def test_joining_a_room_on_a_missing_service_bounces_at_once(cast):
    """A domain that is not served: RFC 6120 §8.3.3.16 / §10.4, the presence comes back as an error from the
    room JID, without delay."""
    romeo = cast.client("Romeo")
    await romeo.connects()
    await romeo.sends(f"<presence to='room@nowhere.localhost/Romeo'><x xmlns='{MUC}'/></presence>")
    await romeo.receives(
        "<presence type='error' from='room@nowhere.localhost/Romeo'><error type='cancel'>"
        "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
    )
    await romeo.disconnects()
