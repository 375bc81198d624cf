"""XEP-0398 avatar conversion and vcard-temp (XEP-0054) beside PEP profiles (XEP-0084 avatars, XEP-0292 vCard4).

- From PEP to vCard (§3.1): a vcard-temp read of an account is served with the PEP avatar as its
  PHOTO, and the fields of its vCard4 (XEP-0292 §6 names the pairs), to whoever may see those nodes
  under their access models; a stored vcard-temp fills the rest. Nothing is copied, so an avatar
  kept for contacts does not become public through vcard-temp (§6 of XEP-0398).
- From vCard to PEP (§3.2): a vcard-temp with a photo is published to the avatar nodes (the data,
  then metadata naming it), and its fields to the vCard4 node; contacts are notified.
- Presence (§4): every available presence of the account carries the avatar's hash in
  ``<x xmlns='vcard-temp:x:update'><photo/></x>``, unless the client set a photo element itself.
  The hash is looked up once per session and kept current when the account publishes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.jid import JID
from sakari.modules.pep import PEP_PUBLISHED, Pep, PepEvent
from sakari.modules.util import owner_of, payload
from sakari.xml import fragment
from sakari.xml.element import Element

NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
VCARD4 = "urn:xmpp:vcard4"
NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
_HASH = "vcard-legacy-hash"  # session props: the account's avatar hash ("" for none), once looked up

# vcard-temp element (path) ↔ vCard4 property and its value element (XEP-0292 §6, the simple ones).
_FIELDS: list[tuple[tuple[str, ...], str, str]] = [
    (("FN",), "fn", "text"),
    (("NICKNAME",), "nickname", "text"),
    (("BDAY",), "bday", "date"),
    (("URL",), "url", "uri"),
    (("NOTE",), "note", "text"),
    (("TITLE",), "title", "text"),
    (("ROLE",), "role", "text"),
    (("ORG", "ORGNAME"), "org", "text"),
    (("EMAIL", "USERID"), "email", "text"),
]
_NAME_PARTS = [("FAMILY", "surname"), ("GIVEN", "given"), ("MIDDLE", "additional"), ("PREFIX", "prefix"),
               ("SUFFIX", "suffix")]


def vcard4_from_temp(vcard: Element) -> Element | None:
    """The vCard4 for a vcard-temp's fields; None when it has none of them."""
    card = Element("vcard", NS_VCARD4)
    for path, prop, kind in _FIELDS:
        source = vcard.find(path[0], NS_VCARD)
        for name in path[1:]:
            source = source.find(name, NS_VCARD) if source is not None else None
        if source is not None and source.text.strip():
            card.add(prop).add(kind, text=source.text.strip())
    n = vcard.find("N", NS_VCARD)
    if n is not None:
        parts = [(v4, n.child_text(temp, NS_VCARD)) for temp, v4 in _NAME_PARTS]
        if any(text for _, text in parts):
            name = card.add("n")
            for v4, text in parts:
                if text:
                    name.add(v4, text=text)
    return card if card.children else None


def merge_vcard4(vcard: Element, card: Element) -> None:
    """Put a vCard4's fields into a vcard-temp, in place of its own (the vCard4 is the newer truth)."""
    for path, prop, kind in _FIELDS:
        value = card.find(prop, NS_VCARD4)
        text = value.child_text(kind, NS_VCARD4) if value is not None else None
        if not text:
            continue
        for old in vcard.find_all(path[0], NS_VCARD):
            vcard.remove(old)
        target = vcard.add(path[0], NS_VCARD)
        for name in path[1:]:
            target = target.add(name, NS_VCARD)
        target.children.append(text)
    name = card.find("n", NS_VCARD4)
    if name is not None:
        for old in vcard.find_all("N", NS_VCARD):
            vcard.remove(old)
        n = vcard.add("N", NS_VCARD)
        for temp, v4 in _NAME_PARTS:
            text = name.child_text(v4, NS_VCARD4)
            if text:
                n.add(temp, NS_VCARD, text=text)


def photo_of(vcard: Element) -> tuple[bytes, str] | None:
    """The image and type of a vcard-temp's PHOTO, if it carries one inline."""
    photo = vcard.find("PHOTO", NS_VCARD)
    binval = photo.child_text("BINVAL", NS_VCARD) if photo is not None else None
    if not binval:
        return None
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data, (photo.child_text("TYPE", NS_VCARD) or "image/png").strip()  # type: ignore[union-attr]


def avatar_info(metadata: Element) -> Element | None:
    """§3.1: of the metadata's info elements, the one held in the data node (not at an external URL)."""
    return next((i for i in metadata.find_all("info", AVATAR_META) if "url" not in i.attrs and i.attrs.get("id")), None)


