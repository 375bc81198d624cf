"""XEP-0411 Bookmarks Conversion: legacy bookmarks in private XML storage (XEP-0049, ``storage:bookmarks``)
and PEP bookmarks (XEP-0402, ``urn:xmpp:bookmarks:1``) are one list.

- A legacy read is answered from the PEP node when it exists, so a room bookmarked by a modern
  client shows in an old one.
- A legacy write becomes the PEP node's items: each room is published (item id: the room's JID,
  the node private as XEP-0402 §3 says) and rooms no longer listed are retracted; the account's
  other clients are notified as for any publish. The legacy copy is not kept beside it.
"""

from __future__ import annotations

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.pep import Pep
from sakari.modules.util import payload
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_PRIVATE = "jabber:iq:private"
NS_LEGACY = "storage:bookmarks"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_CONVERSION = "urn:xmpp:bookmarks-conversion:0"
# XEP-0402 §3: the node's configuration, which its clients also ask for as preconditions.
NODE_OPTIONS = {"persist_items": True, "max_items": "max", "send_last_published_item": "never",
                "access_model": "whitelist"}


def _truthy(text: str | None) -> bool:
    return text in ("1", "true")


def to_legacy(items: list[Element]) -> Element:
    storage = Element("storage", NS_LEGACY)
    for item in items:
        conference = item.find("conference", NS_BOOKMARKS)
        if conference is None:
            continue
        attrs = {"jid": item.attrs["id"], "autojoin": "true" if _truthy(conference.attrs.get("autojoin")) else "false"}
        if conference.attrs.get("name"):
            attrs["name"] = conference.attrs["name"]
        legacy = storage.add("conference", attrs=attrs)
        for child in ("nick", "password"):
            text = conference.child_text(child)
            if text:
                legacy.add(child, text=text)
    return storage


def from_legacy(storage: Element) -> dict[str, Element]:
    """Room JID → its XEP-0402 conference element."""
    rooms: dict[str, Element] = {}
    for legacy in storage.find_all("conference", NS_LEGACY):
        try:
            room = str(parse_jid(legacy.attrs.get("jid", "")).bare)
        except JIDError:
            raise StanzaError("jid-malformed", f"the bookmark {legacy.attrs.get('jid', '')!r} is not an address") from None
        attrs = {"autojoin": "true" if _truthy(legacy.attrs.get("autojoin")) else "false"}
        if legacy.attrs.get("name"):
            attrs["name"] = legacy.attrs["name"]
        conference = Element("conference", NS_BOOKMARKS, attrs)
        for child in ("nick", "password"):
            text = legacy.child_text(child, NS_LEGACY)
            if text:
                conference.add(child, text=text)
        rooms[room] = conference
    return rooms


class Bookmarks:
    def __init__(self, mod: ModuleAPI) -> None:
        self.pep: Pep = mod.require("pep")

    async def get(self, event: StanzaEvent) -> Element | None:
        wanted = list(payload(event).elements())
        if len(wanted) != 1 or (wanted[0].ns, wanted[0].name) != (NS_LEGACY, "storage"):
            return None  # other private data: the private module
        node = await self.pep.store.get(str(event.to_jid.bare), NS_BOOKMARKS)
        if node is None:
            return None  # no PEP bookmarks: what the private module holds, if anything
        result = Element("query", NS_PRIVATE)
        result.append(to_legacy(list(node.items.values())))
        return result

    async def set_(self, event: StanzaEvent) -> bool | None:
        children = list(payload(event).elements())
        storage = next((c for c in children if (c.ns, c.name) == (NS_LEGACY, "storage")), None)
        if storage is None:
            return None
        await self.replace(event.to_jid.bare, from_legacy(storage))
        if len(children) == 1:
            return True
        payload(event).remove(storage)  # the private module keeps the rest
        return None

    async def replace(self, owner: JID, rooms: dict[str, Element]) -> None:
        node = await self.pep.store.get(str(owner), NS_BOOKMARKS)
        items = node.items if node is not None else {}
        gone = [room for room in items if room not in rooms]
        for room, conference in rooms.items():
            if room in items and items[room].first_child() == conference:
                continue  # unchanged: the other clients need not hear of it again
            await self.pep.publish_item(owner, NS_BOOKMARKS, room, conference, NODE_OPTIONS)
        if gone:
            await self.pep.retract_items(owner, NS_BOOKMARKS, gone, notify=True)


def setup(mod: ModuleAPI) -> None:
    mod.depends("private")
    mod.depends("pep")
    bookmarks = Bookmarks(mod)
    mod.add_account_feature(NS_CONVERSION)
    mod.hook(f"iq-get/self/{NS_PRIVATE}:query", bookmarks.get, priority=10)
    mod.hook(f"iq-set/self/{NS_PRIVATE}:query", bookmarks.set_, priority=10)
