"""XEP-0191 Blocking Command: a blocked contact gets nothing from the user, and the user nothing from it.

Storage keeps block lists cached: the filter peeks at them without I/O,
so filtering costs no database round trip on the hot path; only a list
not yet cached is read first.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from sakari.core import events as E
from sakari.core.events import StanzaEvent
from sakari.jid import JID, JIDError, parse_jid
from sakari.core.modules import ModuleAPI
from sakari.modules.util import owner_of, payload
from sakari.xml.errors import StanzaError
from sakari.xml.element import Element

NS = "urn:xmpp:blocking"
NS_ERRORS = "urn:xmpp:blocking:errors"
MAX_ITEMS = 1000
EMPTY: frozenset[str] = frozenset()


def matches(blocked: set[str] | frozenset[str], jid: JID) -> bool:
    """XEP-0191 §3.6: an item matches the full JID, the bare JID, the domain or domain/resource."""
    if not blocked:
        return False
    return (
        str(jid) in blocked
        or str(jid.bare) in blocked
        or jid.domain in blocked
        or (bool(jid.resource) and f"{jid.domain}/{jid.resource}" in blocked)
    )


def setup(mod: ModuleAPI) -> None:
    store = mod.storage.blocklist  # cached behind storage: peek answers without I/O
    router = mod.router

    async def blocklist(owner: JID) -> set[str]:
        return await store.get(str(owner))

    def filter_stanza(event: StanzaEvent) -> Coroutine[Any, Any, bool | None] | bool | None:
        sender, recipient = event.from_jid, event.to_jid
        if recipient.bare == sender.bare:
            return None
        # The common case, both lists in memory and neither matching, costs no coroutine.
        local_sender = sender.local and router.hosts.has_accounts(sender.domain)
        sender_list = store.peek(sender.bare.text) if local_sender else EMPTY
        recipient_list = store.peek(recipient.bare.text)
        if sender_list is None or recipient_list is None:
            return filter_loading(event, bool(local_sender))
        return apply(event, sender_list, recipient_list)

    async def filter_loading(event: StanzaEvent, local_sender: bool) -> bool | None:
        sender_list = await blocklist(event.from_jid.bare) if local_sender else EMPTY
        return apply(event, sender_list, await blocklist(event.to_jid.bare))

    def apply(event: StanzaEvent, sender_list: set[str] | frozenset[str], recipient_list: set[str] | frozenset[str]) -> bool | None:
        sender, recipient = event.from_jid, event.to_jid
        kind = event.stanza.name
        stype = event.stanza.attrs.get("type")
        if matches(sender_list, recipient):
            if kind != "presence" and stype not in ("error", "result") and event.origin is not None:
                error = StanzaError("not-acceptable", "You have blocked this JID", type="cancel").to_element()
                error.add("blocked", NS_ERRORS)
                reply = Element(kind, attrs={"type": "error", "to": str(sender), "from": str(recipient)})
                if "id" in event.stanza.attrs:
                    reply.attrs["id"] = event.stanza.attrs["id"]
                reply.append(error)
                event.origin.send(reply)
            return True
        if matches(recipient_list, sender):
            if kind == "presence" or stype in ("error", "result") or (kind == "message" and stype == "groupchat"):
                return True
            router.reply_error(event, StanzaError("service-unavailable"))
            return True
        return None

    def items_of(query: Element) -> list[str]:
        jids = []
        for item in query.find_all("item"):
            try:
                jids.append(str(parse_jid(item.attrs.get("jid", ""))))
            except JIDError as e:
                raise StanzaError("jid-malformed", e.text) from None
        return jids

    def push(owner: JID, query: Element) -> None:
        for resource in router.resources(owner):
            if "blocklist" in resource.flags:
                iq = Element("iq", attrs={"type": "set", "id": "block-push", "to": str(resource.jid)})
                iq.append(query)
                router.send_to([resource], iq)

    async def get(event: StanzaEvent) -> Element:
        if event.origin is not None:
            router.mark(event.origin, "blocklist")
        result = Element("blocklist", NS)
        for jid in sorted(await blocklist(event.to_jid.bare)):
            result.add("item", attrs={"jid": jid})
        return result

    async def block(event: StanzaEvent) -> bool:
        owner = event.to_jid.bare
        jids = items_of(payload(event))
        if not jids:
            raise StanzaError("bad-request", "name at least one JID to block")
        current = await blocklist(owner)
        if len(current | set(jids)) > MAX_ITEMS:
            raise StanzaError("not-allowed", "the block list is full")
        presence = mod.ctx.services.get("presence")
        new = [j for j in jids if j not in current]
        if presence is not None:
            for jid in new:
                # Tell the contact we went away while it can still hear us.
                await presence.send_current(owner, parse_jid(jid), unavailable=True)
        await store.add(owner_of(event), jids)
        push(owner, payload(event))
        return True

    async def unblock(event: StanzaEvent) -> bool:
        owner = event.to_jid.bare
        jids = items_of(payload(event))
        current = await blocklist(owner)
        released = set(current) if not jids else current & set(jids)
        await store.remove(owner_of(event), jids or None)
        push(owner, payload(event))
        presence = mod.ctx.services.get("presence")
        rosters = mod.ctx.services.get("roster")
        if presence is not None and rosters is not None:
            for jid in released:
                item = await rosters.item(str(owner), jid)
                if item is not None and item.subscription in ("from", "both"):
                    await presence.send_current(owner, parse_jid(jid))
        return True

    mod.add_feature(NS)
    mod.add_account_feature(NS)
    mod.hook(E.INBOUND_USER, filter_stanza, priority=100)
    mod.hook(f"iq-get/self/{NS}:blocklist", get)
    mod.hook(f"iq-set/self/{NS}:block", block)
    mod.hook(f"iq-set/self/{NS}:unblock", unblock)
