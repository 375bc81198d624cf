"""Prosody's scansion scripts disco_self.scs, lastactivity.scs, uptime.scs,
vcard_temp.scs, version.scs and server_contact_info.scs, replayed against
Sakari over raw XML streams (see test_peer_scansion.py for the matching
rules).

version.scs and server_contact_info.scs assume the configuration in Prosody's
spec/scansion/prosody.cfg.lua: mod_version on, and its contact_info table.
Those two run on a server of their own with the Sakari equivalent.
"""

import pytest
import pytest_asyncio
from sakari_process import DOMAIN
from test_peer_scansion import ANY, cast_on

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cast(server):
    with cast_on(server) as c:
        yield c

# Sakari's default module list plus "version", and the contact addresses of
# Prosody's scansion configuration.
SCANSION_LIKE_CONFIG = """
[modules]
enabled = ["roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking",
           "contact_info", "version"]

[contact_info]
abuse = ["mailto:abuse@localhost", "xmpp:abuse@localhost"]
admin = ["mailto:admin@localhost", "xmpp:admin@localhost"]
feedback = ["http://localhost/feedback.html", "mailto:feedback@localhost", "xmpp:feedback@localhost"]
sales = ["xmpp:sales@localhost"]
security = ["xmpp:security@localhost"]
status = ["gopher://status.localhost"]
support = ["https://localhost/support.html", "xmpp:support@localhost"]
"""


@pytest.fixture(scope="module")
def configured_server(spawn_server):
    with spawn_server("scansion-config-server", SCANSION_LIKE_CONFIG, accounts=4) as srv:
        yield srv


@pytest_asyncio.fixture
async def configured_cast(configured_server):
    with cast_on(configured_server) as c:
        yield c


async def test_disco_info_of_own_account(cast):
    """disco_self.scs; XEP-0030 §3.1 and RFC 6120 §10.3.3 (an IQ with no 'to'
    is answered by the server for the account): identity account/registered,
    the disco#info and disco#items features; anything else may be there."""
    romeo = cast.client("Romeo")
    await romeo.connects()
    await romeo.sends("<iq type='get' id='info1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    await romeo.receives(
        "<iq type='result' id='info1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info' s:strict='false'>"
        "<identity category='account' type='registered'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/>"
        "<feature var='http://jabber.org/protocol/disco#items'/>"
        "</query></iq>"
    )
    await romeo.disconnects()




async def test_own_last_activity_after_going_unavailable_has_its_status(cast):
    """lastactivity.scs; RFC 6121 §4.5.2 (the unavailable presence comes back
    to the resource that sent it), XEP-0012 §4 (last activity of an account:
    seconds since it went offline, with the status text of its last
    unavailable presence)."""
    romeo = cast.client("Romeo")
    await romeo.connects()
    await romeo.sends("<presence><status>Hello</status></presence>")
    await romeo.receives(f"<presence from='{romeo.full_jid}'><status>Hello</status></presence>")
    await romeo.sends("<presence type='unavailable'><status>Goodbye</status></presence>")
    await romeo.receives(
        f"<presence from='{romeo.full_jid}' type='unavailable'><status>Goodbye</status></presence>", timeout=3
    )
    await romeo.sends("<iq id='a' type='get'><query xmlns='jabber:iq:last'/></iq>")
    await romeo.receives(f"<iq type='result' id='a'><query xmlns='jabber:iq:last' seconds='{ANY}'>Goodbye</query></iq>")
    await romeo.disconnects()


async def test_last_activity_of_the_server_is_its_uptime(cast):
    """uptime.scs; XEP-0012 §5: to a server, seconds since it started."""
    romeo = cast.client("Romeo")
    await romeo.connects()
    await romeo.sends(f"<iq id='a' type='get' to='{DOMAIN}'><query xmlns='jabber:iq:last'/></iq>")
    reply = await romeo.receives(
        f"<iq type='result' id='a' from='{DOMAIN}'><query xmlns='jabber:iq:last' seconds='{ANY}'/></iq>"
    )
    seconds = reply.find("{jabber:iq:last}query").get("seconds")
    assert seconds.isdigit(), f"seconds must be a non-negative integer (XEP-0012 §2), got {seconds!r}"
    await romeo.disconnects()


