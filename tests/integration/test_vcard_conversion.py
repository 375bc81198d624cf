"""XEP-0398 against a real server: a vcard-temp comes back whole as it was set, a PEP avatar is served through
vcard-temp to those who may see it, a vcard-temp photo becomes a PEP avatar, the vCard4 and vcard-temp fields
meet without losing the others, and presence carries the hash."""

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from pep_helpers import NS_EVENT, announce, is_event, items, pep_config, publish
from xmpp_harness import befriend, is_presence, q

pytestmark = pytest.mark.asyncio

AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
VCARD4 = "urn:xmpp:vcard4"
NS_V4 = "urn:ietf:params:xml:ns:vcard-4.0"
NS_UPDATE = "vcard-temp:x:update"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6300010000050001"
    "0d0a2db40000000049454e44ae426082"
)
AVATAR_ID = hashlib.sha1(PNG).hexdigest()


@pytest.fixture(scope="module")
def conversion_server(spawn_server):
    with spawn_server("vcard-conversion-server", pep_config(modules=["vcard_legacy"]), accounts=20) as srv:
        yield srv


@pytest.fixture
def xmpp(conversion_server, session_for):
    return session_for(conversion_server)


async def publish_avatar(client) -> None:
    await publish(client, AVATAR_DATA, f"<data xmlns='{AVATAR_DATA}'>{base64.b64encode(PNG).decode()}</data>",
                  item_id=AVATAR_ID)
    await publish(client, AVATAR_META, f"<metadata xmlns='{AVATAR_META}'><info id='{AVATAR_ID}' type='image/png' "
                                       f"bytes='{len(PNG)}'/></metadata>", item_id=AVATAR_ID)


async def vcard_of(client, owner: str):
    result = await client.iq("get", "<vCard xmlns='vcard-temp'/>", to=owner)
    return result.find(q("vcard-temp", "vCard"))


def shape(el: ET.Element) -> tuple:
    """An element as tag, attributes, text and children, for comparing a vCard with the one set."""
    return el.tag, sorted(el.attrib.items()), (el.text or "").strip(), [shape(c) for c in el]


def set_vcard_xml(inner: str) -> str:
    return f"<vCard xmlns='vcard-temp'>{inner}</vCard>"


def photo_hash(presence) -> str | None:
    photo = presence.find(f"{q(NS_UPDATE, 'x')}/{q(NS_UPDATE, 'photo')}")
    return None if photo is None else (photo.text or "")


async def test_account_advertises_the_conversion(xmpp):
    a = await xmpp.login()
    info = await a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=a.bare)
    assert "urn:xmpp:pep-vcard-conversion:0" in {f.get("var") for f in info.iter(q("http://jabber.org/protocol/disco#info", "feature"))}


