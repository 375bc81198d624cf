"""XEP-0313 Message Archive Management on rooms (§5.1.2 of XEP-0045's MAM profile): a persistent room's
messages in the archive ``muc_mam``, owner the room's bare JID, each under the id the room gave it
(XEP-0359), so the stanza-id occupants saw is the id they page by.

Writes go through the same batching writer as user archives (mam/archiver.py): delivery never waits for
storage, and a crash loses at most the batch being written. Queries are parsed and answered by the user
archive's code (mam/query.py, mam/serve.py); what a room adds is who may read it and what they see.
The archived copy carries the sender's real JID (a muc#user item), shown only to those who may see real
JIDs in the room at the time of the query; others see room@service/nick, as in the room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from sakari.core.events import StanzaEvent
from sakari.jid import JID
from sakari.modules.mam.archiver import Archiver
from sakari.modules.mam.query import parse_query
from sakari.modules.mam.serve import find_page, send_page
from sakari.modules.muc import model as M
from sakari.modules.muc.room import Room
from sakari.storage.base import ArchiveEntry, ArchiveStore
from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_MAM = "urn:xmpp:mam:2"


def may_read(room: Room, real: JID) -> None:
    """Who may page through a room's archive: in a members-only room its members (and admins and owners),
    elsewhere anyone who may enter; a password-protected room's archive is for those inside it."""
    affiliation = room.affiliation(real.bare)
    if affiliation == "outcast":
        raise StanzaError("forbidden", "You are banned from this room")
    if room.config.members_only and affiliation == "none":
        raise StanzaError("forbidden", "Only members may read the archive of this room")
    if room.config.password and affiliation == "none" and real not in room.by_jid:
        raise StanzaError("forbidden", "Enter the room to read its archive")


def anonymous(stanza: Element) -> Element:
    """The stored message without the sender's real JID, as occupants who may not see it get it."""
    stanza.children = [c for c in stanza.children if c.__class__ is not Element or c.ns != M.NS_USER]
    return stanza


class RoomArchive:
    def __init__(self, store: ArchiveStore, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> None:
        self.store = store
        self.writer = Archiver(store, spawn)

    def new_id(self) -> str:
        return self.store.new_id()

    def keep(self, room: Room, message: Element, sender: JID | None) -> None:
        """Archive a message the room sent to its occupants (one serialization, off the delivery path)."""
        stored = message.shallow_copy()
        stored.children = list(message.children)
        if sender is not None:
            stored.add("x", M.NS_USER).add("item", attrs={"jid": sender.text})
        id_el = message.find("stanza-id", M.NS_SID)
        assert id_el is not None, "the room stamps every message it relays"
        entry = ArchiveEntry(room.jid.text, id_el.attrs["id"], message.attrs["from"], fragment.dump(stored),
                             message.child_text("body"))
        self.writer.add(entry)

    async def original(self, room: Room, id: str) -> Element | None:
        """An archived message by the id the room gave it."""
        await self.writer.written()
        item = await self.store.get(room.jid.text, id)
        return fragment.load(item.stanza) if item is not None else None

    async def replace(self, room: Room, id: str, stanza: Element) -> None:
        await self.writer.written()
        await self.store.replace(room.jid.text, id, fragment.dump(stanza))

    async def recent(self, room: Room, count: int) -> list[tuple[Element, float]]:
        """The newest messages with a body, oldest first, for newcomers' legacy history after a restart."""
        if count <= 0:
            return []
        page = await self.store.query(room.jid.text, limit=count * 2, reverse=True)
        found = [(anonymous(fragment.load(i.stanza)), i.timestamp) for i in page.items]
        return [(s, when) for s, when in found if s.find("body") is not None][-count:]

    async def query(self, event: StanzaEvent, room: Room, query: Element, max_results: int) -> Element:
        """XEP-0313 §4 on a room: the results as messages from the room, then the ``<fin/>``."""
        real = event.from_jid
        may_read(room, real)
        if event.origin is None:
            raise StanzaError("service-unavailable", "Room archives answer clients of this server")
        q = parse_query(query, max_results, occupants=True)
        await self.writer.written()  # what was just said is found
        page = await find_page(self.store, room.jid.text, q)
        sees = room.config.non_anonymous or room.affiliation(real.bare) in ("owner", "admin")
        return await send_page(event.origin, page, q, real.text, room.jid.text, None if sees else anonymous)

    async def clear(self, room: Room) -> None:
        await self.writer.written()
        await self.store.clear(room.jid.text)
