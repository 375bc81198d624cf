"""XEP-0424 Message Retraction and XEP-0425 Moderated Message Retraction in a room, without I/O.

Messages are named by the id the room gave them (XEP-0359 stanza-id). An occupant retracts its own
messages by sending a groupchat ``<retract/>``, which the room relays like any message once it knows
the original is the sender's; a moderator retracts anyone's with a ``<moderate/>`` iq, and the room
announces it. Either way the stored original becomes a tombstone (XEP-0424 §5): its ids and time stay,
its content goes.
"""

from __future__ import annotations

from sakari.jid import JID
from sakari.modules.muc import model as M
from sakari.modules.muc.history import stamp
from sakari.modules.muc.room import Out, Room
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

# What a tombstone keeps of the original: the ids, who sent it (as the room showed it) and when.
_KEPT = {("stanza-id", M.NS_SID), ("occupant-id", M.NS_OCCUPANT_ID), ("x", M.NS_USER), ("delay", M.NS_DELAY)}


def check_own(room: Room, real: JID, original: Element) -> None:
    """XEP-0424 §4: only its sender may retract a message; the occupant id, stable for one account in
    one room (XEP-0421), says who that was, whatever nick it had."""
    occupant = room.by_jid.get(real)
    if occupant is None:
        raise StanzaError("not-acceptable", "Only occupants may send messages to the room")
    claimed = original.find("occupant-id", M.NS_OCCUPANT_ID)
    if claimed is None or claimed.attrs.get("id") != occupant.occupant_id:
        raise StanzaError("forbidden", "Only the sender of a message may retract it; moderators moderate it")


def moderate(room: Room, real: JID, request: Element) -> tuple[Out, Element]:
    """XEP-0425 §4: a moderator's request to retract a message. Returns the announcement to every occupant
    and the ``<moderated/>`` (with the reason) that the tombstone records."""
    moderator = room.by_jid.get(real)
    if moderator is None or moderator.role != "moderator":
        raise StanzaError("forbidden", "Only moderators may retract others' messages")
    if request.find("retract", M.NS_RETRACT) is None:
        raise StanzaError("bad-request", "Only retraction is supported: <retract xmlns='urn:xmpp:message-retract:1'/>")
    message = Element("message", attrs={"from": room.jid.text, "type": "groupchat"})
    retract = message.add("retract", M.NS_RETRACT, {"id": request.attrs["id"]})
    moderated = retract.add("moderated", M.NS_MODERATE, {"by": room.occupant_jid(moderator.nick).text})
    moderated.add("occupant-id", M.NS_OCCUPANT_ID, {"id": moderator.occupant_id})
    reason = request.child_text("reason")
    if reason:
        retract.add("reason", text=reason)
    message.add("stanza-id", M.NS_SID, {"id": room.new_stanza_id(), "by": room.jid.text})
    return Out(message, room.recipients()), retract


def tombstone(original: Element, when: float, retract: Element | None = None) -> Element:
    """The original message with its content replaced by ``<retracted/>`` (XEP-0424 §5, XEP-0425 §5),
    carrying the moderation and reason of ``retract`` when a moderator did it."""
    stone = original.shallow_copy()
    stone.children = [c for c in original.elements() if (c.name, c.ns) in _KEPT]
    retracted = stone.add("retracted", M.NS_RETRACT, {"stamp": stamp(when)})
    if retract is not None:
        for child in retract.elements():
            retracted.append(child)
    return stone
