"""XEP-0317 Hats: titles such as "Teacher" or "Host" that a room's owners and admins give to accounts,
shown in the occupant's presence (``<hats xmlns='urn:xmpp:hats:0'>``). Sans-IO: the room's ad-hoc
commands (XEP-0050) to put a hat on (don) and take it off (doff), and the hats element.

A hat is its URI and a title for display; one account wears at most ``MAX_HATS`` in a room, and a room
gives hats to at most ``MAX_WEARERS`` accounts, so an admin cannot make the room's presences or storage
grow without bound.
"""

from __future__ import annotations

import json
import secrets

from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.adhoc import NS_COMMANDS, add_field, form, read_fields
from sakari.modules.muc import model as M
from sakari.modules.muc.room import Room
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

FORM_TYPE = "urn:xmpp:hats:commands"
DON = "urn:xmpp:hats:commands:don"
DOFF = "urn:xmpp:hats:commands:doff"
TITLES = {DON: "Give someone a hat", DOFF: "Take a hat off someone"}
MAX_HATS = 10  # per account in one room
MAX_WEARERS = 1000  # accounts with hats in one room
MAX_TEXT = 200  # characters of a hat's URI or title


def dump(hats: dict[str, str]) -> bytes:
    return json.dumps(hats).encode()


def load(data: bytes) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(data).items()}


def may_manage(room: Room, real: JID) -> bool:
    return room.affiliation(real.bare) in ("owner", "admin")


def command_items(room: Room, real: JID) -> Element:
    """disco#items of the room's commands node: the hat commands, for those who may run them."""
    query = Element("query", "http://jabber.org/protocol/disco#items", {"node": NS_COMMANDS})
    if may_manage(room, real):
        for node, title in TITLES.items():
            query.add("item", attrs={"jid": room.jid.text, "node": node, "name": title})
    return query


def run(room: Room, real: JID, command: Element) -> tuple[Element, JID | None]:
    """One step of a hat command: the ``<command/>`` to answer with, and the account whose hats changed."""
    node = command.attrs.get("node", "")
    if node not in TITLES:
        raise StanzaError("item-not-found", "This room has no such command")
    if not may_manage(room, real):
        raise StanzaError("forbidden", "Only the room's owners and admins give and take hats")
    session = command.attrs.get("sessionid") or secrets.token_hex(8)
    answer = Element("command", NS_COMMANDS, {"node": node, "sessionid": session})
    if command.attrs.get("action") == "cancel":
        answer.attrs["status"] = "canceled"
        return answer, None
    x = command.find("x", M.NS_DATA)
    if x is None:  # the first step: the form to fill in (a submitted form may come with it, §3.2)
        answer.attrs["status"] = "executing"
        answer.add("actions", attrs={"execute": "complete"}).add("complete")
        answer.append(_form(node))
        return answer, None
    fields = read_fields(x)
    try:
        wearer = parse_jid((fields.get("accountjid") or [""])[0]).bare
    except JIDError:
        raise StanzaError("bad-request", "The account's address is missing or malformed") from None
    uri = (fields.get("hat") or [""])[0].strip()
    if not uri or len(uri) > MAX_TEXT:
        raise StanzaError("bad-request", f"A hat is a URI of 1 to {MAX_TEXT} characters")
    hats = room.hats.get(wearer, {})
    if node == DON:
        title = (fields.get("title") or [""])[0].strip() or uri
        if len(title) > MAX_TEXT:
            raise StanzaError("bad-request", f"A hat's title has at most {MAX_TEXT} characters")
        if uri not in hats and len(hats) >= MAX_HATS:
            raise StanzaError("policy-violation", f"One account wears at most {MAX_HATS} hats in a room")
        if not hats and len(room.hats) >= MAX_WEARERS:
            raise StanzaError("policy-violation", f"A room gives hats to at most {MAX_WEARERS} accounts")
        room.hats[wearer] = {**hats, uri: title}
    else:
        if uri not in hats:
            raise StanzaError("item-not-found", "That account does not wear that hat here")
        rest = {u: t for u, t in hats.items() if u != uri}
        if rest:
            room.hats[wearer] = rest
        else:
            del room.hats[wearer]
    answer.attrs["status"] = "completed"
    return answer, wearer


def _form(node: str) -> Element:
    x = form("form", TITLES[node], "The account's address, and the hat's URI" +
             (" and title." if node == DON else "."), FORM_TYPE)
    add_field(x, "accountjid", "jid-single", "Account", required=True)
    add_field(x, "hat", "text-single", "Hat (URI)", required=True)
    if node == DON:
        add_field(x, "title", "text-single", "Title shown (the URI when empty)")
    return x
