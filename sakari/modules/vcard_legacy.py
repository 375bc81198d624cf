"""XEP-0398 avatar conversion and vcard-temp (XEP-0054) beside PEP profiles (XEP-0084 avatars, XEP-0292 vCard4).

- The vcard-temp a client sets is stored whole and is what vcard-temp reads return: empty elements and
  fields that have no vCard4 counterpart come back as they were set (XEP-0054 §3.2 replaces the vCard).
- From vCard to PEP (§3.2): the stored vcard-temp's photo is published to the avatar nodes (the data,
  then metadata naming it) and its fields to the vCard4 node, when they differ from what is there;
  contacts are notified. A vcard-temp without a photo turns a PEP avatar off (XEP-0084 §4.5), since
  the vCard set is the whole profile.
- From PEP to vCard (§3.1): a PEP publish made later (a vCard4, an avatar) shows through vcard-temp:
  a read changes, in the stored vcard-temp, only the fields the vCard4 maps (XEP-0292 §6) whose values
  differ, and the PHOTO when the avatar is another image. Only those the nodes' access models let see
  them get these changes: nothing is copied into the stored vCard, so an avatar kept for contacts does
  not become public through vcard-temp (§6 of XEP-0398). Since what the vCard set published matches
  it, the vCard reads back unchanged until PEP gets something newer.
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
from sakari.modules.vcard import Vcards
from sakari.xml.element import Element

NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
VCARD4 = "urn:xmpp:vcard4"
NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
_HASH = "vcard-legacy-hash"  # session props: the account's avatar hash ("" for none), once looked up

Path = tuple[str, ...]

# vcard-temp path ↔ vCard4 path of the same value (XEP-0292 §6, the simple ones); the first element of each kind.
FIELDS: list[tuple[Path, Path]] = [
    (("FN",), ("fn", "text")),
    (("N", "FAMILY"), ("n", "surname")),
    (("N", "GIVEN"), ("n", "given")),
    (("N", "MIDDLE"), ("n", "additional")),
    (("N", "PREFIX"), ("n", "prefix")),
    (("N", "SUFFIX"), ("n", "suffix")),
    (("NICKNAME",), ("nickname", "text")),
    (("BDAY",), ("bday", "date")),
    (("URL",), ("url", "uri")),
    (("NOTE",), ("note", "text")),
    (("TITLE",), ("title", "text")),
    (("ROLE",), ("role", "text")),
    (("ORG", "ORGNAME"), ("org", "text")),
    (("EMAIL", "USERID"), ("email", "text")),
]


def value_at(root: Element, path: Path, ns: str) -> str | None:
    """The text at a path, stripped; None for a missing or empty element (``<MIDDLE/>`` says nothing)."""
    el: Element | None = root
    for name in path:
        el = el.find(name, ns) if el is not None else None
    text = el.text.strip() if el is not None else ""
    return text or None


def set_at(root: Element, path: Path, text: str | None, ns: str) -> None:
    """Give the element at a path this text, touching nothing else; None removes it (and a container left empty)."""
    chain = [root]
    for name in path[:-1]:
        child = chain[-1].find(name, ns)
        if child is None:
            if text is None:
                return
            child = chain[-1].add(name, ns)
        chain.append(child)
    parent = chain[-1]
    leaf = parent.find(path[-1], ns)
    if text is not None:
        if leaf is None:
            parent.add(path[-1], ns, text=text)
        else:
            leaf.text = text
        return
    if leaf is not None:
        parent.remove(leaf)
    if len(chain) > 1 and not parent.children:
        chain[-2].remove(parent)


def merge_fields(target: Element, source: Element) -> bool:
    """Bring the mapped fields of ``target`` (a vcard-temp or a vCard4) to the values ``source`` (the other
    kind) has, changing only those that differ, so whatever else either holds stays as it is. True if any changed."""
    to_temp = target.ns == NS_VCARD
    changed = False
    for temp, v4 in FIELDS:
        (source_path, source_ns), (target_path, target_ns) = ((v4, NS_VCARD4), (temp, NS_VCARD)) if to_temp else (
            (temp, NS_VCARD), (v4, NS_VCARD4))
        new = value_at(source, source_path, source_ns)
        if new != value_at(target, target_path, target_ns):
            set_at(target, target_path, new, target_ns)
            changed = True
    return changed


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


def photo_hash(vcard: Element) -> str:
    photo = photo_of(vcard)
    return hashlib.sha1(photo[0]).hexdigest() if photo is not None else ""


def avatar_info(metadata: Element) -> Element | None:
    """§3.1: of the metadata's info elements, the one held in the data node (not at an external URL)."""
    return next((i for i in metadata.find_all("info", AVATAR_META) if "url" not in i.attrs and i.attrs.get("id")), None)


