"""RFC 6121 §3–§4: presence subscriptions and presence broadcast.

Subscription states change only here, through the roster service, so the
roster push always follows the stored state. Outbound subscription stanzas
are stamped with the user's bare JID (§3.1.2); broadcasts go from the full
JID of the resource to every contact with a ``from`` or ``both``
subscription, to the user's own resources and to anyone the resource sent
directed presence to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sakari.core import events as E
from sakari.core.events import SessionEvent, StanzaEvent
from sakari.jid import JID, parse_jid
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.storage.base import RosterItem
from sakari.xml import fragment
from sakari.xml.element import Element

PRESENCE_INITIAL = "presence/initial"  # SessionEvent: a resource became available for the first time
PRESENCE_UNAVAILABLE = "presence/unavailable"  # WentUnavailable: an available resource leaves (before broadcast)
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
MAX_DIRECTED = 100  # directed-presence recipients remembered per session, for their unavailable

SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

# (current subscription, what happens) → new subscription; RFC 6121 Appendix A.
_GAIN_FROM = {"none": "from", "to": "both", "from": "from", "both": "both"}
_GAIN_TO = {"none": "to", "from": "both", "to": "to", "both": "both"}
_LOSE_FROM = {"from": "none", "both": "to", "none": "none", "to": "to"}
_LOSE_TO = {"to": "none", "both": "from", "none": "none", "from": "from"}


@dataclass(slots=True)
class WentUnavailable:
    session: Session
    stanza: Element  # the unavailable presence, with the status text the user left


def _presence(type_: str | None, **attrs: str) -> Element:
    if type_:
        attrs["type"] = type_
    return Element("presence", attrs=attrs)


def _priority(stanza: Element) -> int:
    text = stanza.child_text("priority")
    try:
        value = int(text) if text else 0
    except ValueError:
        return 0
    return max(-128, min(127, value))


class Presence:
    """The ``presence`` service: the roster module asks it to settle subscriptions on removal."""

    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.router = mod.router
        self.rosters = mod.require("roster")
        # RFC 6121 §3.1.3: a pending request is kept whole (extensions included) until it is answered.
        self.requests = mod.storage.documents("subscription-request")

    # --- broadcast ------------------------------------------------------------
    async def broadcast(self, session: Session, stanza: Element) -> None:
        """A presence without 'to' from one resource (RFC 6121 §4.2, §4.4, §4.5)."""
        router = self.router
        available = stanza.attrs.get("type") is None
        was_available = router.resource_of(session).available
        initial = available and not was_available
        owner = str(session.bare)
        if not available and was_available:
            await self.mod.events.fire_all(PRESENCE_UNAVAILABLE, WentUnavailable(session, stanza))
            router.set_presence(session, None)
        roster = await self.rosters.get(owner)
        for item in list(roster.items.values()):
            if item.subscription in ("from", "both"):
                await self.router.route(stanza.shallow_copy(), session.jid, parse_jid(item.jid), session)
        if not available:
            directed = session.props.pop("directed", set())
            for jid in directed:
                await self.router.route(stanza.shallow_copy(), session.jid, jid, session)
        others = [r for r in router.resources(session.bare) if r.available and r.session is not session]
        for other in others:
            copy = stanza.shallow_copy()  # one each: an outbound filter may keep what it is given
            copy.attrs["from"] = str(session.jid)
            copy.attrs["to"] = str(other.jid)
            router.send_to([other], copy)
        # The resource hears its own presence back, unavailable included (as with Prosody and others).
        if available:
            router.set_presence(session, stanza, _priority(stanza))
        copy = stanza.shallow_copy()
        copy.attrs["from"] = str(session.jid)
        copy.attrs["to"] = str(session.jid)
        session.send(copy)
        if initial:
            for other in others:
                if other.presence is not None:
                    mine = other.presence.shallow_copy()
                    mine.attrs["from"] = str(other.jid)
                    mine.attrs["to"] = str(session.jid)
                    session.send(mine)
            probe = _presence("probe")
            for item in list(roster.items.values()):
                if item.subscription in ("to", "both"):
                    await self.router.route(probe.shallow_copy(), session.bare, parse_jid(item.jid), session)
            for item in list(roster.items.values()):
                if item.pending_in:
                    stored = await self.requests.get(owner, item.jid)
                    request = fragment.load(stored) if stored else _presence("subscribe", **{"from": item.jid})
                    request.attrs["to"] = owner
                    session.send(request)
            await self.mod.events.fire_all(PRESENCE_INITIAL, SessionEvent(session))

    async def send_current(self, owner: JID, contact: JID, unavailable: bool = False) -> None:
        """Each available resource's presence (or unavailable) to one contact."""
        for r in self.router.resources(owner):
            if r.available and r.presence is not None:
                stanza = _presence("unavailable") if unavailable else r.presence.shallow_copy()
                await self.router.route(stanza, r.jid, contact, r.session)

    # --- outbound subscription stanzas (the user acts) ------------------------
    async def outbound(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        ptype = stanza.attrs.get("type")
        session = event.origin
        assert session is not None
        if ptype is None or ptype == "unavailable":
            if event.to_jid == session.bare and stanza.attrs.get("to") is None:
                await self.broadcast(session, stanza)
                return True
            directed: set[JID] = session.props.setdefault("directed", set())
            if ptype is None and len(directed) < MAX_DIRECTED:
                directed.add(event.to_jid)
            elif ptype == "unavailable":
                directed.discard(event.to_jid)
            return None  # routed as usual
        if ptype not in SUBSCRIPTION_TYPES:
            return None  # probe and error go as they are
        owner, contact = session.bare, event.to_jid.bare
        if owner == contact:
            return True
        stanza.attrs["from"] = str(owner)
        stanza.attrs["to"] = str(contact)
        item = await self.rosters.item(str(owner), str(contact))
        route = True
        if ptype == "subscribe":
            item = item or RosterItem(str(contact))
            if item.subscription in ("none", "from") or not item.listed:
                await self.rosters.put(str(owner), replace(item, ask=True, listed=True))
        elif ptype == "subscribed":
            if item is not None and item.pending_in:
                await self.rosters.put(
                    str(owner), replace(item, subscription=_GAIN_FROM[item.subscription], pending_in=False, listed=True)
                )
                await self.requests.set(str(owner), str(contact), None)
            elif item is None or (item.subscription in ("none", "to") and not item.approved):
                # RFC 6121 §3.4: approve in advance; nothing goes to the contact yet.
                await self.rosters.put(str(owner), replace(item or RosterItem(str(contact)), approved=True, listed=True))
                route = False
            else:
                route = False
        elif ptype == "unsubscribe":
            if item is None or (item.subscription in ("none", "from") and not item.ask):
                route = item is not None
            else:
                await self.rosters.put(str(owner), replace(item, subscription=_LOSE_TO[item.subscription], ask=False))
        else:  # unsubscribed
            if item is None:
                route = False
            elif item.subscription in ("from", "both") or item.pending_in or item.approved:
                if item.pending_in:
                    await self.requests.set(str(owner), str(contact), None)
                lost_from = item.subscription in ("from", "both")
                new = replace(item, subscription=_LOSE_FROM[item.subscription], pending_in=False, approved=False)
                if new.listed:
                    await self.rosters.put(str(owner), new)
                else:
                    await self.rosters.remove(str(owner), str(contact))
                if lost_from:
                    await self.router.route(stanza, owner, contact, session)
                    await self.send_current(owner, contact, unavailable=True)
                    return True
        if route:
            await self.router.route(stanza, owner, contact, session)
            if ptype == "subscribed":
                await self.send_current(owner, contact)
        return True

    # --- inbound subscription stanzas and probes (a contact acts) -------------
    async def inbound(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        ptype = stanza.attrs.get("type")
        if ptype not in SUBSCRIPTION_TYPES and ptype != "probe":
            return None  # available/unavailable/error: delivered as usual
        owner, contact = event.to_jid.bare, event.from_jid.bare
        if await self.mod.storage.accounts.get(str(owner)) is None and not self.router.is_online(owner):
            return True  # RFC 6121 §3.1.3: no such user, silently ignored
        if ptype == "probe":
            await self._probe(owner, contact, event.from_jid)
            return True
        item = await self.rosters.item(str(owner), str(contact))
        stanza.attrs["from"] = str(contact)
        deliver = False
        if ptype == "subscribe":
            if item is not None and item.subscription in ("from", "both"):
                await self.router.route(_presence("subscribed"), owner, contact)
            elif item is not None and item.approved:
                await self.rosters.put(str(owner), replace(item, subscription=_GAIN_FROM[item.subscription], approved=False))
                await self.router.route(_presence("subscribed"), owner, contact)
                await self.send_current(owner, contact)
            else:
                if item is None or not item.pending_in:
                    await self.rosters.put(str(owner), replace(item or RosterItem(str(contact), listed=False), pending_in=True))
                await self.requests.set(str(owner), str(contact), fragment.dump(stanza))
                deliver = True
        elif ptype == "subscribed":
            if item is not None and item.ask:
                await self.rosters.put(str(owner), replace(item, subscription=_GAIN_TO[item.subscription], ask=False))
                deliver = True
        elif ptype == "unsubscribe":
            if item is not None and (item.subscription in ("from", "both") or item.pending_in):
                if item.pending_in:
                    await self.requests.set(str(owner), str(contact), None)
                new = replace(item, subscription=_LOSE_FROM[item.subscription], pending_in=False)
                if new.listed:
                    await self.rosters.put(str(owner), new)
                else:
                    await self.rosters.remove(str(owner), str(contact))
                await self.send_current(owner, contact, unavailable=True)
                deliver = True
        else:  # unsubscribed
            if item is not None and (item.subscription in ("to", "both") or item.ask):
                await self.rosters.put(str(owner), replace(item, subscription=_LOSE_TO[item.subscription], ask=False))
                deliver = True
        if deliver:
            # RFC 6121 §3.1.3: a request goes to every available resource; the answers (§3.1.6, §3.2.3,
            # §3.3.3) only to those that fetched the roster. 'to' stays the bare JID (§8.5.2.1.2).
            self.router.send_to(
                [r for r in self.router.resources(owner) if r.available and (ptype == "subscribe" or "roster" in r.flags)],
                stanza,
            )
        return True

    async def _probe(self, owner: JID, contact: JID, prober: JID) -> None:
        if contact != owner:
            item = await self.rosters.item(str(owner), str(contact))
            if item is None or item.subscription not in ("from", "both"):
                return  # RFC 6121 §4.3.2: reveal nothing to those not subscribed
        resources = [r for r in self.router.resources(owner) if r.available and r.presence is not None]
        if not resources:
            await self.router.route(_presence("unavailable"), owner, prober)
        for r in resources:
            await self.router.route(r.presence.shallow_copy(), r.jid, prober, r.session)  # type: ignore[union-attr]

    async def roster_item_removed(self, owner: str, item: RosterItem) -> None:
        """RFC 6121 §2.5.2: removing a contact cancels subscriptions both ways."""
        owner_jid, contact = parse_jid(owner), parse_jid(item.jid)
        if item.subscription in ("to", "both") or item.ask:
            await self.router.route(_presence("unsubscribe"), owner_jid, contact)
        if item.pending_in:
            await self.requests.set(owner, item.jid, None)
        if item.subscription in ("from", "both") or item.pending_in:
            await self.router.route(_presence("unsubscribed"), owner_jid, contact)
            await self.send_current(owner_jid, contact, unavailable=True)

    async def session_closed(self, event: SessionEvent) -> None:
        session = event.session
        if self.router.resource_of(session).available:
            await self.broadcast(session, _presence("unavailable"))


def setup(mod: ModuleAPI) -> None:
    presence = Presence(mod)
    mod.provide("presence", presence)
    mod.events.declare(PRESENCE_INITIAL)
    mod.events.declare(PRESENCE_UNAVAILABLE)
    mod.add_stream_feature(lambda authenticated: Element("sub", NS_PREAPPROVAL) if authenticated else None)
    for target in ("self", "bare", "full", "host"):
        mod.hook(f"pre-presence/{target}", presence.outbound)
    for target in ("bare", "full"):
        mod.hook(f"presence/{target}", presence.inbound)
    mod.hook(E.SESSION_CLOSED, presence.session_closed)
