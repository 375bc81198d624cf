"""Prosody's scansion scripts issue505.scs, issue978.scs, issue978-multi.scs
and issue1224.scs are about multi-user chat (XEP-0045) on Prosody's
conference.localhost component, which Sakari does not have. What runs here:
the opening all four share (create a room by joining it), which fails on
Sakari at its first expectation, and what a client gets instead.
"""

import pytest
import pytest_asyncio
from test_peer_scansion import cast_on

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cast(server):
    with cast_on(server) as c:
        yield c

ROOM = "room@conference.localhost"


@pytest.mark.xfail(raises=AssertionError, strict=True, reason=(
    "Sakari has no XEP-0045 service: conference.localhost does not exist, so the join bounces "
    "with remote-server-not-found instead of creating the room."))
async def test_joining_a_new_room_creates_it_with_the_joiner_as_owner(cast):
    """The opening of issue505/issue978/issue978-multi/issue1224.scs; XEP-0045
    §10.1.1: the first occupant creates the room, gets its own presence with
    status codes 201 (new room) and 110 (self), owner/moderator, then the
    (empty) subject."""
    romeo = cast.client("Romeo")
    await romeo.connects()
    await romeo.sends(f"<presence to='{ROOM}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await romeo.receives(
        f"<presence from='{ROOM}/Romeo'><x xmlns='http://jabber.org/protocol/muc#user'>"
        "<status code='201'/>"
        f"<item jid='{romeo.full_jid}' affiliation='owner' role='moderator'/>"
        "<status code='110'/>"
        "</x></presence>",
        timeout=3,
    )
    await romeo.receives(f"<message type='groupchat' from='{ROOM}'><subject/></message>", timeout=3)
    await romeo.disconnects()


async def test_joining_a_room_on_a_missing_service_bounces_at_once(cast):
    """What those scripts see on Sakari instead: RFC 6120 §8.3.3.16 / §10.4,
    the domain cannot be reached (no federation to it, no such component), so
    the presence comes back as an error from the room JID, without delay."""
    romeo = cast.client("Romeo")
    await romeo.connects()
    await romeo.sends(f"<presence to='{ROOM}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await romeo.receives(
        f"<presence type='error' from='{ROOM}/Romeo'><error type='cancel'>"
        "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
    )
    await romeo.disconnects()