async def test_a_pep_avatar_is_the_vcard_photo_for_contacts_only_and_its_hash_rides_on_presence(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    stranger = await xmpp.login()
    await announce(a)
    await announce(b)
    await befriend(a, b)
    await a.iq("set", "<vCard xmlns='vcard-temp'><FN>Ada</FN></vCard>")
    await publish_avatar(a)
    vcard = await vcard_of(b, a.bare)
    assert base64.b64decode(vcard.findtext(f"{q('vcard-temp', 'PHOTO')}/{q('vcard-temp', 'BINVAL')}")) == PNG
    assert vcard.findtext(f"{q('vcard-temp', 'PHOTO')}/{q('vcard-temp', 'TYPE')}") == "image/png"
    assert vcard.findtext(q("vcard-temp", "FN")) == "Ada"
    hidden = await vcard_of(stranger, a.bare)  # the avatar's node has the presence access model
    assert hidden.find(q("vcard-temp", "PHOTO")) is None and hidden.findtext(q("vcard-temp", "FN")) == "Ada"
    mark = b.inbox.mark()
    a.presence(status="with avatar")
    seen = await b.expect(is_presence(sender=a.bare), after=mark)
    assert photo_hash(seen) == AVATAR_ID


async def test_presence_of_an_account_without_avatar_says_so_and_a_client_photo_is_kept(xmpp):
    a = await xmpp.login()
    b = await xmpp.login()
    await befriend(a, b)
    mark = b.inbox.mark()
    a.presence()
    assert photo_hash(await b.expect(is_presence(sender=a.bare), after=mark)) == ""
    a.send("<presence><x xmlns='vcard-temp:x:update'><photo>abc</photo></x></presence>")
    assert photo_hash(await b.expect(is_presence(sender=a.bare), after=mark)) == "abc"


async def test_a_vcard_temp_photo_and_fields_are_published_to_pep(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a)
    await announce(b, AVATAR_META)
    await befriend(a, b)
    photo = base64.b64encode(PNG).decode()
    await a.iq("set", f"<vCard xmlns='vcard-temp'><FN>Grace Hopper</FN><NICKNAME>amazing</NICKNAME>"
                      f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{photo}</BINVAL></PHOTO></vCard>")
    note = await b.expect(is_event(AVATAR_META, sender=a.bare))
    assert note.find(f".//{{{AVATAR_META}}}info").get("id") == AVATAR_ID
    [data] = await items(b, a.bare, AVATAR_DATA, inner=f"<item id='{AVATAR_ID}'/>")
    assert base64.b64decode(data.findtext(f"{{{AVATAR_DATA}}}data")) == PNG
    [card] = await items(b, a.bare, VCARD4)
    assert card.findtext(f"{{{NS_V4}}}vcard/{{{NS_V4}}}fn/{{{NS_V4}}}text") == "Grace Hopper"
    assert card.findtext(f"{{{NS_V4}}}vcard/{{{NS_V4}}}nickname/{{{NS_V4}}}text") == "amazing"
    assert note.find(q(NS_EVENT, "event")) is not None


async def test_vcard4_fields_are_served_through_vcard_temp(xmpp):
    a = await xmpp.login()
    b = await xmpp.login()
    await befriend(a, b)
    await a.iq("set", "<vCard xmlns='vcard-temp'><FN>Old Name</FN><TEL><NUMBER>123</NUMBER></TEL></vCard>")
    await publish(a, VCARD4, f"<vcard xmlns='{NS_V4}'><fn><text>New Name</text></fn><n><surname>Name</surname>"
                             "<given>New</given></n></vcard>", item_id="current")
    vcard = await vcard_of(b, a.bare)
    assert vcard.findtext(q("vcard-temp", "FN")) == "New Name"
    assert vcard.findtext(f"{q('vcard-temp', 'N')}/{q('vcard-temp', 'FAMILY')}") == "Name"
    assert vcard.findtext(f"{q('vcard-temp', 'TEL')}/{q('vcard-temp', 'NUMBER')}") == "123"


# Fields with no vCard4 counterpart here, empty elements, repeated ones and a photo: all come back as set.
WHOLE_VCARD = (
    "<FN>Romeo Montague</FN><N><FAMILY>Montague</FAMILY><GIVEN>Romeo</GIVEN><MIDDLE/><PREFIX/><SUFFIX/></N>"
    "<NICKNAME/><TEL><HOME/><VOICE/><NUMBER>+39 045 000</NUMBER></TEL><ADR><WORK/><LOCALITY>Verona</LOCALITY></ADR>"
    "<EMAIL><INTERNET/><PREF/><USERID>romeo@example.org</USERID></EMAIL><EMAIL><USERID>r@example.net</USERID></EMAIL>"
    "<DESC>  Of the house of Montague  </DESC><JABBERID>romeo@localhost</JABBERID>"
    f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{base64.b64encode(PNG).decode()}</BINVAL></PHOTO>"
)


async def test_a_vcard_temp_comes_back_whole_to_its_owner_and_to_a_contact(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a)
    await announce(b, AVATAR_META, VCARD4)
    await befriend(a, b)
    await a.iq("set", set_vcard_xml(WHOLE_VCARD))
    await b.expect(is_event(VCARD4, sender=a.bare))  # the PEP nodes were derived from it…
    await b.expect(is_event(AVATAR_META, sender=a.bare))
    sent = shape(ET.fromstring(set_vcard_xml(WHOLE_VCARD)))
    assert shape(await vcard_of(a, a.bare)) == sent  # …and it reads back exactly as set, to its owner
    assert shape(await vcard_of(b, a.bare)) == sent  # and to a contact, who may see those nodes


async def test_a_vcard4_publish_changes_only_the_fields_it_maps(xmpp):
    a = await xmpp.login()
    b = await xmpp.login()
    await befriend(a, b)
    await a.iq("set", set_vcard_xml(WHOLE_VCARD))
    [card] = await items(a, None, VCARD4)
    assert card.findtext(f"{{{NS_V4}}}vcard/{{{NS_V4}}}email/{{{NS_V4}}}text") == "romeo@example.org"
    # A vCard4 client renames the account and drops the e-mail address; the rest it does not map.
    await publish(a, VCARD4, f"<vcard xmlns='{NS_V4}'><fn><text>Romeo</text></fn><n><surname>Montague</surname>"
                             "<given>Romeo</given></n></vcard>", item_id="current")
    expected = ET.fromstring(set_vcard_xml(WHOLE_VCARD.replace("<FN>Romeo Montague</FN>", "<FN>Romeo</FN>").replace(
        "<USERID>romeo@example.org</USERID>", "")))
    assert shape(await vcard_of(b, a.bare)) == shape(expected)


async def test_a_vcard_temp_set_keeps_the_vcard4_fields_it_does_not_map(xmpp):
    a = await xmpp.login()
    tel = "<tel><uri>tel:+1-555</uri></tel>"
    await publish(a, VCARD4, f"<vcard xmlns='{NS_V4}'><fn><text>Ada</text></fn>{tel}</vcard>", item_id="current")
    await a.iq("set", set_vcard_xml("<FN>Ada Lovelace</FN>"))
    [card] = await items(a, None, VCARD4)
    assert card.findtext(f"{{{NS_V4}}}vcard/{{{NS_V4}}}fn/{{{NS_V4}}}text") == "Ada Lovelace"
    assert card.findtext(f"{{{NS_V4}}}vcard/{{{NS_V4}}}tel/{{{NS_V4}}}uri") == "tel:+1-555"


async def test_a_vcard_temp_without_photo_turns_the_pep_avatar_off(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a)
    await announce(b, AVATAR_META)
    await befriend(a, b)
    await publish_avatar(a)
    await b.expect(is_event(AVATAR_META, sender=a.bare))
    mark = b.inbox.mark()
    await a.iq("set", set_vcard_xml("<FN>Ada</FN>"))
    off = await b.expect(is_event(AVATAR_META, sender=a.bare), after=mark)
    assert off.find(f".//{{{AVATAR_META}}}metadata") is not None and off.find(f".//{{{AVATAR_META}}}info") is None
    assert shape(await vcard_of(b, a.bare)) == shape(ET.fromstring(set_vcard_xml("<FN>Ada</FN>")))
    mark = b.inbox.mark()
    a.presence(status="no avatar now")
    assert photo_hash(await b.expect(is_presence(sender=a.bare), after=mark)) == ""
