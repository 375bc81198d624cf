"""A pubsub node, sans-IO: its configuration, its items newest last, and who may see it (XEP-0060 §4, §6, §7).

Everything here is plain data and pure functions; the store loads and saves
nodes, the modules (``pep``, and a pubsub service) do the I/O around them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sakari.modules.pubsub.config import NodeConfig
from sakari.modules.pubsub.protocol import NS_EVENT
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

SUBSCRIBED = ("from", "both")  # roster subscriptions by which a contact sees the owner's presence
AFFILIATIONS = ("owner", "publisher", "member", "outcast")  # "none" is the absence of one (§4.1)
READERS = ("owner", "publisher", "member")  # affiliations that may read a whitelist node
SUBSCRIPTION_STATES = ("subscribed", "pending")  # "none" is the absence of one (§4.2)


@dataclass(slots=True)
class Node:
    name: str
    config: NodeConfig = field(default_factory=NodeConfig)
    # id → <item id='…'>payload</item> in the event namespace (as notifications carry it), oldest first.
    items: dict[str, Element] = field(default_factory=dict)
    # bare JID → one of AFFILIATIONS; a PEP node's owner is its account and is not listed.
    affiliations: dict[str, str] = field(default_factory=dict)
    # JID (bare or full, as the subscriber asked) → one of SUBSCRIPTION_STATES; a service's nodes only.
    subscriptions: dict[str, str] = field(default_factory=dict)

    # --- items ------------------------------------------------------------------
    def publish(self, item_id: str | None, payload: Element | None, server_max: int) -> tuple[Element, list[str]]:
        """Store an item (a new id when none is given; an existing id is replaced and becomes the newest).

        Returns the item as notifications carry it, and the ids pushed out by max_items.
        """
        item_id = item_id or uuid.uuid4().hex
        item = Element("item", NS_EVENT, {"id": item_id})
        if payload is not None:
            item.children.append(payload)
        self.items.pop(item_id, None)
        self.items[item_id] = item
        # Without persistence only the last item is kept, for last-item delivery (as Prosody does).
        keep = self.config.item_limit(server_max) if self.config.persist_items else 1
        evicted = []
        while len(self.items) > max(keep, 1):
            oldest = next(iter(self.items))
            del self.items[oldest]
            evicted.append(oldest)
        return item, evicted

    def retract(self, item_id: str) -> None:
        if self.items.pop(item_id, None) is None:
            raise StanzaError("item-not-found", f"no item {item_id}")

    def select(self, max_items: int | None = None, ids: list[str] | None = None) -> list[Element]:
        """Items for a retrieval (§6.5): the given ids that exist, or the newest max_items, oldest first."""
        if ids:
            return [self.items[i] for i in ids if i in self.items]
        items = list(self.items.values())
        return items[-max_items:] if max_items else items

    def last(self) -> Element | None:
        return next(reversed(self.items.values()), None) if self.items else None

    def purge(self) -> None:
        self.items.clear()

    # --- access -------------------------------------------------------------------
    def may_see(self, requester: str, owner: str, subscription: str | None, groups: tuple[str, ...] = ()) -> bool:
        """Whether ``requester`` (a bare JID) may retrieve items and get notifications (§4.5).

        ``subscription`` and ``groups`` are the owner's roster item for the requester, if any.
        """
        model = self.config.access_model
        if requester == owner:
            return True
        affiliation = self.affiliations.get(requester)
        if affiliation == "outcast":
            return False
        if model == "open" or affiliation in READERS:
            return True
        if model == "presence":
            return subscription in SUBSCRIBED
        if model == "roster":
            allowed = self.config.roster_groups_allowed
            return subscription is not None and (not allowed or any(g in allowed for g in groups))
        if model == "authorize":
            return self.subscriptions.get(requester) == "subscribed"
        return False  # whitelist: only the affiliated, above

