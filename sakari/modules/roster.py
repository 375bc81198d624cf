"""RFC 6121 §2 roster management, with roster versioning (XEP-0237).

Provides the ``roster`` service: the presence module changes subscription
states through it, and every change is pushed to the account's interested
resources. Storage keeps rosters cached (the module keeps none of its own);
the store is written before any push goes out. Each push also fires
``roster/changed``, for those besides the account's own clients that follow
rosters (XEP-0356 privileged components).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sakari.core.events import StanzaEvent
from sakari.jid import JIDError, parse_jid
from sakari.core.modules import ModuleAPI
from sakari.modules.util import owner_of, payload, refuse
from sakari.storage.base import RosterItem
from sakari.xml.errors import StanzaError
from sakari.xml.element import Element

NS = "jabber:iq:roster"
NS_VER = "urn:xmpp:features:rosterver"
MAX_ITEMS = 1000
ROSTER_CHANGED = "roster/changed"  # RosterChanged, as the change is pushed to the account's clients


@dataclass(slots=True)
class RosterChanged:
    owner: str  # the account's bare JID
    version: int
    item: Element  # the pushed <item/> (subscription='remove' for a removal); shared with the pushes: read only


@dataclass
class Roster:
    version: int
    items: Mapping[str, RosterItem]  # shared with storage's cache: read only


def item_element(item: RosterItem) -> Element:
    attrs = {"jid": item.jid, "subscription": item.subscription}
    if item.name:
        attrs["name"] = item.name
    if item.ask:
        attrs["ask"] = "subscribe"
    if item.approved:
        attrs["approved"] = "true"
    el = Element("item", NS, attrs)
    for group in item.groups:
        el.add("group", text=group)
    return el


class Rosters:
    """The roster service other modules use."""

    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.store = mod.storage.roster
        self._push_ids = itertools.count(1)

    async def get(self, owner: str) -> Roster:
        cached = self.store.peek(owner)
        if cached is not None:
            return Roster(*cached)
        return Roster(*await self.store.get(owner))

    async def item(self, owner: str, jid: str) -> RosterItem | None:
        return (await self.get(owner)).items.get(jid)

    async def put(self, owner: str, item: RosterItem) -> None:
        previous = await self.item(owner, item.jid)
        version = await self.store.put(owner, item)
        if item.listed or (previous is not None and previous.listed):
            self.push(owner, version, item_element(item))

    async def remove(self, owner: str, jid: str) -> None:
        old = await self.item(owner, jid)
        version = await self.store.delete(owner, jid)
        if old is not None and old.listed:
            self.push(owner, version, Element("item", NS, {"jid": jid, "subscription": "remove"}))

    def push(self, owner: str, version: int, item: Element) -> None:
        # After the current turn: a client's own roster set gets its result before the push (as Prosody does).
        asyncio.get_running_loop().call_soon(self._push_now, owner, version, item)

    def _push_now(self, owner: str, version: int, item: Element) -> None:
        router = self.mod.router
        for resource in router.resources(parse_jid(owner)):
            if "roster" in resource.flags:
                iq = Element("iq", attrs={"type": "set", "id": f"push{next(self._push_ids)}", "to": str(resource.jid)})
                iq.add("query", NS, {"ver": str(version)}).append(item)
                router.send_to([resource], iq)
        if ROSTER_CHANGED in self.mod.events.hooked:
            self.mod.spawn(self.mod.events.fire_all(ROSTER_CHANGED, RosterChanged(owner, version, item)))


def _parse_item(query: Element) -> Element:
    items = query.find_all("item", NS)
    if len(items) != 1:
        raise StanzaError("bad-request", "a roster set carries exactly one item")
    return items[0]


def setup(mod: ModuleAPI) -> None:
    rosters = Rosters(mod)
    mod.provide("roster", rosters)
    mod.events.declare(ROSTER_CHANGED)

    async def get(event: StanzaEvent) -> Element | bool:
        owner = owner_of(event)
        if event.origin is not None:
            mod.router.mark(event.origin, "roster")
        roster = await rosters.get(owner)
        query = Element("query", NS, {"ver": str(roster.version)})
        if payload(event).attrs.get("ver") == str(roster.version):
            return True  # XEP-0237 §2.4: nothing changed, an empty result
        for item in roster.items.values():
            if item.listed:
                query.append(item_element(item))
        return query

    async def set_(event: StanzaEvent) -> bool:
        owner = owner_of(event)
        el = _parse_item(payload(event))
        try:
            jid = str(parse_jid(el.attrs.get("jid", "")))
        except JIDError as e:
            raise StanzaError("jid-malformed", e.text) from None
        if jid == owner:
            raise StanzaError("not-allowed", "you cannot be in your own roster")
        if el.attrs.get("subscription") == "remove":
            existing = await rosters.item(owner, jid)
            if existing is None or not existing.listed:
                raise StanzaError("item-not-found")
            await mod.require("presence").roster_item_removed(owner, existing)
            await rosters.remove(owner, jid)
            return True
        groups = [g.text for g in el.find_all("group", NS)]
        if any(not g for g in groups):
            raise StanzaError("not-acceptable", "a group name cannot be empty")
        if len(set(groups)) != len(groups):
            raise StanzaError("bad-request", "a group is named twice")
        roster = await rosters.get(owner)
        existing = roster.items.get(jid)
        if existing is None and sum(1 for i in roster.items.values() if i.listed) >= MAX_ITEMS:
            raise StanzaError("not-allowed", "the roster is full")
        base = existing or RosterItem(jid)
        await rosters.put(owner, replace(base, name=el.attrs.get("name") or None, groups=groups, listed=True))
        return True

    forbidden = refuse("forbidden", "a roster belongs to its owner")

    mod.add_stream_feature(lambda authenticated: Element("ver", NS_VER) if authenticated else None)
    mod.hook(f"iq-get/self/{NS}:query", get)
    mod.hook(f"iq-set/self/{NS}:query", set_)
    mod.hook(f"iq-get/bare/{NS}:query", forbidden)
    mod.hook(f"iq-set/bare/{NS}:query", forbidden)