class VcardLegacy:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.pep: Pep = mod.require("pep")
        self.vcards = mod.require("vcard")

    async def payload_of(self, owner: JID, node_name: str, requester: JID, item_id: str | None = None) -> Element | None:
        """The payload of a node's last item (or of one item) if the requester may see the node."""
        node = await self.pep.store.get(str(owner), node_name)
        if node is None or not await self.pep.may_see(node, owner, requester):
            return None
        item = node.items.get(item_id) if item_id is not None else node.last()
        return item.first_child() if item is not None else None

    # --- from PEP to vcard-temp ---------------------------------------------------------
    async def get(self, event: StanzaEvent) -> Element | None:
        owner, requester = event.to_jid.bare, event.from_jid
        metadata = await self.payload_of(owner, AVATAR_META, requester)
        card = await self.payload_of(owner, VCARD4, requester)
        if metadata is None and card is None:
            return None  # nothing in PEP for this requester: the stored vCard as it is (the vcard module)
        data = await self.vcards.get(owner_of(event), "")
        vcard = fragment.load(data) if data is not None else Element("vCard", NS_VCARD)
        if card is not None:
            merge_vcard4(vcard, card)
        if metadata is not None:
            for old in vcard.find_all("PHOTO", NS_VCARD):
                vcard.remove(old)  # the PEP avatar supersedes it, even for those who may not see that one
            info = avatar_info(metadata)
            image = await self.payload_of(owner, AVATAR_DATA, requester, info.attrs["id"]) if info is not None else None
            if info is not None and image is not None:
                photo = vcard.add("PHOTO", NS_VCARD)
                photo.add("TYPE", text=info.attrs.get("type", "image/png"))
                photo.add("BINVAL", text=image.text.strip())
        return vcard

    # --- from vcard-temp to PEP ---------------------------------------------------------
    async def set_(self, event: StanzaEvent) -> None:
        """Publish the photo and fields, then let the vcard module store the vCard as it came."""
        await self.publish_vcard(event.to_jid.bare, payload(event))

    async def publish_vcard(self, owner: JID, vcard: Element) -> None:
        photo = photo_of(vcard)
        if photo is not None:
            image, content_type = photo
            avatar_id = hashlib.sha1(image).hexdigest()
            if await self.current_hash(owner) != avatar_id:
                data = Element("data", AVATAR_DATA)
                data.children.append(base64.b64encode(image).decode())
                await self.pep.publish_item(owner, AVATAR_DATA, avatar_id, data, {})
                metadata = Element("metadata", AVATAR_META)
                metadata.add("info", attrs={"id": avatar_id, "type": content_type, "bytes": str(len(image))})
                await self.pep.publish_item(owner, AVATAR_META, avatar_id, metadata, {})
        card = vcard4_from_temp(vcard)
        if card is not None:
            await self.pep.publish_item(owner, VCARD4, "current", card, {})

    # --- the hash in presence -----------------------------------------------------------
    async def current_hash(self, owner: JID) -> str:
        node = await self.pep.store.get(str(owner), AVATAR_META)
        item = node.last() if node is not None else None
        metadata = item.first_child() if item is not None else None
        info = avatar_info(metadata) if metadata is not None else None
        return info.attrs["id"] if info is not None else ""

    async def hash_for(self, session: Session) -> str:
        known = session.props.get(_HASH)
        if known is None:
            known = session.props[_HASH] = await self.current_hash(session.bare)
        return known  # type: ignore[no-any-return]

    async def stamp_presence(self, event: StanzaEvent) -> None:
        """§4: the hash goes into every available presence, unless the client put a photo element there."""
        stanza = event.stanza
        session = event.origin
        if session is None or stanza.attrs.get("type") is not None:
            return
        update = stanza.find("x", NS_UPDATE)
        if update is not None and update.find("photo", NS_UPDATE) is not None:
            return
        avatar_hash = await self.hash_for(session)
        if update is None:
            update = stanza.add("x", NS_UPDATE)
        update.add("photo", text=avatar_hash or None)  # empty: the account has no avatar

    async def published(self, event: PepEvent) -> None:
        """A new avatar: the account's sessions stamp its hash from now on (presence is not re-sent, §5)."""
        if event.node != AVATAR_META:
            return
        metadata = event.item.first_child()
        info = avatar_info(metadata) if metadata is not None else None
        avatar_hash = info.attrs["id"] if info is not None else ""
        for resource in self.mod.router.resources(event.owner):
            if resource.session is not None:
                resource.session.props[_HASH] = avatar_hash


def setup(mod: ModuleAPI) -> None:
    mod.depends("vcard")
    mod.depends("pep")
    legacy = VcardLegacy(mod)
    mod.add_account_feature(NS_CONVERSION)
    for target in ("self", "bare"):
        mod.hook(f"iq-get/{target}/{NS_VCARD}:vCard", legacy.get, priority=10)
    mod.hook(f"iq-set/self/{NS_VCARD}:vCard", legacy.set_, priority=10)
    for target in ("self", "bare", "full", "host"):
        mod.hook(f"pre-presence/{target}", legacy.stamp_presence, priority=5)  # before the presence module sends it
    mod.hook(PEP_PUBLISHED, legacy.published)