VCARD = (
    "<vCard xmlns='vcard-temp'>"
    "<FN>Romeo Montague</FN>"
    "<N><FAMILY>Montague</FAMILY><GIVEN>Romeo</GIVEN><MIDDLE/><PREFIX/><SUFFIX/></N>"
    "</vCard>"
)


async def test_vcard_is_stored_whole_and_readable_by_anyone(cast):
    """vcard_temp.scs; XEP-0054 §3.2 (publish: result), §3.1 (own vCard
    comes back as stored), §3.3 (another user's vCard, from its bare JID)."""
    romeo = cast.client("Romeo")
    juliet = cast.client("Juliet")
    await romeo.connects()
    await romeo.sends(f"<iq id='lx3' type='set'>{VCARD}</iq>")
    await romeo.receives(f"<iq type='result' id='lx3' to='{romeo.full_jid}'/>")
    await romeo.sends("<iq id='lx4' type='get'><vCard xmlns='vcard-temp'/></iq>")
    await romeo.receives(f"<iq type='result' id='lx4' to='{romeo.full_jid}'>{VCARD}</iq>")
    await romeo.disconnects()

    await juliet.connects()
    await juliet.sends(f"<iq type='get' id='lx3' to='{romeo.bare_jid}'><vCard xmlns='vcard-temp'/></iq>")
    await juliet.receives(f"<iq type='result' from='{romeo.bare_jid}' id='lx3' to='{juliet.full_jid}'>{VCARD}</iq>")
    await juliet.disconnects()


async def test_software_version_names_the_server_and_no_os(configured_cast):
    """version.scs with mod_version on and hide_os_type; XEP-0092 §3: <name/>
    and <version/>, and (hidden here) no <os/>. The script expects the name
    'Prosody'; the equivalent here is Sakari's own name."""
    romeo = configured_cast.client("Romeo", resource="dfaZpuxV")
    await romeo.connects()
    await romeo.sends(f"<iq id='lx2' to='{DOMAIN}' type='get'><query xmlns='jabber:iq:version'/></iq>")
    await romeo.receives(
        f"<iq id='lx2' from='{DOMAIN}' type='result'>"
        "<query xmlns='jabber:iq:version' s:strict='true'><name>Sakari</name><version s:strict='false'/></query>"
        "</iq>"
    )
    await romeo.disconnects()


async def test_server_disco_info_carries_the_contact_addresses(configured_cast):
    """server_contact_info.scs; XEP-0157 §2-§3: a serverinfo data form in the
    server's disco#info, one list-multi field per kind of address, the values
    as configured."""
    romeo = configured_cast.client("Romeo")
    await romeo.connects()
    await romeo.sends(f"<iq type='get' id='lx2' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")

    def field(var: str, *values: str) -> str:
        return f"<field type='list-multi' var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"

    await romeo.receives(
        f"<iq from='{DOMAIN}' id='lx2' type='result'>"
        "<query xmlns='http://jabber.org/protocol/disco#info' s:strict='false'>"
        "<x xmlns='jabber:x:data' type='result'>"
        "<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/network/serverinfo</value></field>"
        + field("abuse-addresses", "mailto:abuse@localhost", "xmpp:abuse@localhost")
        + field("admin-addresses", "mailto:admin@localhost", "xmpp:admin@localhost")
        + field("feedback-addresses", "http://localhost/feedback.html", "mailto:feedback@localhost",
                "xmpp:feedback@localhost")
        + field("sales-addresses", "xmpp:sales@localhost")
        + field("security-addresses", "xmpp:security@localhost")
        + field("status-addresses", "gopher://status.localhost")
        + field("support-addresses", "https://localhost/support.html", "xmpp:support@localhost")
        + "</x></query></iq>"
    )
    await romeo.disconnects()