class VcardLegacy:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.pep: Pep = mod.require("pep")
        self.vcards: Vcards = mod.require("vcard")

    async def payload_of(self, owner: JID, node_name: str, requester: JID, item_id: str | None = None) -> Element | None:
        """The payload of a node's last item (or of one item) if the requester may see the node."""
        node = await self.pep.store.get(str(owner), node_name)
        if node is None or not await self.pep.may_see(node, owner, requester):
            return None
        item = node.items.get(item_id) if item_id is not None else node.last()
        return item.first_child() if item is not None else None

    # --- vcard-temp reads: the stored vCard, with what PEP has newer ---------------------------
    async def get(self, event: StanzaEvent) -> Element | None:
        owner, requester = event.to_jid.bare, event.from_jid
        metadata = await self.payload_of(owner, AVATAR_META, requester)
        card = await self.payload_of(owner, VCARD4, requester)
        if metadata is None and card is None:
            return None  # nothing in PEP for this requester: the stored vCard as it is (the vcard module)
        vcard = await self.vcards.load(owner_of(event)) or Element("vCard", NS_VCARD)
        if card is not None:
            merge_fields(vcard, card)
        if metadata is not None:
            await self.merge_avatar(vcard, metadata, owner, requester)
        return vcard

    async def merge_avatar(self, vcard: Element, metadata: Element, owner: JID, requester: JID) -> None:
        info = avatar_info(metadata)
        avatar_id = info.attrs["id"] if info is not None else ""
        if avatar_id == photo_hash(vcard):
            return  # the same image, or none on either side: the PHOTO stays as it was set
        for old in vcard.find_all("PHOTO", NS_VCARD):
            vcard.remove(old)  # the PEP avatar supersedes it, even for those who may not see that one
        image = await self.payload_of(owner, AVATAR_DATA, requester, avatar_id) if info is not None else None
        if info is not None and image is not None:
            photo = vcard.add("PHOTO", NS_VCARD)
            photo.add("TYPE", text=info.attrs.get("type", "image/png"))
            photo.add("BINVAL", text=image.text.strip())

    # --- vcard-temp writes: stored whole, then PEP follows ------------------------------------
    async def set_(self, event: StanzaEvent) -> bool:
        vcard = payload(event)
        await self.vcards.save(owner_of(event), vcard)
        await self.publish_vcard(event.to_jid.bare, vcard)
        return True

    async def publish_vcard(self, owner: JID, vcard: Element) -> None:
        photo = photo_of(vcard)
        avatar_id = hashlib.sha1(photo[0]).hexdigest() if photo is not None else ""
        if avatar_id != await self.current_hash(owner):
            await self.publish_avatar(owner, photo, avatar_id)
        node = await self.pep.store.get(str(owner), VCARD4)
        last = node.last() if node is not None else None
        current = last.first_child() if last is not None else None
        # The vCard4's own fields (a telephone, an address…) stay; only the mapped ones follow the vCard.
        card = current.copy() if current is not None and current.ns == NS_VCARD4 else Element("vcard", NS_VCARD4)
        if merge_fields(card, vcard):
            await self.pep.publish_item(owner, VCARD4, "current", card, {})

    async def publish_avatar(self, owner: JID, photo: tuple[bytes, str] | None, avatar_id: str) -> None:
        """The data, then the metadata naming it; without a photo, metadata with no info turns the avatar off."""
        metadata = Element("metadata", AVATAR_META)
        if photo is not None:
            image, content_type = photo
            data = Element("data", AVATAR_DATA)
            data.children.append(base64.b64encode(image).decode())
            await self.pep.publish_item(owner, AVATAR_DATA, avatar_id, data, {})
            metadata.add("info", attrs={"id": avatar_id, "type": content_type, "bytes": str(len(image))})
        await self.pep.publish_item(owner, AVATAR_META, avatar_id or None, metadata, {})

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
